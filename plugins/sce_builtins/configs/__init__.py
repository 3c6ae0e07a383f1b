"""Shipped YAML configs (found through the ``sce.configs`` entry point)."""
