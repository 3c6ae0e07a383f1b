"""Built-in transforms components."""
