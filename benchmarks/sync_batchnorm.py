"""``GlobalBatchNorm`` (``trainer.sync_batchnorm``) against plain BatchNorm, measured in the same run.

Usage: python benchmarks/sync_batchnorm.py [--batch 4] [--frames 8] [--size 112] [--ranks 8]
       [--repeats 5] [--device cpu|cuda] [--dtype float32|bfloat16] [--before COMMIT]

One training forward and backward of a BatchNorm at each of R3D-18's four stage shapes for a
local batch of ``batch`` clips of ``frames x size x size`` (the stem's output and each stage's).
Baseline: ``torch.nn.BatchNorm3d``, torch's fused kernels over the local batch, which is what a
synchronised layer costs at best without its communication. ``GlobalBatchNorm`` runs with its
collectives emulated for ``--ranks`` processes (the all-gather returns this rank's statistics
``ranks`` times), so the figures hold its arithmetic and launches, not the network. Printed:
ops dispatched per layer (a ``TorchDispatchMode`` counter, views excluded: about one kernel
launch each on a GPU) and the median time of forward + backward, each as a ratio to plain
BatchNorm; ``--before COMMIT`` adds the same figures for ``sce_core/sync_batchnorm.py`` as it was
at that commit (read with ``git show``).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]


class OpCounter(TorchDispatchMode):
    """Non-view ops dispatched inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += not func.is_view
        return func(*args, **(kwargs or {}))


def emulate_ranks(module: ModuleType, ranks: int) -> ModuleType:
    module._world_size = lambda: ranks
    module._gather_rows = lambda local: local.repeat(ranks, 1)
    module._sum_over_ranks = lambda t: t * ranks
    return module


def module_at(commit: str) -> ModuleType:
    """``sce_core/sync_batchnorm.py`` as it was at ``commit``, imported under another name."""
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:sce_core/sync_batchnorm.py"],
                          check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sync_batchnorm_before.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location("sync_batchnorm_before", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def stage_shapes(batch: int, frames: int, size: int) -> list[tuple[int, ...]]:
    """R3D-18's BatchNorm inputs: the stem (stride 1, 2, 2) and stages 2 to 4 (stride 2 each)."""
    shapes, t, s = [], frames, size // 2
    for width in (64, 128, 256, 512):
        shapes.append((batch, width, max(t, 1), max(s, 1), max(s, 1)))
        t, s = t // 2, s // 2
    return shapes


def measure(make: Any, shape: tuple[int, ...], dtype: torch.dtype, device: str, repeats: int) -> tuple[int, float]:
    """(ops, median seconds) of one training forward + backward of the layer ``make()`` builds."""
    layer = make(shape[1]).to(device).train()
    x = torch.randn(shape, device=device).to(dtype).requires_grad_()
    grad = torch.randn(shape, device=device).to(dtype)
    layer(x).backward(grad)  # warm-up
    with OpCounter() as counter:
        layer(x).backward(grad)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        layer(x).backward(grad)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return counter.ops, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="local batch (clips per rank)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112, help="crop side")
    parser.add_argument("--ranks", type=int, default=8, help="processes the collectives emulate")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--before", metavar="COMMIT", help="also measure the layer at this commit")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(REPO))
    from sce_core import sync_batchnorm

    dtype = getattr(torch, args.dtype)
    layers = {"plain BatchNorm3d": nn.BatchNorm3d,
              "GlobalBatchNorm": lambda c: emulate_ranks(sync_batchnorm, args.ranks).GlobalBatchNorm(c)}
    if args.before:
        before = emulate_ranks(module_at(args.before), args.ranks)
        layers[f"GlobalBatchNorm at {args.before}"] = before.GlobalBatchNorm
    print(f"BatchNorm forward + backward on {args.device}, {args.dtype}, local batch {args.batch} of "
          f"{args.frames} x {args.size} x {args.size}, collectives emulated for {args.ranks} ranks")
    print(f"{'layer':<34} {'shape':<24} {'ops':>5} {'ms':>9} {'time / plain':>13}")
    totals = dict.fromkeys(layers, 0.0)
    for shape in stage_shapes(args.batch, args.frames, args.size):
        plain_time = None
        for name, make in layers.items():
            ops, seconds = measure(make, shape, dtype, args.device, args.repeats)
            plain_time = plain_time or seconds
            totals[name] += seconds
            print(f"{name:<34} {str(shape):<24} {ops:>5} {seconds * 1e3:>9.2f} {seconds / plain_time:>12.2f}x")
    plain_total = totals["plain BatchNorm3d"]
    for name, total in totals.items():
        print(f"all four shapes: {name:<34} {total * 1e3:9.2f} ms  {total / plain_total:.2f}x plain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
