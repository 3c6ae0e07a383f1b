"""The built-ins' per-kind contracts (``sce_kind_contracts`` hook): the smoke test of each kind
whose conventions they define, and stand-ins for the runtime arguments their optimizers and
schedulers take. ``sce plugin validate`` runs them on every plugin's components of that kind.

Importing this module imports neither torch nor Lightning.
"""

from __future__ import annotations

from typing import Any

from sce_core.contracts import KindContract

SMOKE_CLIP_SHAPE = (2, 3, 4, 32, 32)
SMOKE_IMAGE_SHAPE = (2, 3, 32, 32)
SMOKE_BATCH = 4
SMOKE_STEPS_PER_EPOCH = 10
SMOKE_GLOBAL_BATCH = 8
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
    """Loss contract: ``loss(q, k)`` on ``(B, D)`` rows is a finite scalar with a gradient in q;
    a loss that takes a ``queue`` gets a ``(K, D)`` one (ReSSL's relation needs it)."""
    import inspect

    import torch

    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(SMOKE_BATCH, 8, generator=gen), dim=1)
    k = torch.nn.functional.normalize(torch.randn(SMOKE_BATCH, 8, generator=gen), dim=1)
    queue = torch.nn.functional.normalize(torch.randn(2 * SMOKE_BATCH, 8, generator=gen), dim=1)
    q.requires_grad_(True)
    try:
        takes_queue = "queue" in inspect.signature(getattr(loss, "forward", loss)).parameters
    except (TypeError, ValueError):
        takes_queue = False
    value = loss(q, k, queue=queue) if takes_queue else loss(q, k)
    value = value[0] if isinstance(value, tuple) else value
    if not (torch.is_tensor(value) and value.ndim == 0 and bool(torch.isfinite(value))):
        return "loss(q, k) must return a finite scalar tensor"
    grad = None
    if value.requires_grad:  # autograd.grad: the loss's own parameters keep their .grad
        (grad,) = torch.autograd.grad(value, q, allow_unused=True)
    if grad is None or not bool(torch.isfinite(grad).all()):
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


def _params() -> list[Any]:
    import torch

    return [torch.nn.Parameter(torch.zeros(2))]


def _optimizer() -> Any:
    import torch

    return torch.optim.SGD(_params(), lr=0.1)


def _model() -> Any:
    import torch

    return torch.nn.Linear(2, 2)


_STEPS = {"num_steps_per_epoch": lambda: SMOKE_STEPS_PER_EPOCH}

CONTRACTS = {
    "trunks": KindContract(_smoke_trunk, at_run_start=True),
    "heads": KindContract(_smoke_head),
    "losses": KindContract(_smoke_loss, at_run_start=True),
    "clip_samplers": KindContract(_smoke_clip_sampler),
    "decoders": KindContract(_smoke_decoder),
    "callbacks": KindContract(_smoke_callback),
    "optimizers": KindContract(_smoke_method("step", "zero_grad"), {
        "params": _params, "model": _model, "global_batch_size": lambda: SMOKE_GLOBAL_BATCH,
        **_STEPS}),
    "schedulers": KindContract(_smoke_method("step"), {"optimizer": _optimizer, **_STEPS}),
    "transforms": KindContract(_smoke_method("__call__")),
}
