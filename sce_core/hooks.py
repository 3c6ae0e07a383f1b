"""pluggy hooks (project name ``sce``): behaviour extension, never component names.

Hook modules are declared in the ``sce.hooks`` entry-point group and imported only by
commands that fire hooks (``check``, ``config``, ``pretrain``, ``evaluate``, ``plugin``). A
module that fails to import is reported like a failed component and skipped.

Declaration hooks (``sce_sections``, ``sce_evaluation_protocols``, ``sce_default_config``,
``sce_kind_contracts``) take no arguments and return data; :func:`declared` merges them with
the built-ins' answer first: a third party cannot take over what the built-ins declare.
"""

from __future__ import annotations

import functools
import sys
import traceback
import types
from typing import Any

import pluggy

from sce_core.errors import PluginHookError, PluginLoadError, SCEError
from sce_core.registries import (
    BUILTIN_DIST,
    DISABLE_ENV,
    STRICT_ENV,
    Entry,
    _record_failure,
    load_distribution,
    normalize_dist,
    plugin_entry_points,
    strict_mode,
)

PROJECT = "sce"
HOOKS_GROUP = "sce.hooks"

__all__ = ["SCEHookSpecs", "hookimpl", "hookspec"]  # docs/api.md

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class SCEHookSpecs:
    """The hooks a plugin may implement (decorate its functions with :data:`hookimpl`)."""

    @hookspec
    def sce_validate_config(self, config: dict[str, Any]) -> list[Any] | None:
        """Return extra problems of a resolved run config (strings or ``Issue`` objects).

        Called by ``sce check`` and before every run, after the built-in checks; results of
        all plugins are collected. ``config`` is plain Python data; do not modify it.
        """

    @hookspec(historic=True)
    def sce_configure(self, config: dict[str, Any]) -> None:
        """Be told the final resolved config of a run before anything is built.

        Historic: a hook module registered later (``--code`` files) still receives it.
        """

    @hookspec
    def sce_callbacks(self, config: dict[str, Any]) -> list[Any] | None:
        """Return extra ``lightning.Callback`` objects to add to the Trainer of a run."""

    @hookspec
    def sce_sections(self) -> dict[str, Any] | None:
        """Return the top-level run-config sections this plugin reads, ``{name: type}``.

        The type is a ``TypedDict`` (its keys are checked, with did-you-mean), a slot marker
        such as ``Component("models")``, or any annotation the validator checks. Sections the
        core declares cannot be redeclared (``sce plugin validate`` reports it).
        """

    @hookspec
    def sce_evaluation_protocols(self) -> dict[str, Any] | None:
        """Return ``{name: protocol}`` for ``sce evaluate NAME CONFIG``.

        A protocol is called with the prepared run (:class:`sce_core.runner.RunSetup`, whose
        ``fit()`` trains with the run's stop handling and ``test()`` tests) and returns the
        results to report; a record ``{"metrics": {name: value}, "pretrained": ..., "dataset":
        ..., "split_id": ...}`` is written to ``<run>/results.json`` for ``sce results``.
        """

    @hookspec
    def sce_default_config(self) -> str | None:
        """Return the config ``sce pretrain`` runs when no CONFIG is given (a shipped name)."""

    @hookspec
    def sce_kind_contracts(self) -> dict[str, Any] | None:
        """Return ``{kind: KindContract}``: the smoke test of built components of a kind and
        stand-ins for their runtime arguments (:mod:`sce_core.contracts`)."""


