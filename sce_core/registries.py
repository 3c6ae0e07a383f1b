"""Registries of components, filled lazily from the ``sce.<kind>`` entry-point groups.

Listing names reads packaging metadata only; a component's module is imported when it is
loaded (built, validated or shown by ``sce info``). Built-in components come from the
``sce-core`` distribution through the same groups as any third-party plugin.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sce_core.errors import (
    AmbiguousComponentError,
    ComponentLoadError,
    PluginLoadError,
    RegistrationError,
    UnknownComponentError,
)

KINDS: tuple[str, ...] = (
    "decoders",
    "clip_samplers",
    "datasets",
    "datamodules",
    "transforms",
    "trunks",
    "heads",
    "losses",
    "models",
    "optimizers",
    "schedulers",
    "callbacks",
    "strategies",
    "loggers",
)
_IRREGULAR = {"losses": "loss", "strategies": "strategy"}


def singular(kind: str) -> str:
    """``trunks`` -> ``trunk``, ``losses`` -> ``loss`` (for messages)."""
    return _IRREGULAR.get(kind, kind[:-1])


GROUP_PREFIX = "sce."
BUILTIN_DIST = "sce-core"
STRICT_ENV = "SCE_STRICT_PLUGINS"
DISABLE_ENV = "SCE_DISABLE_PLUGINS"
MAX_SUGGESTIONS = 3

# Arguments the framework passes at build time; a YAML node must not (and need not) set them.
KIND_RUNTIME_ARGS: dict[str, tuple[str, ...]] = {
    "optimizers": ("params",),
    "schedulers": ("optimizer",),
    "loggers": ("save_dir", "resume_step"),
}


def normalize_dist(name: str) -> str:
    """PEP 503 normalised distribution name (``Sce_Core`` -> ``sce-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def strict_mode() -> bool:
    """Whether ``SCE_STRICT_PLUGINS`` asks for load failures to be hard errors."""
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def disabled_dists() -> frozenset[str]:
    """Distributions named in ``SCE_DISABLE_PLUGINS`` (built-ins cannot be disabled)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(normalize_dist(d.strip()) for d in raw.split(",") if d.strip())


@dataclass
class Entry:
    """One registered component: where it comes from and, once loaded, the object."""

    kind: str
    name: str
    target: str | None = None  # "module:attr" for entry points
    dist: str | None = None
    version: str | None = None
    origin: str = "plugin"  # "builtin" | "plugin" | "local"
    obj: Any = None
    error: BaseException | None = None
    error_traceback: str = ""

    @property
    def provider(self) -> str:
        """``dist version`` for packaged components, ``local`` for in-process ones."""
        if self.origin == "local":
            return "local"
        return f"{self.dist} {self.version}"

    @property
    def qualified_name(self) -> str:
        """``dist:name``, the spelling that picks this provider explicitly."""
        return f"{self.dist}:{self.name}" if self.dist else self.name

    @property
    def status(self) -> str:
        """``failed`` after a failed import, ``loaded`` after a good one, else ``ok``."""
        if self.error is not None:
            return "failed"
        return "loaded" if self.obj is not None else "ok"

    def load(self) -> Any:
        """Import the component (once) and return it; failures are recorded and chained."""
        if self.obj is not None:
            return self.obj
        if self.error is not None:
            raise self._load_error() from self.error
        module_name, _, attr = (self.target or "").partition(":")
        try:
            import importlib

            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - isolate any failure of a plugin module
            self.error = exc
            self.error_traceback = traceback.format_exc()
            _record_failure(self)
            if strict_mode():
                raise PluginLoadError(
                    f"{self._load_error()} ({STRICT_ENV}=1 makes this fatal; "
                    f"unset it or set {DISABLE_ENV}={self.dist} to skip the plugin)"
                ) from exc
            raise self._load_error() from exc
        self.obj = obj
        if self.origin == "plugin" and strict_mode():
            load_distribution(self.dist or "")
        return obj

    def _load_error(self) -> ComponentLoadError:
        return ComponentLoadError(
            f"could not import {singular(self.kind)} '{self.name}' from {self.provider} "
            f"({self.target}): {type(self.error).__name__}: {self.error}"
        )


_FAILURES: list[Entry] = []


def _record_failure(entry: Entry) -> None:
    if entry not in _FAILURES:
        _FAILURES.append(entry)


def load_failures() -> list[Entry]:
    """Entries whose module failed to import in this process, in order of failure."""
    return list(_FAILURES)


@dataclass
class Conflict:
    """A name offered by a distribution that could not get it."""

    kind: str
    name: str
    providers: list[str]
    reason: str


@dataclass
class Registry:
    """All components of one kind, keyed by name."""

    kind: str
    _entries: dict[str, list[Entry]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)

    # -- filling -----------------------------------------------------------------------
    def _add_entry_point(self, entry: Entry) -> None:
        existing = self._entries.setdefault(entry.name, [])
        if entry.origin == "builtin":
            existing.insert(0, entry)
            for other in existing[1:]:
                if other.origin == "plugin":
                    self._conflict(entry, other)
            return
        builtin = next((e for e in existing if e.origin == "builtin"), None)
        if builtin is not None:
            self._conflict(builtin, entry)
        existing.append(entry)

    def _conflict(self, builtin: Entry, entry: Entry) -> None:
        """Record that a plugin's ``entry`` offers the name of the built-in ``builtin``."""
        self.conflicts.append(
            Conflict(
                self.kind,
                entry.name,
                [builtin.provider, entry.provider],
                f"'{entry.name}' is a built-in name; {entry.dist} cannot take it "
                f"(still reachable as '{entry.qualified_name}')",
            )
        )

    def conflicted(self, entry: Entry) -> bool:
        """Whether ``entry`` is a plugin's component that a built-in of that name shadows."""
        return any(c.name == entry.name and entry.provider in c.providers[1:]
                   for c in self.conflicts)

    def register(self, name: str, obj: Any = None) -> Any:
        """Register ``obj`` under ``name`` in this process (decorator when ``obj`` is None).

        Re-registering the same object is a no-op; a different object under a taken name
        is an error.
        """
        if obj is None:

            def decorator(target: Any) -> Any:
                self.register(name, target)
                return target

            return decorator
        existing = self._entries.get(name, [])
        for entry in existing:
            if entry.origin == "local" and entry.obj is obj:
                return obj
            if entry.origin != "local" and entry.target == _target_of(obj):
                return obj
        if existing:
            raise RegistrationError(
                f"{singular(self.kind)} '{name}' is already provided by {existing[0].provider}; "
                f"register under another name"
            )
        self._entries[name] = [Entry(self.kind, name, _target_of(obj), origin="local", obj=obj)]
        return obj

    def unregister(self, name: str) -> None:
        """Remove an in-process registration (used by :mod:`sce_core.testing`)."""
        entries = [e for e in self._entries.get(name, []) if e.origin != "local"]
        if entries:
            self._entries[name] = entries
        else:
            self._entries.pop(name, None)

    # -- queries -----------------------------------------------------------------------
    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern`` (no module is imported)."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def entries(self) -> Iterator[Entry]:
        """Every entry, including shadowed and ambiguous ones."""
        for name in sorted(self._entries):
            yield from self._entries[name]

    def __contains__(self, name: str) -> bool:
        return self._find(name) is not None

    def _find(self, name: str) -> list[Entry] | None:
        if ":" in name:
            dist, _, short = name.partition(":")
            dist = normalize_dist(dist)
            matches = [e for e in self._entries.get(short, []) if normalize_dist(e.dist or "") == dist]
            return matches or None
        return self._entries.get(name) or None

    def resolve(self, name: str) -> Entry:
        """The entry for ``name`` (``dist:name`` allowed), without importing anything."""
        candidates = self._find(name)
        if candidates is None:
            raise UnknownComponentError(self.unknown_message(name))
        if candidates[0].origin in ("builtin", "local") or len(candidates) == 1:
            return candidates[0]
        providers = " and ".join(f"{e.provider} ('{e.qualified_name}')" for e in candidates)
        raise AmbiguousComponentError(
            f"{singular(self.kind)} '{name}' is provided by {providers}; write one of those names "
            f"or disable one distribution with {DISABLE_ENV}"
        )

    def get(self, name: str) -> Any:
        """The loaded component object for ``name``."""
        return self.resolve(name).load()

    def suggest(self, name: str) -> list[str]:
        """Up to three close names in this registry."""
        short = name.partition(":")[2] or name
        return difflib.get_close_matches(short, list(self._entries), n=MAX_SUGGESTIONS, cutoff=0.6)

    def unknown_message(self, name: str) -> str:
        """One-line message for an unknown name with suggestions and a wrong-kind hint."""
        kind = singular(self.kind)
        msg = f"unknown {kind} '{name}'"
        close = self.suggest(name)
        if close:
            msg += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        others = [k for k in KINDS if k != self.kind and name in registry(k)]
        if others:
            msg += f" ('{name}' is a {singular(others[0])}, not a {kind})"
        msg += f" ({len(self._entries)} {self.kind} installed: `sce list {self.kind}`)"
        failed = [e for e in _FAILURES if e.kind == self.kind]
        if failed:
            msg += "; note: " + ", ".join(f"{e.dist} failed to load" for e in failed)
        return msg


def _target_of(obj: Any) -> str | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else None


# -- discovery -------------------------------------------------------------------------
_REGISTRIES: dict[str, Registry] | None = None
_SCAN: list[Any] | None = None


def scan_entry_points() -> list[Any]:
    """Every entry point of an ``sce.*`` group, from one memoised metadata scan."""
    global _SCAN
    if _SCAN is None:
        from importlib_metadata import entry_points

        eps = entry_points()
        _SCAN = [ep for group in sorted(eps.groups) if group.startswith(GROUP_PREFIX)
                 for ep in eps.select(group=group)]
    return _SCAN


def plugin_entry_points(group: str) -> list[tuple[Any, str, str]]:
    """``(entry_point, dist, version)`` of one group, skipping disabled distributions."""
    disabled = disabled_dists()
    out = []
    for ep in scan_entry_points():
        if ep.group != group:
            continue
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "?"
        if normalize_dist(dist) != BUILTIN_DIST and normalize_dist(dist) in disabled:
            continue
        out.append((ep, dist, version))
    return out


def _discover() -> dict[str, Registry]:
    registries = {kind: Registry(kind) for kind in KINDS}
    for kind, reg in registries.items():
        for ep, dist, version in plugin_entry_points(GROUP_PREFIX + kind):
            origin = "builtin" if normalize_dist(dist) == BUILTIN_DIST else "plugin"
            reg._add_entry_point(Entry(kind, ep.name, ep.value, dist, version, origin))
    return registries


def _all() -> dict[str, Registry]:
    global _REGISTRIES
    if _REGISTRIES is None:
        _REGISTRIES = _discover()
    return _REGISTRIES


def registry(kind: str) -> Registry:
    """The registry of one kind (``trunks``, ``losses``, ...)."""
    registries = _all()
    if kind not in registries:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UnknownComponentError(f"unknown kind '{kind}'{hint} (kinds: {', '.join(KINDS)})")
    return registries[kind]


def register(kind: str, name: str, obj: Any = None) -> Any:
    """Register a component in this process: ``@register("trunks", "tiny")`` or a call."""
    return registry(kind).register(name, obj)


def refresh() -> None:
    """Forget the metadata scan and the registries (after installing a plugin, in tests)."""
    global _REGISTRIES, _SCAN
    _REGISTRIES = None
    _SCAN = None
    _FAILURES.clear()
    _TOUCHED.clear()
    try:
        import importlib_metadata

        importlib_metadata.FastPath.__new__.cache_clear()  # type: ignore[attr-defined]
    except AttributeError:
        pass


def find_kinds(name: str) -> list[str]:
    """The kinds that provide ``name`` (for slots that do not say which kind they hold)."""
    return [kind for kind in KINDS if name in registry(kind)]


def load_all(strict: bool | None = None) -> list[Entry]:
    """Import every registered component; return failures (raise in strict mode)."""
    failures = []
    for reg in _all().values():
        for entry in reg.entries():
            try:
                entry.load()
            except PluginLoadError:
                raise
            except ComponentLoadError:
                failures.append(entry)
    if failures and (strict if strict is not None else strict_mode()):
        names = ", ".join(f"{e.kind}/{e.name} ({e.provider})" for e in failures)
        raise PluginLoadError(f"plugins failed to load: {names}")
    return failures


_TOUCHED: set[str] = set()


def load_distribution(dist: str) -> None:
    """Strict mode: import every component of a distribution the command touched.

    Called once a module of ``dist`` was imported (a component, a hook module); the first
    component that fails raises :class:`PluginLoadError`.
    """
    key = normalize_dist(dist)
    if key in _TOUCHED:
        return
    _TOUCHED.add(key)
    for reg in _all().values():
        for entry in list(reg.entries()):
            if normalize_dist(entry.dist or "") == key and entry.obj is None:
                if entry.error is not None:
                    raise PluginLoadError(f"{entry._load_error()} ({STRICT_ENV}=1 makes this "
                                          f"fatal)") from entry.error
                entry.load()


def snapshot() -> dict[str, Registry] | None:
    """The current registries object, for :func:`restore`."""
    return _REGISTRIES


def restore(state: dict[str, Registry] | None, scan: list[Any] | None = None) -> None:
    """Put back registries saved with :func:`snapshot`."""
    global _REGISTRIES, _SCAN
    _REGISTRIES = state
    _SCAN = scan


def current_scan() -> list[Any] | None:
    """The memoised scan (for snapshots)."""
    return _SCAN

