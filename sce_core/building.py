"""Config node -> object. Validation runs first and reports every problem at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sce_core.errors import ComponentLoadError, ConfigError
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


@dataclass(frozen=True)
class Built:
    """One component a build made: for the contract checks at the start of a run."""

    kind: str
    path: str
    label: str
    provider: str
    obj: Any


class Builder(Visitor):
    """Builds the components of a validated node, innermost first (``built`` lists them)."""

    def __init__(self) -> None:
        self.built: list[Built] = []

    def component(self, at: ComponentAt, args: Any) -> Any:
        if at.in_options:
            return at.bare if at.bare is not None else at.node  # its owner builds it
        if at.lazy:
            node = {k: v for k, v in at.node.items() if k != PARTIAL_KEY}
            return NodeFactory(at.kind, node, at.path)
        kwargs = {k: v for k, v in args().items() if not is_reserved(k)}
        kwargs.update(at.runtime)
        try:
            obj = at.entry.load()(**kwargs)
        except ModuleNotFoundError as exc:  # a dependency of the plugin is not installed
            raise ComponentLoadError(
                f"{at.path or at.kind}: building {at.label} from {at.entry.provider} failed: "
                f"{type(exc).__name__}: {exc}; install it (a dependency of {at.entry.dist})"
            ) from exc
        except Exception as exc:
            exc.add_note(f"sce: raised while building {at.path or at.kind} ({at.label}), "
                         f"provided by {at.entry.provider}")
            raise
        self.built.append(Built(at.kind, at.path or at.kind, at.label, at.entry.provider, obj))
        return obj


def construct(kind: str | None, node: Any, path: str, runtime: dict[str, Any]) -> Any:
    """Build an already validated plain node."""
    return walk_node(kind, node, path, Builder(), runtime)


def build(kind: str, node: Any, *, path: str | None = None, **runtime: Any) -> Any:
    """Validate and build one node (a mapping, a ``DictConfig`` or a bare name).

    ``runtime`` holds arguments the framework supplies (``params=`` for an optimizer).
    Raises :class:`~sce_core.errors.ConfigError` listing every problem of the node.
    """
    return build_parts(kind, node, path=path, **runtime)[0]


def build_parts(kind: str, node: Any, *, path: str | None = None, **runtime: Any
                ) -> tuple[Any, list[Built]]:
    """:func:`build`, also returning every component it made (innermost first)."""
    issues = validate_node(kind, node, path, runtime=runtime)
    if issues:
        raise ConfigError(issues)
    builder = Builder()
    return walk_node(kind, to_plain_node(node), path or "", builder, runtime), builder.built