_MANAGER: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with every ``sce.hooks`` module loaded."""
    global _MANAGER
    if _MANAGER is None:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(SCEHookSpecs)
        for ep, dist, version in plugin_entry_points(HOOKS_GROUP):
            try:
                module = ep.load()
                name = f"{dist}:{ep.name}"
                pm.register(module if is_builtin(name) else isolated(module, name), name=name)
            except Exception as exc:  # noqa: BLE001 - isolate a broken hook module
                entry = Entry("hooks", ep.name, ep.value, dist, version, "plugin", error=exc,
                              error_traceback=traceback.format_exc())
                _record_failure(entry)
                if strict_mode():
                    raise PluginLoadError(f"hook module {ep.value} of {dist} failed to load: "
                                          f"{type(exc).__name__}: {exc}") from exc
        pm.check_pending()
        _MANAGER = pm
        if strict_mode():
            for dist in sorted({name.split(":", 1)[0] for name, _ in pm.list_name_plugin()}):
                if not is_builtin(dist):
                    load_distribution(dist)
    return _MANAGER


def isolated(module: Any, plugin: str) -> types.SimpleNamespace:
    """The module's hook implementations, each guarded by :func:`_guard`."""
    marker = f"{PROJECT}_impl"
    return types.SimpleNamespace(**{
        name: _guard(fn, name, plugin) for name in dir(module)
        if name.startswith("sce_") and hasattr(fn := getattr(module, name), marker)})


def _guard(fn: Any, hook: str, plugin: str) -> Any:
    """``fn``, with an exception attributed to the hook and the plugin: fatal in strict mode,
    else one stderr line and no answer from this implementation."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a plugin's hook must not break the command
            text = str(exc).strip().splitlines()
            what = f"hook {hook} of {plugin} raised {type(exc).__name__}: {text[0] if text else ''}"
            if strict_mode():
                raise PluginHookError(f"{what} ({STRICT_ENV}=1 makes this fatal; fix the hook "
                                      f"or set {DISABLE_ENV}={plugin.split(':')[0]})") from exc
            print(f"sce: warning: {what}; ignored (fix the hook, or set {STRICT_ENV}=1 to make "
                  f"it fatal)", file=sys.stderr)
            return None

    return call


def reset_plugin_manager() -> None:
    """Forget the loaded hook modules (tests, after installing a plugin)."""
    global _MANAGER
    _MANAGER = None


def collect_callbacks(config: dict[str, Any]) -> list[Any]:
    """Every callback returned by ``sce_callbacks`` implementations, flattened."""
    out: list[Any] = []
    for found in plugin_manager().hook.sce_callbacks(config=config):
        out += list(found or ())
    return out


def is_builtin(plugin: str) -> bool:
    """Whether a registered hook module (``dist:name``) belongs to sce-core itself."""
    return normalize_dist(plugin.split(":", 1)[0]) == BUILTIN_DIST


def declarations(hook: str) -> list[tuple[str, Any]]:
    """``(plugin, answer)`` of every implementation of an argument-free hook, built-ins first."""
    impls = getattr(plugin_manager().hook, hook).get_hookimpls()
    answers = [(impl.plugin_name, impl.function()) for impl in impls]
    return sorted(answers, key=lambda pa: not is_builtin(pa[0]))


def declared(hook: str, what: str) -> dict[str, Any]:
    """``{name: value}`` merged over a hook returning mappings; the built-ins' names win.

    A name two third-party plugins declare maps to an :class:`SCEError` naming both (raised
    by :func:`pick` when the name is used).
    """
    found: dict[str, list[tuple[str, Any]]] = {}
    for plugin, answer in declarations(hook):
        for name, value in (answer or {}).items():
            found.setdefault(name, []).append((plugin, value))
    out: dict[str, Any] = {}
    for name, providers in found.items():
        if len(providers) > 1 and not is_builtin(providers[0][0]):
            plugins = " and ".join(sorted(p for p, _ in providers))
            out[name] = SCEError(f"{what} '{name}' is declared by {plugins}; disable one "
                                 f"(SCE_DISABLE_PLUGINS=dist)")
        else:
            out[name] = providers[0][1]
    return out


def pick(values: dict[str, Any], name: str) -> Any:
    """``values[name]``, raising the ambiguity error :func:`declared` stored for it."""
    value = values[name]
    if isinstance(value, SCEError):
        raise value
    return value
