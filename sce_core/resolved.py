"""The resolved config of a run: interpolations resolved, defaults filled, providers recorded.

Saved next to a run's logs and checkpoints; loading it again gives the same run. Values read
from the environment (``${oc.env:VAR}``, and values interpolated from them) are saved as the
interpolation, never as their value: tokens and passwords stay out of saved files.
"""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sce_core.config import to_plain
from sce_core.info import yaml_default
from sce_core.nodes import PROVIDER_KEY
from sce_core.walk import ComponentAt, Visitor, walk_config

ENV_RESOLVER = "oc.env"
ENV_MARKER = "<sce:env>"


class Filler(Visitor):
    """Fills every component node with its defaults and its provider."""

    def component(self, at: ComponentAt, args: Any) -> Any:
        if at.bare is not None and at.slot.args_param:
            return at.bare  # the name; its arguments stay in the sibling
        out = args()
        for p in at.spec.params.values():
            if p.name in out or p.runtime or p.default is inspect.Parameter.empty:
                continue
            if p.slot is None and yaml_default(p.default):
                out[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
        entry = at.entry
        out[PROVIDER_KEY] = entry.provider if entry.origin == "local" else f"{entry.dist}=={entry.version}"
        return out


def env_paths(cfg: DictConfig) -> list[tuple[Any, ...]]:
    """Key paths whose value comes from the environment, directly or through interpolations."""
    marked = cfg.copy()
    _mark_env_nodes(marked)
    plain = OmegaConf.to_container(marked, resolve=True, throw_on_missing=False)
    return list(_paths_with_marker(plain, ()))


def _mark_env_nodes(node: Any) -> None:
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)):
            _mark_env_nodes(child)
        elif OmegaConf.is_interpolation(node, key) and ENV_RESOLVER in str(child._value()):
            node[key] = ENV_MARKER


def _paths_with_marker(value: Any, path: tuple[Any, ...]) -> Any:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths_with_marker(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths_with_marker(child, (*path, i))
    elif isinstance(value, str) and ENV_MARKER in value:
        yield path


def _raw(cfg: DictConfig, path: tuple[Any, ...]) -> Any:
    node: Any = cfg
    for key in path[:-1]:
        node = node._get_node(key)
    return node._get_node(path[-1])._value()


def _put(tree: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def resolve_run_config(cfg: DictConfig | dict[str, Any]) -> tuple[DictConfig, dict[str, Any]]:
    """``(for_saving, for_building)``: the filled config with environment values kept as
    ``${oc.env:...}`` interpolations, and the same as plain data with their values."""
    plain = walk_config(to_plain(cfg), Filler())
    saved = OmegaConf.create(plain)
    if isinstance(cfg, DictConfig):
        for path in env_paths(cfg):
            _put(saved, path, _raw(cfg, path))
    return saved, plain


def resolved_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """The config with every interpolation resolved (except environment values), defaults
    filled and providers noted."""
    return resolve_run_config(cfg)[0]
