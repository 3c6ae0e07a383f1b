"""Config node -> object. Validation runs first and reports every problem at once."""

from __future__ import annotations

from typing import Any

from sce_core.errors import ConfigError
from sce_core.nodes import (
    NAME_KEY,
    PARTIAL_KEY,
    is_component_node,
    is_reserved,
    join,
    split_name,
    to_plain_node,
)
from sce_core.registry import registry, singular
from sce_core.signature import component_spec
from sce_core.slots import Slot
from sce_core.validate import validate_node


class NodeFactory:
    """A validated node built on call: ``factory(**runtime)`` returns a new object.

    Components receive one for parameters annotated with :func:`sce_core.slots.Factory`
    (an optimizer needs the model's parameters, a scheduler its optimizer).
    """

    def __init__(self, kind: str, node: Any, path: str) -> None:
        self.kind = kind
        self.node = node if isinstance(node, dict) else {NAME_KEY: node}
        self.path = path

    @property
    def name(self) -> str:
        return str(self.node[NAME_KEY])

    def __call__(self, **runtime: Any) -> Any:
        return construct(self.kind, self.node, self.path, runtime)

    def __repr__(self) -> str:
        return f"NodeFactory({self.kind}/{self.name} at {self.path})"


def _build_slot(slot: Slot, value: Any, node: dict, path: str) -> Any:
    if value is None:
        return None
    if slot.many:
        if isinstance(value, dict):
            return {k: _build_one(slot, v, node, join(path, k)) for k, v in value.items()
                    if v is not None}
        return [_build_one(slot, v, node, join(path, i)) for i, v in enumerate(value)]
    return _build_one(slot, value, node, path)


def _build_one(slot: Slot, value: Any, node: dict, path: str) -> Any:
    if isinstance(value, str) and slot.args_param:
        args = node.get(slot.args_param) or {}
        value = {NAME_KEY: value, **args}
    if slot.lazy:
        kind, _ = split_name(slot.kind, (value if isinstance(value, str) else value[NAME_KEY]), path)
        return NodeFactory(kind, value, path)
    if not isinstance(value, (str, dict)):
        return value  # an already built object passed from Python
    return construct(slot.kind, value, path, {})


def _build_plain(value: Any, path: str) -> Any:
    if is_component_node(value):
        return construct(None, value, path, {})
    if isinstance(value, dict):
        return {k: _build_plain(v, join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_build_plain(v, join(path, i)) for i, v in enumerate(value)]
    return value


def construct(kind: str | None, node: Any, path: str, runtime: dict[str, Any]) -> Any:
    """Build an already validated plain node (no validation here)."""
    if isinstance(node, str):
        node = {NAME_KEY: node}
    kind, name = split_name(kind, node[NAME_KEY], join(path, NAME_KEY))
    if node.get(PARTIAL_KEY):
        rest = {k: v for k, v in node.items() if k != PARTIAL_KEY}
        return NodeFactory(kind, rest, path)
    obj = registry(kind).get(name)
    spec = component_spec(obj, kind)
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        if is_reserved(key):
            continue
        param = spec.params.get(key)
        key_path = join(path, key)
        if param is not None and param.slot is not None:
            kwargs[key] = _build_slot(param.slot, value, node, key_path)
        else:
            kwargs[key] = _build_plain(value, key_path)
    kwargs.update(runtime)
    try:
        return obj(**kwargs)
    except Exception as exc:
        exc.add_note(f"sce: raised while building {path or kind} ({singular(kind)} '{name}')")
        raise


def build(kind: str, node: Any, *, path: str | None = None, **runtime: Any) -> Any:
    """Validate and build one node (a mapping, a ``DictConfig`` or a bare name).

    ``runtime`` holds arguments the framework supplies (``params=`` for an optimizer).
    Raises :class:`~sce_core.errors.ConfigError` listing every problem of the node.
    """
    issues = validate_node(kind, node, path, runtime=runtime)
    if issues:
        raise ConfigError(issues)
    return construct(kind, to_plain_node(node), path or "", runtime)
