"""The one walk over a config tree: every node with its path, its slot and its declared type.

The walker knows how a config is shaped (sections, component nodes, bare names with their
``args_param`` sibling, typed option groups, lists, plain values) and reports every problem it
meets to a :class:`Visitor`. What happens at a component is the visitor's job: validation
(:mod:`sce_core.validate`) collects problems, building (:mod:`sce_core.building`) constructs
objects, the resolved config (:mod:`sce_core.resolved`) fills defaults and providers.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sce_core.constraints import constraint_problem, finite_problem
from sce_core.errors import (
    AmbiguousComponentError,
    ComponentLoadError,
    ConfigError,
    Issue,
    UnknownComponentError,
)
from sce_core.nodes import (
    NAME_KEY,
    PARTIAL_KEY,
    RESERVED_KEYS,
    is_component_node,
    is_reserved,
    join,
    name_issue,
    split_name,
)
from sce_core.registries import Entry, registry, singular
from sce_core.schema import (
    SECTIONS,
    ComponentSlot,
    ManySlot,
    OptionsSlot,
    Slot,
    run_sections,
    slot_for,
)
from sce_core.signature import ComponentSpec, Param, check_type, component_spec

MISSING = "???"


@dataclass(frozen=True)
class ComponentAt:
    """One component node met by the walk."""

    path: str
    kind: str
    name: str
    entry: Entry
    spec: ComponentSpec
    node: dict[str, Any]  # as written; a bare name is merged with its ``args_param`` sibling
    slot: ComponentSlot
    bare: str | None = None  # the bare name as written, if given as a string
    in_options: bool = False  # held by a typed option group: its owner builds it
    runtime: Mapping[str, Any] = field(default_factory=dict)  # arguments the caller supplies

    @property
    def lazy(self) -> bool:
        """Built later: a :func:`~sce_core.slots.Factory` slot or a ``_partial_`` node."""
        return self.slot.lazy or bool(self.node.get(PARTIAL_KEY))

    @property
    def label(self) -> str:
        return f"{singular(self.kind)} '{self.name}'"


class Visitor:
    """What one use of the walk does. The default raises at the first problem."""

    def problem(self, path: str, message: str) -> None:
        """A problem at ``path``."""
        raise ConfigError(Issue(path, message))

    def component(self, at: ComponentAt, args: Callable[[], dict[str, Any]]) -> Any:
        """The result for a component; ``args()`` walks its arguments and returns theirs."""
        return args()

    def options(self, path: str, values: dict[str, Any]) -> Any:
        """The result for a typed option group, given the results of its keys."""
        return values


def suggest(word: str, options: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest option, or nothing."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def render(value: Any) -> str:
    """A value as it appears in a message (shortened)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def missing_text(path: str) -> str:
    return f"mandatory value '???' is not set; pass it as an override ({path}=...)"


@dataclass
class _Mapping:
    """The keys a mapping may hold, for one component or one typed option group."""

    label: str
    params: Mapping[str, Param]
    word: str
    open: bool = False  # unknown keys allowed (``**kwargs``)
    list_keys: bool = True
    notes: Mapping[str, str] = field(default_factory=dict)
    node_kinds: Mapping[str, str] = field(default_factory=dict)


