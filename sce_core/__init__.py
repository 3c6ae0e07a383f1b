"""sce-core: SCE self-supervised video learning built on registries and plugins.

Public API::

    sce_core.load_config(name_or_path, overrides=())   # composed, overridden DictConfig
    sce_core.build(kind, node, **runtime)                # validate + build one node
    sce_core.register(kind, name)                        # in-process registration
    sce_core.registry(kind).names()                      # names, no plugin imported

Importing this package imports neither torch nor any plugin module.
"""

from __future__ import annotations

from typing import Any

from sce_core.building import build
from sce_core.errors import (
    AmbiguousComponentError,
    ComponentLoadError,
    ConfigError,
    ConfigNotFoundError,
    Issue,
    PluginHookError,
    PluginLoadError,
    RegistrationError,
    SCEError,
    UnknownComponentError,
)
from sce_core.registries import KINDS, refresh, register, registry

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "AmbiguousComponentError",
    "ComponentLoadError",
    "ConfigError",
    "ConfigNotFoundError",
    "Issue",
    "PluginHookError",
    "PluginLoadError",
    "RegistrationError",
    "SCEError",
    "UnknownComponentError",
    "build",
    "load_config",
    "refresh",
    "register",
    "registry",
    "validate_config",
]

_LAZY = {
    "load_config": ("sce_core.config", "load_config"),
    "validate_config": ("sce_core.validate", "validate_config"),
}


def __getattr__(name: str) -> Any:
    """Import OmegaConf-backed helpers on first use, keeping ``import sce_core`` cheap."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sce_core' has no attribute '{name}'")
