"""Built-in sce-core components, registered through the same entry points as any plugin."""
