"""pluggy hooks (project name ``sce``): behaviour extension, never component names.

Hook modules are declared in the ``sce.hooks`` entry-point group and imported only by
commands that fire hooks (``check``, ``pretrain``, ``evaluate``). A module that fails to
import is reported like a failed component and skipped.
"""

from __future__ import annotations

import traceback
from typing import Any

import pluggy

from sce_core.errors import PluginLoadError
from sce_core.registries import Entry, _record_failure, plugin_entry_points, strict_mode

PROJECT = "sce"
HOOKS_GROUP = "sce.hooks"

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
                pm.register(module, name=f"{dist}:{ep.name}")
            except Exception as exc:  # noqa: BLE001 - isolate a broken hook module
                entry = Entry("hooks", ep.name, ep.value, dist, version, "plugin", error=exc,
                              error_traceback=traceback.format_exc())
                _record_failure(entry)
                if strict_mode():
                    raise PluginLoadError(f"hook module {ep.value} of {dist} failed to load: "
                                          f"{type(exc).__name__}: {exc}") from exc
        pm.check_pending()
        _MANAGER = pm
    return _MANAGER


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
