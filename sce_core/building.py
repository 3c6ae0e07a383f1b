"""Config node -> object. Validation runs first and reports every problem at once."""

from __future__ import annotations

from typing import Any

from sce_core.errors import ConfigError
from sce_core.nodes import NAME_KEY, PARTIAL_KEY, is_reserved, to_plain_node
from sce_core.validate import validate_node
from sce_core.walk import ComponentAt, Visitor, walk_node


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


class Builder(Visitor):
    """Builds the components of a validated node, innermost first."""

    def component(self, at: ComponentAt, args: Any) -> Any:
        if at.in_options:
            return at.bare if at.bare is not None else at.node  # its owner builds it
        if at.lazy:
            node = {k: v for k, v in at.node.items() if k != PARTIAL_KEY}
            return NodeFactory(at.kind, node, at.path)
        kwargs = {k: v for k, v in args().items() if not is_reserved(k)}
        kwargs.update(at.runtime)
        try:
            return at.entry.load()(**kwargs)
        except Exception as exc:
            exc.add_note(f"sce: raised while building {at.path or at.kind} ({at.label})")
            raise


def construct(kind: str | None, node: Any, path: str, runtime: dict[str, Any]) -> Any:
    """Build an already validated plain node."""
    return walk_node(kind, node, path, Builder(), runtime)


def build(kind: str, node: Any, *, path: str | None = None, **runtime: Any) -> Any:
    """Validate and build one node (a mapping, a ``DictConfig`` or a bare name).

    ``runtime`` holds arguments the framework supplies (``params=`` for an optimizer).
    Raises :class:`~sce_core.errors.ConfigError` listing every problem of the node.
    """
    issues = validate_node(kind, node, path, runtime=runtime)
    if issues:
        raise ConfigError(issues)
    return construct(kind, to_plain_node(node), path or "", runtime)
