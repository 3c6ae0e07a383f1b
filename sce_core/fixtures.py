"""Helpers for plugin authors' tests: isolated registries, temporary components, YAML builds,
whole-config checks and fake installed distributions (re-exported by :mod:`sce_core.testing`).

::

    with isolated_registries():                  # in-process registrations are undone
        with tmp_component("trunks", "tiny", TinyTrunk):
            trunk = build_from_yaml("_name_: tiny\\nwidth: 8", kind="trunks")

``fake_distribution`` writes a ``*.dist-info`` with entry points into a folder so discovery
can be tested without installing anything.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sce_core.registries import current_scan, refresh, registry, restore, snapshot


@contextlib.contextmanager
def isolated_registries() -> Iterator[None]:
    """Fresh registries inside the block (rescanned); the previous ones come back after."""
    from sce_core.hooks import reset_plugin_manager

    saved, scan = snapshot(), current_scan()
    refresh()
    reset_plugin_manager()
    try:
        yield
    finally:
        restore(saved, scan)
        reset_plugin_manager()


@contextlib.contextmanager
def tmp_component(kind: str, name: str, obj: Any) -> Iterator[Any]:
    """Register ``obj`` as ``kind/name`` for the duration of the block."""
    registry(kind).register(name, obj)
    try:
        yield obj
    finally:
        registry(kind).unregister(name)


def build_from_yaml(text: str, kind: str, **runtime: Any) -> Any:
    """Build one component node written as YAML text (validated first).

    ``text`` is a mapping with ``_name_`` or a bare name (``"r2plus1d_tiny"``).
    """
    import yaml
    from omegaconf import OmegaConf

    from sce_core.building import build

    parsed = yaml.safe_load(text)
    return build(kind, parsed if isinstance(parsed, str) else OmegaConf.create(text), **runtime)


def assert_config_valid(name_or_path: str | Path, overrides: tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` listing every problem of a config (shipped name or path)."""
    from sce_core.config import load_config
    from sce_core.validate import check_config

    check_config(load_config(name_or_path, overrides))


def fake_distribution(
    root: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str] | None = None,
    version: str = "1.0",
) -> Path:
    """Write a minimal installed distribution (dist-info + modules) under ``root``.

    ``entry_points`` maps groups (``sce.trunks``) to ``{name: "module:attr"}``; ``modules``
    maps relative file paths (``my_pkg/trunks.py``) to source text. Put ``root`` on
    ``sys.path`` (see :func:`on_sys_path`) to make it visible.
    """
    root.mkdir(parents=True, exist_ok=True)
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{ep_name} = {target}" for ep_name, target in eps.items()]
        lines.append("")
    (dist_info / "entry_points.txt").write_text("\n".join(lines))
    for rel, source in (modules or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


@contextlib.contextmanager
def on_sys_path(*paths: Path) -> Iterator[None]:
    """Put folders on ``sys.path`` and rescan entry points; undo both afterwards."""
    added = [str(p) for p in paths]
    sys.path[:0] = added
    with isolated_registries():
        try:
            yield
        finally:
            for p in added:
                sys.path.remove(p)
            for mod in [m for m, v in sys.modules.items()
                        if any(str(getattr(v, "__file__", "") or "").startswith(p) for p in added)]:
                del sys.modules[mod]
