"""Build a nested node through the core (``sce_core.build``) at call time."""

from __future__ import annotations

from typing import Any


def build_node(kind: str, node: Any, path: str, **runtime: Any) -> Any:
    """``sce_core.build(kind, node, path=path, **runtime)``, imported lazily."""
    from sce_core.building import build

    return build(kind, node, path=path, **runtime)
