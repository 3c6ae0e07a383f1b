"""Component nodes: ``{_name_: ..., **kwargs}`` mappings, their reserved keys and names."""

from __future__ import annotations

import re
from typing import Any

from sce_core.errors import AmbiguousComponentError, Issue, UnknownComponentError
from sce_core.registries import KINDS, find_kinds, registry

NAME_KEY = "_name_"
PARTIAL_KEY = "_partial_"
PROVIDER_KEY = "_provider_"
RECURSIVE_KEY = "_recursive_"  # accepted from Hydra-era configs; sce-core's slots decide
RESERVED_KEYS = frozenset({NAME_KEY, PARTIAL_KEY, PROVIDER_KEY, RECURSIVE_KEY})
RESERVED_PATTERN = re.compile(r"^_[A-Za-z0-9]+_$")


def is_reserved(key: str) -> bool:
    """Whether ``key`` has the reserved ``_x_`` form."""
    return bool(RESERVED_PATTERN.match(str(key)))


def is_component_node(value: Any) -> bool:
    """A mapping that names a component."""
    return isinstance(value, dict) and NAME_KEY in value


def to_plain_node(node: Any) -> Any:
    """A ``DictConfig``/mapping/bare name as plain Python data (interpolations resolved)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    if isinstance(node, dict):
        return {k: to_plain_node(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [to_plain_node(v) for v in node]
    return node


def join(path: str, key: Any) -> str:
    """``model`` + ``trunk`` -> ``model.trunk``; list indices as ``[i]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def split_name(kind: str | None, raw: Any, path: str) -> tuple[str, str]:
    """Kind and name of a node's ``_name_``; raises a one-line error naming ``path``.

    ``kind/name`` qualifies explicitly; without a kind from the slot, the name must be
    provided by exactly one kind.
    """
    if not isinstance(raw, str) or not raw:
        raise UnknownComponentError(f"{path}: `_name_` must be a non-empty string, got {raw!r}")
    if "/" in raw:
        qual, _, name = raw.partition("/")
        if qual not in KINDS:
            raise UnknownComponentError(
                f"{path}: unknown kind '{qual}' in '{raw}' (kinds: {', '.join(KINDS)})"
            )
        return qual, name
    if kind is not None:
        return kind, raw
    kinds = find_kinds(raw)
    if len(kinds) == 1:
        return kinds[0], raw
    if not kinds:
        hints = []
        for k in KINDS:
            hints += [f"{k}/{c}" for c in registry(k).suggest(raw)]
        hint = ("; did you mean " + " or ".join(f"'{h}'" for h in hints[:3]) + "?") if hints else ""
        raise UnknownComponentError(f"{path}: no component is named '{raw}'{hint}")
    options = " or ".join(f"'{k}/{raw}'" for k in kinds)
    raise AmbiguousComponentError(f"{path}: '{raw}' exists in several kinds; write {options}")


def name_issue(exc: Exception, path: str) -> Issue:
    """An :class:`Issue` from a name-resolution error, without repeating the path."""
    msg = str(exc)
    prefix = f"{path}: "
    return Issue(path, msg[len(prefix):] if msg.startswith(prefix) else msg)
