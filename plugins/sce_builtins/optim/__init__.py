"""Built-in optim components."""
