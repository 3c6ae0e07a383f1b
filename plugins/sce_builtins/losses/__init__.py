"""Built-in losses components."""
