"""``sce plugin validate DIST``: every check of a plugin distribution's entry points.

Per component: the name, the import, the docstring, the parameters, a build with defaults and
the kind's smoke test (:mod:`sce_core.contracts`); hook modules and shipped configs too.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from sce_core.config import CONFIG_GROUP
from sce_core.contracts import has_contract, smoke_runtime_args, smoke_test
from sce_core.errors import SCEError
from sce_core.hooks import HOOKS_GROUP
from sce_core.registries import KINDS, normalize_dist, plugin_entry_points, registry, singular

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def own_docstring(obj: Any) -> str:
    """The object's own docstring (a class does not inherit its base's here)."""
    raw = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(raw) if isinstance(raw, str) else ""


def undocumented_params(doc: str, params: list[str]) -> list[str] | None:
    """Parameters missing from the docstring's ``Args:`` section (None: no such section)."""
    match = re.search(r"^\s*(Args|Arguments|Parameters):\s*$", doc, re.MULTILINE)
    if match is None:
        return None
    section = doc[match.end():]
    return [p for p in params
            if not re.search(rf"^\s+{re.escape(p)}\s*(\([^)]*\))?\s*:", section, re.MULTILINE)]


def _check_entry(entry: Any, kind: str, label: str, notes: list[str] | None = None) -> list[str]:
    """Problems of one loaded component: docstring, parameters, build with defaults, smoke.

    Why a smoke test was skipped is appended to ``notes``.
    """
    import typing

    from sce_core.building import build
    from sce_core.errors import ConfigError
    from sce_core.info import default_node
    from sce_core.nodes import NAME_KEY, is_reserved
    from sce_core.signature import component_spec

    problems: list[str] = []
    obj = entry.obj
    spec = component_spec(obj, kind)
    settable = spec.settable()
    doc = own_docstring(obj)
    if not doc.strip():
        problems.append(f"{label}: no docstring (`sce info` shows it to users)")
    elif own := [n for n in settable if not spec.params[n].inherited]:
        undocumented = undocumented_params(doc, own)
        if undocumented is None:
            problems.append(f"{label}: docstring has no `Args:` section for its parameters "
                            f"{own}")
        elif undocumented:
            problems.append(f"{label}: `Args:` does not document {undocumented}")
    untyped = [p.name for p in spec.params.values() if not p.inherited and not p.runtime
               and p.annotation is inspect.Parameter.empty]
    if untyped:
        problems.append(f"{label}: parameters without a type hint {untyped}; the config validator "
                        f"cannot check their values (annotate them, e.g. `width: int = 8`)")
    reserved = [p for p in spec.params if is_reserved(p)]
    if reserved:
        problems.append(f"{label}: reserved parameter names {reserved} (the `_x_` form is kept "
                        f"for config keys)")
    try:
        typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - reported: the validator cannot check types then
        problems.append(f"{label}: type annotations do not resolve ({_first_line(exc)}); "
                        f"the config validator cannot check values")
    notes = notes if notes is not None else []
    if reserved:
        return problems
    runtime_names = [p.name for p in spec.params.values() if p.runtime]
    required = [p.name for p in spec.params.values() if p.required]
    if required:
        notes.append(f"{label}: not built nor smoke-tested: {required} have no default")
        return problems
    runtime = smoke_runtime_args(kind, runtime_names)
    if runtime is None:
        notes.append(f"{label}: not built nor smoke-tested: no {singular(kind)} contract makes "
                     f"stand-ins for its runtime arguments {runtime_names}")
        return problems
    node = default_node(entry)
    node[NAME_KEY] = entry.qualified_name
    try:
        built = build(kind, node, **runtime)
    except ConfigError as exc:
        return [*problems, f"{label}: its default node (`sce info --yaml`) does not validate: "
                           f"{exc}"]
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
        if isinstance(exc, SCEError) and isinstance(exc.__cause__, ImportError):
            exc = exc.__cause__  # the builder names the component; the label does here
        missing = _missing_module(exc)
        if isinstance(exc, ImportError) and missing not in _optional_modules(entry.dist):
            if missing is None:  # the component's own ImportError: an optional dependency
                notes.append(f"{label}: not built nor smoke-tested: {_first_line(exc)}")
                return problems
            exc_text = f"{_first_line(exc)} (a module its constructor imports; add it to " \
                       f"the distribution's dependencies)"
        elif isinstance(exc, ImportError):
            notes.append(f"{label}: not built nor smoke-tested: optional dependency "
                         f"'{missing}' is not installed")
            return problems
        else:
            exc_text = _first_line(exc)
        return [*problems, f"{label}: building with defaults failed: {exc_text}"]
    if not has_contract(kind):
        notes.append(f"{label}: built, not smoke-tested: no plugin declares a contract for "
                     f"{kind} (sce_kind_contracts)")
        return problems
    try:
        problem = smoke_test(kind, built)
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
        problem = f"the {singular(kind)} smoke test failed: {_first_line(exc)}"
    if problem:
        problems.append(f"{label}: {problem}")
    return problems


