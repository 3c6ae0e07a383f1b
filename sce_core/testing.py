"""Helpers for testing sce-core plugins in isolation.

Use as a pytest plugin (``pytest_plugins = ["sce_core.testing"]``) for the fixtures, or call
the helpers directly::

    with isolated_registries():                  # in-process registrations are undone
        with tmp_component("trunks", "tiny", TinyTrunk):
            trunk = build_from_yaml("_name_: tiny\\nwidth: 8", kind="trunks")

``fake_distribution`` writes a ``*.dist-info`` with entry points into a folder so discovery
can be tested without installing anything; ``check_plugin`` is ``sce plugin validate``.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sce_core.errors import SCEError
from sce_core.registry import (
    KINDS,
    current_scan,
    normalize_dist,
    plugin_entry_points,
    refresh,
    registry,
    restore,
    snapshot,
)


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
    """Build one component node written as YAML text (validated first)."""
    from omegaconf import OmegaConf

    from sce_core.build import build

    return build(kind, OmegaConf.create(text), **runtime)


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


# -- conformance checks (`sce plugin validate`) -----------------------------------------
SMOKE_CLIP_SHAPE = (2, 3, 4, 32, 32)


def smoke_test(kind: str, obj: Any) -> str | None:
    """Run the kind's smoke test on a built component; return a problem or None."""
    if kind == "trunks":
        import torch

        obj.eval()
        with torch.no_grad():
            out = obj(torch.rand(*SMOKE_CLIP_SHAPE))
        dim = getattr(obj, "num_features", None)
        if not isinstance(dim, int):
            return "trunk has no integer `num_features` attribute"
        if tuple(out.shape) != (SMOKE_CLIP_SHAPE[0], dim):
            return f"trunk maps {SMOKE_CLIP_SHAPE} to {tuple(out.shape)}, expected (2, {dim})"
    if kind == "losses":
        import torch

        q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        k = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        value = obj(q, k)
        value = value[0] if isinstance(value, tuple) else value
        if not (torch.is_tensor(value) and value.ndim == 0 and torch.isfinite(value)):
            return "loss(q, k) must return a finite scalar tensor"
    if kind == "clip_samplers":
        from fractions import Fraction

        import numpy as np

        windows = obj(Fraction(10), np.random.default_rng(0))
        if not windows or not all(hasattr(w, "start") and hasattr(w, "end") for w in windows):
            return "clip sampler must return a non-empty list of ClipWindow"
    return None


def check_plugin(dist: str) -> list[str]:
    """Problems of every entry point of distribution ``dist`` (empty when all pass)."""
    from sce_core.nodes import is_reserved
    from sce_core.signature import component_spec

    wanted = normalize_dist(dist)
    problems: list[str] = []
    found = 0
    for kind in KINDS:
        for ep, ep_dist, _version in plugin_entry_points(f"sce.{kind}"):
            if normalize_dist(ep_dist) != wanted:
                continue
            found += 1
            label = f"{kind}/{ep.name} ({ep.value})"
            entry = next((e for e in registry(kind).entries()
                          if e.name == ep.name and normalize_dist(e.dist or "") == wanted), None)
            if entry is None:
                problems.append(f"{label}: not registered")
                continue
            try:
                obj = entry.load()
            except SCEError as exc:
                problems.append(f"{label}: {exc}")
                continue
            if not (inspect.getdoc(obj) or "").strip():
                problems.append(f"{label}: no docstring (`sce info` shows it to users)")
            spec = component_spec(obj, kind)
            reserved = [p for p in spec.params if is_reserved(p)]
            if reserved:
                problems.append(f"{label}: reserved parameter names {reserved} (the `_x_` form "
                                f"is kept for config keys)")
            if any(p.required for p in spec.params.values()):
                continue  # cannot build with defaults
            try:
                built = obj()
                problem = smoke_test(kind, built)
            except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
                problem = f"building with defaults or the smoke test failed: {type(exc).__name__}: {exc}"
            if problem:
                problems.append(f"{label}: {problem}")
    if not found:
        problems.append(f"distribution '{dist}' provides no sce entry points (is it installed? "
                        f"re-install after editing entry points)")
    return problems


# -- pytest fixtures (opt-in: pytest_plugins = ["sce_core.testing"]) ------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def sce_registry() -> Iterator[Any]:
        """Isolated registries for one test; yields :func:`sce_core.registry`."""
        with isolated_registries():
            yield registry
