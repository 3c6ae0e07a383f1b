"""Built-in tools components."""
