"""sce-core's testing kit as a pytest plugin: the ``sce_registry`` fixture (isolated registries)."""

pytest_plugins = ["sce_core.testing"]
