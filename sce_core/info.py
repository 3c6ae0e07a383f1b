"""``sce info``: what one component is, where it comes from and how to configure it."""

from __future__ import annotations

import inspect
import sys
from typing import Any

from sce_core.errors import UnknownComponentError
from sce_core.nodes import NAME_KEY
from sce_core.registries import KINDS, Entry, find_kinds, registry, singular
from sce_core.signature import component_spec

YAML_SCALARS = (type(None), bool, int, float, str)


def yaml_default(value: Any) -> bool:
    """Whether a Python default can be written into a YAML config as is."""
    if isinstance(value, YAML_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(yaml_default(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and yaml_default(v) for k, v in value.items())
    return False


def find_entry(name: str, kind: str | None = None) -> Entry:
    """The entry of ``name`` (``kind/name`` allowed), searching every kind when needed."""
    if "/" in name:
        kind, _, name = name.partition("/")
    if kind:
        return registry(kind).resolve(name)
    short = name.partition(":")[2] or name
    kinds = find_kinds(name) or find_kinds(short)
    if not kinds:
        hints = [f"{k}/{c}" for k in KINDS for c in registry(k).suggest(name)][:3]
        hint = ("; did you mean " + " or ".join(f"'{h}'" for h in hints) + "?") if hints else ""
        raise UnknownComponentError(f"no component is named '{name}'{hint} (`sce list` shows all)")
    return registry(kinds[0]).resolve(name)


def default_node(entry: Entry) -> dict[str, Any]:
    """A node with ``_name_`` and every YAML-expressible default of the component."""
    spec = component_spec(entry.load(), entry.kind)
    node: dict[str, Any] = {NAME_KEY: entry.name}
    for p in spec.params.values():
        if p.runtime:
            continue
        if p.default is inspect.Parameter.empty:
            node[p.name] = "???"
        elif yaml_default(p.default):
            node[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return node


def source_of(obj: Any) -> str:
    """``file:line`` of a component; a class made by a factory: its module's file."""
    try:
        return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (TypeError, OSError):
        module = sys.modules.get(getattr(obj, "__module__", ""))
        return str(getattr(module, "__file__", None) or "unknown")


def _inherited_docs(obj: Any, names: list[str]) -> list[str]:
    """The docstring of the base class whose parameters ``names`` a component takes through
    ``**kwargs: BaseArgs`` (its own docstring documents only what it adds)."""
    if not names or not inspect.isclass(obj):
        return []
    owners = [c for c in obj.__mro__ if "__init__" in vars(c)]
    base = next((c for c in owners[1:] if c.__doc__), None)
    if base is None:
        return []
    return ["", f"  Shared parameters ({', '.join(names)}), from {base.__module__}.{base.__qualname__}:",
            *("    " + line for line in inspect.cleandoc(base.__doc__).splitlines())]


def describe(name: str, kind: str | None = None, as_yaml: bool = False) -> str:
    """The text ``sce info`` prints."""
    from omegaconf import OmegaConf

    entry = find_entry(name, kind)
    obj = entry.load()
    snippet = OmegaConf.to_yaml(OmegaConf.create(default_node(entry)))
    if as_yaml:
        return snippet.rstrip()
    spec = component_spec(obj, entry.kind)
    source = source_of(obj)
    lines = [
        f"{singular(entry.kind)} '{entry.name}'",
        f"  provider: {entry.provider}",
        f"  target:   {entry.target}",
        f"  source:   {source}",
        "",
        *("  " + line for line in (spec.doc or "(no docstring)").splitlines()),
        *_inherited_docs(obj, [p.name for p in spec.params.values() if p.inherited]),
        "",
        "parameters:",
    ]
    for p in spec.params.values():
        if p.runtime:
            default = "(given at build time)"
        elif p.default is inspect.Parameter.empty:
            default = "(required)"
        elif isinstance(p.default, dict) and p.default and yaml_default(p.default):
            default = "= (defaults in the YAML below)"
        else:
            default = f"= {p.default!r}"
        lines.append(f"  {p.name}: {p.type_text} {default}")
    if not spec.params:
        lines.append("  (none)")
    others = [k for k in find_kinds(entry.name) if k != entry.kind]
    if others:
        lines.append(f"(also a name in: {', '.join(others)})")
    lines += ["", "YAML:", *("  " + line for line in snippet.rstrip().splitlines())]
    return "\n".join(lines)
