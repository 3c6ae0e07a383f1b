"""Built-in callbacks components."""