class Walker:
    """Walks config trees for one :class:`Visitor`."""

    def __init__(self, visitor: Visitor) -> None:
        self.visitor = visitor

    def problem(self, path: str, message: str) -> None:
        self.visitor.problem(path, message)

    # -- entry points ------------------------------------------------------------------
    def run_config(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Every top-level section of a run config, dispatched by :func:`run_sections`."""
        sections = run_sections()
        out: dict[str, Any] = {}
        for key, value in cfg.items():
            section = sections.get(key)
            if section is None:
                self.problem(key, f"unknown top-level section{suggest(key, sections)} "
                                  f"(sections: {', '.join(sorted(sections))})")
                continue
            if section.error:
                self.problem(key, section.error)
                continue
            out[key] = self.walk(value, section.resolve(), key)
        return out

    def required_sections(self, cfg: Mapping[str, Any]) -> None:
        """Report the sections a run needs that ``cfg`` lacks (plugin sections are optional)."""
        for key, section in SECTIONS.items():
            if section.required and cfg.get(key) is None:
                slot = section.resolve()
                what = (f"a {singular(slot.kind)} node" if isinstance(slot, ComponentSlot) and slot.kind
                        else "this section")
                self.problem(key, f"the config has no '{key}' section; a run needs {what} here")

    def node(self, kind: str | None, value: Any, path: str,
             runtime: Mapping[str, Any] | None = None) -> Any:
        """One component node (a mapping or a bare name) of ``kind``."""
        if value is None:
            what = f"a {singular(kind)}" if kind else "a component"
            self.problem(path, f"expected {what} given as a name or a mapping with `_name_`, got None")
            return None
        return self.component(ComponentSlot(kind), value, path, runtime=runtime or {})

    # -- dispatch --------------------------------------------------------------------
    def walk(self, value: Any, slot: Slot, path: str, *, in_options: bool = False) -> Any:
        """The result for ``value`` held by ``slot`` at ``path``."""
        if value == MISSING:
            self.problem(path, missing_text(path))
            return value
        if isinstance(slot, ComponentSlot):
            return self.component(slot, value, path, in_options=in_options)
        if isinstance(slot, ManySlot):
            return self.many(slot, value, path, in_options)
        if isinstance(slot, OptionsSlot):
            return self.options(slot, value, path)
        return self.plain(value, path, slot.node_kind, in_options)

    def many(self, slot: ManySlot, value: Any, path: str, in_options: bool) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: (None if v is None else self.walk(v, slot.item, join(path, k), in_options=in_options))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, slot.item, join(path, i), in_options=in_options)
                    for i, v in enumerate(value)]
        kind = slot.item.kind or "component"
        self.problem(path, f"expected a list or a mapping of name: {singular(kind)} node, "
                           f"got {render(value)}")
        return value

    def plain(self, value: Any, path: str, node_kind: str | None = None,
              in_options: bool = False) -> Any:
        """A plain value: ``???`` and component nodes inside it are found and walked."""
        if value == MISSING:
            self.problem(path, missing_text(path))
            return value
        if is_component_node(value):
            return self.component(ComponentSlot(node_kind), value, path, in_options=in_options)
        if isinstance(value, dict):
            return {k: self.plain(v, join(path, k), None, in_options) for k, v in value.items()}
        if isinstance(value, list):
            return [self.plain(v, join(path, i), None, in_options) for i, v in enumerate(value)]
        problem = finite_problem(value)
        if problem:
            self.problem(path, problem)
        return value

    # -- components ------------------------------------------------------------------
    def component(self, slot: ComponentSlot, value: Any, path: str, *,
                  owner: Mapping[str, Any] | None = None, owner_path: str = "",
                  in_options: bool = False, runtime: Mapping[str, Any] | None = None) -> Any:
        """A component node, or a bare name merged with its ``args_param`` sibling."""
        if value is None:
            return None
        key_paths: dict[str, str] = {}
        bare = None
        if isinstance(value, str) and value != MISSING:
            bare = value
            args = owner.get(slot.args_param) if owner is not None and slot.args_param else None
            node = {NAME_KEY: value, **(args if isinstance(args, dict) else {})}
            key_paths = {k: join(join(owner_path, slot.args_param), k) for k in node if k != NAME_KEY}
        elif is_component_node(value):
            node = value
        elif not isinstance(value, (str, dict, list, tuple, int, float)):
            return value  # an object already built, passed from Python
        else:
            what = f"a {singular(slot.kind)}" if slot.kind else "a component"
            self.problem(path, f"expected {what} given as a name or a mapping with `_name_`, "
                               f"got {render(value)}")
            return value
        name_path = path if bare is not None else join(path, NAME_KEY)
        try:
            kind, name = split_name(slot.kind, node[NAME_KEY], name_path)
            entry = registry(kind).resolve(name)
            obj = entry.load()
        except (UnknownComponentError, AmbiguousComponentError) as exc:
            issue = name_issue(exc, name_path)
            self.problem(issue.path, issue.message)
            return None
        except ComponentLoadError as exc:
            self.problem(path, str(exc))
            return None
        spec = component_spec(obj, kind)
        at = ComponentAt(path, kind, name, entry, spec, node, slot, bare, in_options, runtime or {})
        label = at.label
        fields = _Mapping(label, spec.params, "parameter", open=spec.var_kwargs)
        return self.visitor.component(
            at, lambda: self.arguments(fields, node, path, key_paths=key_paths, in_options=in_options,
                                       runtime=set(at.runtime), lazy=bool(node.get(PARTIAL_KEY))))

    # -- mappings with declared keys ---------------------------------------------------
    def options(self, slot: OptionsSlot, value: Any, path: str) -> Any:
        """A typed option group (``TypedDict``, ``lightning.Trainer``'s arguments, ``seed``)."""
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping of {slot.owner} {slot.word}s, got {render(value)}")
            return value
        fields = _Mapping(slot.owner, slot.fields, slot.word, list_keys=len(slot.fields) <= 20,
                          notes=slot.notes, node_kinds=slot.node_kinds)
        return self.visitor.options(path, self.arguments(fields, value, path, in_options=True))

    def arguments(self, fields: _Mapping, node: Mapping[str, Any], path: str, *,
                  key_paths: Mapping[str, str] | None = None, in_options: bool = False,
                  runtime: set[str] | None = None, lazy: bool = False) -> dict[str, Any]:
        """Every key of a component node or an option group, checked against ``fields``."""
        key_paths = key_paths or {}
        runtime = runtime or set()
        params = fields.params
        consumed = {p.slot.args_param for p in params.values()
                    if p.slot and p.slot.args_param and isinstance(node.get(p.name), str)}
        out: dict[str, Any] = {}
        for key, value in node.items():
            key_path = key_paths.get(key) or join(path, key)
            if is_reserved(key):
                if fields.word == "parameter" and key not in RESERVED_KEYS:
                    self.problem(key_path, f"unknown reserved key (reserved keys: "
                                           f"{', '.join(sorted(RESERVED_KEYS))})")
                else:
                    out[key] = value
                continue
            param = params.get(key)
            if param is None:
                if key in fields.notes:
                    owner = fields.label.rpartition(".")[2]
                    self.problem(key_path, f"unknown {owner} {fields.word} '{key}': {fields.notes[key]}")
                elif fields.open:
                    out[key] = self.plain(value, key_path, None, in_options)
                else:
                    settable = [p.name for p in params.values() if not p.runtime]
                    listed = f" ({fields.word}s: {', '.join(settable) or 'none'})" if fields.list_keys else ""
                    self.problem(key_path, f"{fields.label} has no {fields.word} '{key}'"
                                           f"{suggest(key, settable)}{listed}")
                continue
            if param.runtime:
                self.problem(key_path, f"'{key}' of {fields.label} is given by the framework at "
                                       f"build time; remove it from the config")
                continue
            if key in consumed:
                out[key] = value  # arguments of a bare-named sibling, walked with it
                continue
            out[key] = self.field(param, value, key_path, fields, node, path, in_options)
        for param in params.values():
            if param.required and param.name not in node and param.name not in runtime and not lazy:
                self.problem(join(path, param.name), f"{fields.label} needs '{param.name}' "
                                                     f"({param.type_text}); add it to the config")
        return out

    def field(self, param: Param, value: Any, path: str, fields: _Mapping,
              owner: Mapping[str, Any], owner_path: str, in_options: bool) -> Any:
        """One declared key: its slot decides how it is walked."""
        if value == MISSING:
            self.problem(path, missing_text(path))
            return value
        slot = slot_for(param.annotation)
        if isinstance(slot, ComponentSlot):
            return self.component(slot, value, path, owner=owner, owner_path=owner_path,
                                  in_options=in_options)
        if isinstance(slot, OptionsSlot) and value is not None:
            return self.options(slot, value, path)
        if isinstance(slot, ManySlot):
            return self.many(slot, value, path, in_options)
        node_kind = fields.node_kinds.get(param.name)
        if node_kind and is_component_node(value):
            return self.component(ComponentSlot(node_kind), value, path, in_options=in_options)
        if not check_type(value, param.annotation):
            self.problem(path, f"{fields.label} expects '{param.name}' to be {param.type_text}, "
                               f"got {render(value)}")
            return value
        problem = constraint_problem(value, param.annotation, owner)
        if problem:
            self.problem(path, f"{fields.label}: '{param.name}' {problem}")
        return self.plain(value, path, None, in_options)


def walk_config(cfg: Mapping[str, Any], visitor: Visitor, *, complete: bool = False) -> dict[str, Any]:
    """Walk a run config (plain data) for ``visitor``; returns the visitor's results.

    ``complete``: also report the sections a run needs that are missing.
    """
    walker = Walker(visitor)
    if complete:
        walker.required_sections(cfg)
    return walker.run_config(cfg)


def walk_node(kind: str | None, node: Any, path: str, visitor: Visitor,
              runtime: Mapping[str, Any] | None = None) -> Any:
    """Walk one component node (plain data) for ``visitor``; returns the visitor's result."""
    return Walker(visitor).node(kind, node, path, runtime)
