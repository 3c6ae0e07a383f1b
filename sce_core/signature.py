"""Introspection of a component's constructor: parameters, slots, defaults, types."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from sce_core.registries import KIND_RUNTIME_ARGS
from sce_core.slots import Slot, forwards_to_base, slot_of

RUNTIME_ATTR = "__sce_runtime_args__"
_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One constructor parameter as the config sees it."""

    name: str
    annotation: Any
    default: Any
    slot: Slot | None
    runtime: bool
    inherited: bool = False  # a base class' parameter, reached through ``**kwargs: BaseArgs``

    @property
    def required(self) -> bool:
        return self.default is _EMPTY and not self.runtime

    @property
    def type_text(self) -> str:
        """Readable annotation (``int``, ``list[float] | None``, ``trunks component``)."""
        if self.slot is not None:
            many = "list of " if self.slot.many else ""
            return f"{many}{self.slot.kind} component" + (" (built later)" if self.slot.lazy else "")
        if self.annotation is _EMPTY:
            return "any"
        return _annotation_text(self.annotation)


@dataclass(frozen=True)
class ComponentSpec:
    """What the config may set on one component."""

    params: dict[str, Param]
    var_kwargs: bool
    doc: str

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    def settable(self) -> list[str]:
        return [p.name for p in self.params.values() if not p.runtime]


def _annotation_text(ann: Any) -> str:
    """``int``, ``int | None``, ``'a' | 'b'``, ``list[float]`` (constraints left out)."""
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        bounds = [m.text() for m in ann.__metadata__ if hasattr(m, "text") and hasattr(m, "problem")]
        return _annotation_text(args[0]) + "".join(f" ({b})" for b in bounds)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_annotation_text(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if ann is type(None):
        return "None"
    if isinstance(ann, type) and hasattr(ann, "__required_keys__"):  # a TypedDict option group
        return "{" + ", ".join(ann.__annotations__) + "}"
    if isinstance(ann, type) and not args:
        return ann.__name__
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else _annotation_text(a) for a in args)}]"
    return repr(ann).replace("typing.", "").replace("collections.abc.", "")


def _target_callable(obj: Any) -> Any:
    return obj.__init__ if inspect.isclass(obj) else obj


@cache
def component_spec(obj: Any, kind: str) -> ComponentSpec:
    """The parameters of a class (its ``__init__``) or a factory function."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ComponentSpec({}, True, inspect.getdoc(obj) or "")
    try:
        hints = typing.get_type_hints(_target_callable(obj), include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations are not checked
        hints = {}
    declared = getattr(obj, RUNTIME_ATTR, None)
    runtime = set(declared) if declared is not None else set(KIND_RUNTIME_ARGS.get(kind, ()))
    params: dict[str, Param] = {}
    keyword_only: dict[str, Param] = {}  # listed after a base class' parameters
    var_kwargs = False
    for p in sig.parameters.values():
        ann = hints.get(p.name, p.annotation)
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            if inspect.isclass(obj) and forwards_to_base(ann):
                base = _base_spec(obj, kind)
                own = {*params, *keyword_only}
                params.update({n: replace(q, inherited=True) for n, q in base.params.items()
                               if n not in own})
                var_kwargs = base.var_kwargs
            else:
                var_kwargs = True
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        target = keyword_only if p.kind is inspect.Parameter.KEYWORD_ONLY else params
        target[p.name] = Param(p.name, ann, p.default, slot_of(ann), p.name in runtime)
    params.update(keyword_only)
    return ComponentSpec(params, var_kwargs, inspect.getdoc(obj) or "")


def _base_spec(cls: type, kind: str) -> ComponentSpec:
    """The spec of the ``__init__`` that ``super().__init__(**kwargs)`` reaches: the next one
    up the MRO from the class whose ``__init__`` ``cls`` uses."""
    owners = [c for c in cls.__mro__ if "__init__" in vars(c)]
    return component_spec(owners[1], kind) if len(owners) > 1 else ComponentSpec({}, False, "")


def check_type(value: Any, ann: Any) -> bool:
    """Whether a plain config value fits an annotation (unknown annotations pass)."""
    if ann is _EMPTY or ann is Any or isinstance(ann, (str, typing.TypeVar)):
        return True
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return check_type(value, args[0])
    if origin in (typing.Union, types.UnionType):
        return any(check_type(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if ann is type(None):
        return value is None
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    base = origin or ann
    if base in (list, tuple, Sequence, typing.Sequence) or base is set:
        if not isinstance(value, (list, tuple)):
            return False
        if args and args[-1] is not Ellipsis and base is not tuple:
            return all(check_type(v, args[0]) for v in value)
        if base is tuple and args and args[-1] is Ellipsis:
            return all(check_type(v, args[0]) for v in value)
        if base is tuple and args:
            return len(args) == len(value) and all(check_type(v, a) for v, a in zip(value, args))
        return True
    if base in (dict, Mapping, typing.Mapping):
        if not isinstance(value, dict):
            return False
        if len(args) == 2:
            return all(check_type(v, args[1]) for v in value.values())
        return True
    if isinstance(base, type) and isinstance(value, (str, int, float, bool)) and value is not None:
        # A class such as nn.Module or a Path: scalars are accepted where a constructor
        # from a scalar exists (Path("x")), otherwise they are likely a mistake.
        return base.__module__ in ("pathlib", "builtins", "numbers")
    return True
