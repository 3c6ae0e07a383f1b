"""sce-plugin-example: a third-party sce-core plugin.

Importing this package registers nothing: sce-core finds the components through the entry
points declared in ``pyproject.toml`` (groups ``sce.trunks``, ``sce.clip_samplers``,
``sce.losses``, ``sce.hooks`` and ``sce.configs``).
"""

__version__ = "0.1.0"
