"""The resolved config of a run: interpolations resolved, defaults filled, providers recorded.

Saved next to a run's logs and checkpoints; loading it again gives the same run.
"""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sce_core.config import to_plain
from sce_core.info import yaml_default
from sce_core.nodes import NAME_KEY, PROVIDER_KEY, is_component_node, is_reserved, split_name
from sce_core.registry import registry
from sce_core.signature import component_spec
from sce_core.validate import COMPONENT_SECTIONS, MAPPING_OF_COMPONENTS


def _fill(kind: str | None, node: Any, path: str) -> Any:
    if isinstance(node, str):
        node = {NAME_KEY: node}
    kind, name = split_name(kind, node[NAME_KEY], path)
    entry = registry(kind).resolve(name)
    spec = component_spec(entry.load(), kind)
    out: dict[str, Any] = {}
    for key, value in node.items():
        param = spec.params.get(key)
        if param is not None and param.slot is not None and value is not None:
            if param.slot.args_param and isinstance(value, str):
                out[key] = value
            elif param.slot.many:
                out[key] = ({k: _fill(param.slot.kind, v, f"{path}.{key}") for k, v in value.items()}
                            if isinstance(value, dict)
                            else [_fill(param.slot.kind, v, f"{path}.{key}") for v in value])
            else:
                out[key] = _fill(param.slot.kind, value, f"{path}.{key}")
        elif is_reserved(key):
            out[key] = value
        else:
            out[key] = _fill_plain(value, f"{path}.{key}")
    for p in spec.params.values():
        if p.name in out or p.runtime or p.default is inspect.Parameter.empty:
            continue
        if p.slot is None and yaml_default(p.default):
            out[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
    out[PROVIDER_KEY] = f"{entry.provider}" if entry.origin == "local" else f"{entry.dist}=={entry.version}"
    return out


def _fill_plain(value: Any, path: str) -> Any:
    if is_component_node(value):
        return _fill(None, value, path)
    if isinstance(value, dict):
        return {k: _fill_plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def resolved_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """The config with every interpolation resolved, defaults filled and providers noted."""
    plain = to_plain(cfg)
    out: dict[str, Any] = {}
    for key, value in plain.items():
        if key in COMPONENT_SECTIONS and value is not None:
            out[key] = _fill(COMPONENT_SECTIONS[key], value, key)
        elif key in MAPPING_OF_COMPONENTS and isinstance(value, dict):
            out[key] = {k: (_fill(MAPPING_OF_COMPONENTS[key], v, f"{key}.{k}") if v is not None else None)
                        for k, v in value.items()}
        elif key == "trainer" and isinstance(value, dict):
            out[key] = {k: (_fill("strategies", v, "trainer.strategy")
                            if k == "strategy" and is_component_node(v) else v)
                        for k, v in value.items()}
        else:
            out[key] = value
    return OmegaConf.create(out)
