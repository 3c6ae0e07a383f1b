"""Built-in data components."""