def _missing_module(exc: BaseException) -> str | None:
    """The top-level module a bare ``import`` did not find; None for an ``ImportError`` the
    component raises itself (its message says how to install an optional dependency)."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    return (exc.name or "?").split(".")[0]


def _optional_modules(dist: str | None) -> set[str]:
    """Module names of the distribution's optional (extra) requirements, by their project name."""
    from importlib_metadata import PackageNotFoundError, requires

    try:
        reqs = requires(dist or "") or []
    except PackageNotFoundError:
        return set()
    names = [re.split(r"[\s;<>=!~\[]", r, maxsplit=1)[0] for r in reqs if "extra ==" in r]
    return {n.replace("-", "_").lower() for n in names}


def _collisions(entry: Any, kind: str, label: str) -> list[str]:
    others = [e for e in registry(kind).entries() if e.name == entry.name and e is not entry]
    builtin = [e for e in others if e.origin == "builtin"]
    if builtin and entry.origin != "builtin":
        return [f"{label}: '{entry.name}' is a built-in {singular(kind)} name; the plugin's one "
                f"is reachable only as '{entry.qualified_name}' (rename it)"]
    plugins = [e.provider for e in others if e.origin == "plugin"]
    if plugins and entry.origin != "builtin":
        return [f"{label}: '{entry.name}' is also provided by {', '.join(plugins)}; the bare name "
                f"is ambiguous where both are installed (a more specific name avoids it)"]
    return []


def _check_hooks(ep: Any, label: str) -> list[str]:
    import pluggy

    from sce_core.hooks import PROJECT, SCEHookSpecs

    try:
        module = ep.load()
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
        return [f"{label}: does not import: {_first_line(exc)}"]
    marker = f"{PROJECT}_impl"
    unmarked = sorted(n for n in dir(module) if n.startswith("sce_") and callable(getattr(module, n))
                      and not hasattr(getattr(module, n), marker))
    problems = [f"{label}: {n} is not decorated with @sce_core.hooks.hookimpl (pluggy ignores it)"
                for n in unmarked]
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(SCEHookSpecs)
    try:
        pm.register(module, name=label)
        pm.check_pending()
    except Exception as exc:  # noqa: BLE001 - pluggy's validation errors
        return [*problems, f"{label}: {_first_line(exc)}"]
    if not pm.get_hookcallers(module) and not unmarked:
        hooks = ", ".join(sorted(n for n in vars(SCEHookSpecs) if n.startswith("sce_")))
        problems.append(f"{label}: implements no sce hook (hooks: {hooks})")
    return problems + _check_sections(module, label)


def _check_sections(module: Any, label: str) -> list[str]:
    """A declared section must not be one the core declares."""
    from sce_core.schema import SECTIONS

    declare = getattr(module, "sce_sections", None)
    if declare is None or not hasattr(declare, "sce_impl"):
        return []
    try:
        names = list(declare() or {})
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
        return [f"{label}: sce_sections() failed: {_first_line(exc)}"]
    return [f"{label}: sce_sections declares '{n}', a section of the core; choose another name"
            for n in names if n in SECTIONS]


