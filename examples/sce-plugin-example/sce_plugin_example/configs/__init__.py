"""Shipped configs of sce-plugin-example (entry-point group ``sce.configs``)."""
