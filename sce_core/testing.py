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
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sce_core.errors import SCEError
from sce_core.registries import (
    KINDS,
    current_scan,
    normalize_dist,
    plugin_entry_points,
    refresh,
    registry,
    restore,
    singular,
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


# -- conformance checks (`sce plugin validate`) -----------------------------------------
SMOKE_CLIP_SHAPE = (2, 3, 4, 32, 32)
SMOKE_IMAGE_SHAPE = (2, 3, 32, 32)
SMOKE_BATCH = 4
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
HOOKS_GROUP = "sce.hooks"
CONFIGS_GROUP = "sce.configs"
_INPUT_DIM_ATTRS = ("input_dim", "in_features", "in_dim")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _smoke_trunk(trunk: Any) -> str | None:
    """Trunk contract: ``(B, C, T, H, W)`` (or images ``(B, C, H, W)``) -> ``(B, num_features)``."""
    import torch

    dim = getattr(trunk, "num_features", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        return "trunk has no positive integer `num_features` attribute (the feature size D)"
    if hasattr(trunk, "eval"):
        trunk.eval()
    errors = []
    for shape in (SMOKE_CLIP_SHAPE, SMOKE_IMAGE_SHAPE):
        try:
            with torch.no_grad():
                out = trunk(torch.rand(*shape))
        except Exception as exc:  # noqa: BLE001 - an image trunk fails on clips, and back
            errors.append(f"{shape}: {_first_line(exc)}")
            continue
        if not torch.is_tensor(out) or tuple(out.shape) != (shape[0], dim):
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            return f"trunk maps {shape} to {got}, expected ({shape[0]}, {dim}) = (B, num_features)"
        if not out.dtype.is_floating_point or not bool(torch.isfinite(out).all()):
            return f"trunk output on {shape} is not finite floating point"
        return None
    return "trunk forward failed on a clip batch and on an image batch: " + "; ".join(errors)


def _smoke_head(head: Any) -> str | None:
    """Head contract: ``(B, D_in) -> (B, D_out)`` (``D_in`` read from ``input_dim`` or alike)."""
    import torch

    in_dim = next((getattr(head, a) for a in _INPUT_DIM_ATTRS
                   if isinstance(getattr(head, a, None), int)), None)
    if in_dim is None:
        return None  # the input size is only known at build time
    out_dim = getattr(head, "num_features", None)
    if hasattr(head, "eval"):
        head.eval()
    errors = []
    for shape in ((SMOKE_BATCH, in_dim), (SMOKE_BATCH, in_dim, 1, 2, 2)):
        try:
            with torch.no_grad():
                out = head(torch.rand(*shape))
        except Exception as exc:  # noqa: BLE001 - feature-map heads take 5-D input
            errors.append(f"{shape}: {_first_line(exc)}")
            continue
        if not torch.is_tensor(out) or out.ndim != 2 or out.shape[0] != SMOKE_BATCH or (
                isinstance(out_dim, int) and out.shape[1] != out_dim):
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            want = f"({SMOKE_BATCH}, {out_dim if isinstance(out_dim, int) else 'D_out'})"
            return f"head maps {shape} to {got}, expected {want}"
        return None
    return "head forward failed: " + "; ".join(errors)


def _smoke_loss(loss: Any) -> str | None:
    """Loss contract: ``loss(q, k)`` on ``(B, D)`` rows is a finite scalar with a gradient in q."""
    import torch

    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(SMOKE_BATCH, 8, generator=gen), dim=1)
    k = torch.nn.functional.normalize(torch.randn(SMOKE_BATCH, 8, generator=gen), dim=1)
    q.requires_grad_(True)
    value = loss(q, k)
    value = value[0] if isinstance(value, tuple) else value
    if not (torch.is_tensor(value) and value.ndim == 0 and bool(torch.isfinite(value))):
        return "loss(q, k) must return a finite scalar tensor"
    if value.requires_grad:
        value.backward()
    if q.grad is None or not bool(torch.isfinite(q.grad).all()):
        return "loss(q, k) gives no finite gradient with respect to q"
    return None


def _smoke_clip_sampler(sampler: Any) -> str | None:
    """Sampler contract: ``sampler(duration, rng) -> [ClipWindow]``, reproducible from ``rng``."""
    from fractions import Fraction

    import numpy as np

    missing = [a for a in ("list_input", "multi_sample", "group") if not hasattr(sampler, a)]
    if missing:
        return (f"clip sampler lacks {missing}, which video_dataset reads; subclass "
                f"sce_builtins.data.clip_samplers.ClipSampler")
    windows = sampler(Fraction(10), np.random.default_rng(0))
    if not isinstance(windows, list) or not windows or not all(
            hasattr(w, "start") and hasattr(w, "end") for w in windows):
        return "clip sampler must return a non-empty list of ClipWindow"
    if any(not 0 <= w.start < w.end for w in windows):
        return "clip windows must have 0 <= start < end (seconds)"
    if windows != sampler(Fraction(10), np.random.default_rng(0)):
        return "clip sampler gives different windows for the same rng seed (use only `rng`)"
    return None


def _smoke_decoder(decoder: Any) -> str | None:
    missing = [m for m in ("duration", "decode") if not callable(getattr(decoder, m, None))]
    if missing:
        return f"decoder lacks the methods {missing} (see sce_builtins.data.types.VideoDecoder)"
    return None


def _smoke_callback(callback: Any) -> str | None:
    from lightning.pytorch import Callback

    if not isinstance(callback, Callback):
        return f"callback builds a {type(callback).__name__}, not a lightning.pytorch.Callback"
    return None


def _smoke_method(*methods: str) -> Any:
    def check(obj: Any) -> str | None:
        missing = [m for m in methods if not callable(getattr(obj, m, None))]
        return f"built object lacks the methods {missing}" if missing else None

    return check


SMOKE_TESTS = {
    "trunks": _smoke_trunk,
    "heads": _smoke_head,
    "losses": _smoke_loss,
    "clip_samplers": _smoke_clip_sampler,
    "decoders": _smoke_decoder,
    "callbacks": _smoke_callback,
    "optimizers": _smoke_method("step", "zero_grad"),
    "schedulers": _smoke_method("step"),
    "transforms": _smoke_method("__call__"),
}


def smoke_test(kind: str, obj: Any) -> str | None:
    """Run the kind's smoke test on a built component; return a problem or None.

    trunks: a forward pass on a tiny CPU clip ``(2, 3, 4, 32, 32)`` (or image) batch gives
    ``(2, num_features)``; heads: ``(4, input_dim) -> (4, num_features)``; losses: ``loss(q, k)``
    is a finite scalar with a gradient; clip samplers: windows from ``(Fraction(10), rng)``,
    the same for the same seed; decoders, callbacks, optimizers, schedulers, transforms: the
    methods the framework calls exist.
    """
    check = SMOKE_TESTS.get(kind)
    return check(obj) if check is not None else None


def smoke_runtime_args(names: list[str]) -> dict[str, Any] | None:
    """Stand-in values for runtime arguments when building with defaults (None: unknown)."""
    import torch

    param = torch.nn.Parameter(torch.zeros(2))
    makers = {
        "params": lambda: [param],
        "optimizer": lambda: torch.optim.SGD([param], lr=0.1),
        "model": lambda: torch.nn.Linear(2, 2),
        "num_steps_per_epoch": lambda: 10,
        "global_batch_size": lambda: 8,
    }
    names = list(names)
    if any(n not in makers for n in names):
        return None
    return {n: makers[n]() for n in names}


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


def _check_entry(entry: Any, kind: str, label: str) -> list[str]:
    """Problems of one loaded component: docstring, parameters, build with defaults, smoke."""
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
    elif settable:
        undocumented = undocumented_params(doc, settable)
        if undocumented is None:
            problems.append(f"{label}: docstring has no `Args:` section for its parameters "
                            f"{settable}")
        elif undocumented:
            problems.append(f"{label}: `Args:` does not document {undocumented}")
    reserved = [p for p in spec.params if is_reserved(p)]
    if reserved:
        problems.append(f"{label}: reserved parameter names {reserved} (the `_x_` form is kept "
                        f"for config keys)")
    try:
        typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - reported: the validator cannot check types then
        problems.append(f"{label}: type annotations do not resolve ({_first_line(exc)}); "
                        f"the config validator cannot check values")
    if reserved:
        return problems
    runtime_names = [p.name for p in spec.params.values() if p.runtime]
    if any(p.required for p in spec.params.values()):
        return problems  # no defaults for everything: nothing to build
    runtime = smoke_runtime_args(runtime_names)
    if runtime is None:
        return problems  # needs runtime inputs this check cannot make up
    node = default_node(entry)
    node[NAME_KEY] = entry.qualified_name
    try:
        built = build(kind, node, **runtime)
    except ConfigError as exc:
        return [*problems, f"{label}: its default node (`sce info --yaml`) does not validate: "
                           f"{exc}"]
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
        if isinstance(exc, ImportError) or isinstance(exc.__cause__, ImportError):
            return problems  # an optional dependency is missing here: not the plugin's fault
        return [*problems, f"{label}: building with defaults failed: {_first_line(exc)}"]
    try:
        problem = smoke_test(kind, built)
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the plugin
        problem = f"the {singular(kind)} smoke test failed: {_first_line(exc)}"
    if problem:
        problems.append(f"{label}: {problem}")
    return problems


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
        problems.append(f"{label}: implements no sce hook (hooks: sce_validate_config, "
                        f"sce_configure, sce_callbacks)")
    return problems


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
        return [f"distribution '{dist}' is disabled by SCE_DISABLE_PLUGINS; unset it to validate"]
    local_before = {(k, e.name) for k in KINDS for e in registry(k).entries() if e.origin == "local"}
    problems: list[str] = []
    found = 0
    for group in [f"sce.{kind}" for kind in KINDS] + [HOOKS_GROUP, CONFIGS_GROUP]:
        kind = group[len("sce."):]
        for ep, ep_dist, _version in plugin_entry_points(group):
            if normalize_dist(ep_dist) != wanted:
                continue
            found += 1
            label = f"{kind}/{ep.name} ({ep.value})"
            if group == HOOKS_GROUP:
                problems += _check_hooks(ep, label)
                continue
            if group == CONFIGS_GROUP:
                problems += _check_configs(ep, label)
                continue
            if not NAME_PATTERN.match(ep.name) or is_reserved(ep.name):
                problems.append(f"{label}: the name '{ep.name}' cannot be written in YAML (use "
                                f"letters, digits and '_', starting with a letter)")
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
            problems += _check_entry(entry, kind, label)
    if not found:
        problems.append(f"distribution '{dist}' provides no sce entry points (is it installed? "
                        f"re-install after editing entry points)")
    added = sorted({(k, e.name) for k in KINDS for e in registry(k).entries()
                    if e.origin == "local"} - local_before)
    if added:
        names = ", ".join(f"{k}/{n}" for k, n in added)
        problems.append(f"importing the distribution registered {names} in-process "
                        f"(sce_core.register at import time); declare entry points instead")
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