def _check_configs(ep: Any, label: str) -> list[str]:
    import importlib.util

    from sce_core.config import SUFFIXES, load_config
    from sce_core.validate import validate_config

    spec = importlib.util.find_spec(ep.value)
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    if not roots:
        return [f"{label}: '{ep.value}' is not an importable package holding YAML files"]
    problems = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES):
            name = path.relative_to(root).with_suffix("").as_posix()
            try:
                cfg = load_config(path)
                issues = validate_config(cfg) if "model" in cfg else []
            except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
                problems.append(f"{label}: config '{name}' does not load: {_first_line(exc)}")
                continue
            problems += [f"{label}: config '{name}': {issue}" for issue in issues
                         if "mandatory value" not in issue.message]
    return problems


def check_plugin(dist: str) -> list[str]:
    """Problems of every entry point of distribution ``dist`` (empty when all pass).

    :func:`plugin_report` also says which components were not smoke-tested, and why.
    """
    return plugin_report(dist)[0]


def plugin_report(dist: str) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of every entry point of distribution ``dist``.

    Per component: the entry-point name is usable in YAML and takes no built-in name, the
    module imports, the object has its own docstring with an ``Args:`` entry per parameter,
    no parameter has the reserved ``_x_`` form, annotations resolve, the default node
    (``sce info --yaml``) validates and builds (runtime inputs such as ``params`` are made up)
    and the kind's :func:`smoke_test` passes. Hook modules must register with pluggy
    and implement at least one hook; shipped run configs must validate (``???`` aside).
    Importing the distribution's modules must not register anything in-process.
    """
    from sce_core.nodes import is_reserved
    from sce_core.registries import disabled_dists

    wanted = normalize_dist(dist)
    if wanted in disabled_dists() and wanted != normalize_dist("sce-core"):
        return [f"distribution '{dist}' is disabled by SCE_DISABLE_PLUGINS; unset it to validate"], []
    local_before = {(k, e.name) for k in KINDS for e in registry(k).entries() if e.origin == "local"}
    problems: list[str] = []
    notes: list[str] = []
    found = 0
    for group in [f"sce.{kind}" for kind in KINDS] + [HOOKS_GROUP, CONFIG_GROUP]:
        kind = group[len("sce."):]
        for ep, ep_dist, _version in plugin_entry_points(group):
            if normalize_dist(ep_dist) != wanted:
                continue
            found += 1
            label = f"{kind}/{ep.name} ({ep.value})"
            if group == HOOKS_GROUP:
                problems += _check_hooks(ep, label)
                continue
            if group == CONFIG_GROUP:
                problems += _check_configs(ep, label)
                continue
            if not NAME_PATTERN.match(ep.name) or is_reserved(ep.name):
                problems.append(f"{label}: the name '{ep.name}' cannot be written in YAML (use "
                                f"letters, digits, '_', '-' and '.', starting with a letter)")
            entry = next((e for e in registry(kind).entries()
                          if e.name == ep.name and normalize_dist(e.dist or "") == wanted), None)
            if entry is None:
                problems.append(f"{label}: not registered")
                continue
            problems += _collisions(entry, kind, label)
            try:
                entry.load()
            except SCEError as exc:
                problems.append(f"{label}: {exc}")
                continue
            problems += _check_entry(entry, kind, label, notes)
    if not found:
        problems.append(f"distribution '{dist}' provides no sce entry points (is it installed? "
                        f"re-install after editing entry points)")
    added = sorted({(k, e.name) for k in KINDS for e in registry(k).entries()
                    if e.origin == "local"} - local_before)
    if added:
        names = ", ".join(f"{k}/{n}" for k, n in added)
        problems.append(f"importing the distribution registered {names} in-process "
                        f"(sce_core.register at import time); declare entry points instead")
    return problems, notes
