"""Build components given as config nodes or bare names inside plain split mappings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def ensure_built(kind: str, value: Any, args: Mapping[str, Any] | None = None, path: str = "") -> Any:
    """Return ``value`` built as a ``kind`` component when it is a name or a node, else as is.

    A bare name is combined with ``args`` (the ``decoder`` + ``decoder_args`` convention).
    """
    if value is None:
        return None
    if isinstance(value, str):
        node: Any = {"_name_": value, **dict(args or {})}
    elif isinstance(value, Mapping) and "_name_" in value:
        node = dict(value)
    else:
        return value
    from sce_core import build

    kwargs = {"path": path} if path else {}
    return build(kind, node, **kwargs)


def default_seed(seed: int | None) -> int:
    """``seed`` or, when None, Lightning's global seed (``PL_GLOBAL_SEED``) or 0."""
    if seed is not None:
        return int(seed)
    try:
        return int(os.environ.get("PL_GLOBAL_SEED", 0))
    except ValueError:
        return 0
