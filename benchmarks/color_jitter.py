"""Batched colour jitter vs torchaug 0.3.3's ``BatchRandomColorJitter``, measured in the same run.

Usage: python benchmarks/color_jitter.py [--batches 4 64] [--frames 8] [--size 112]
       [--tiny 8] [--repeats 5] [--device cpu|cuda] [--threads 1] [--num-rand-calls -1]

The recipe's jitter (brightness 0.8, contrast 0.8, saturation 0.4, hue 0.2, p 0.8, in place)
on clips ``3 x frames x size x size`` as the video wrapper presents them (contiguous
``(B, T, 3, H, W)``). For each batch size it prints the ops
dispatched per call (a ``TorchDispatchMode`` counter: each is a kernel launch on a GPU, views
aside), the host syncs among them, and the median time per call at ``size`` and at ``tiny``
pixels (where arithmetic is negligible, so the time is the Python and dispatch overhead a GPU
step pays), each as the ratio torchaug / ours (median over alternating calls, so a loaded
machine slows both alike).
"""

import argparse
import statistics
import time
from collections import Counter

import torch
from sce_builtins.transforms.color_jitter import BatchRandomColorJitter
from torch.utils._python_dispatch import TorchDispatchMode
from torchaug import batch_transforms as tab

RECIPE = dict(brightness=0.8, contrast=0.8, saturation=0.4, hue=0.2, p=0.8, inplace=True)
SYNC_OPS = ("aten._local_scalar_dense", "aten.nonzero", "aten.masked_select")


class OpCounter(TorchDispatchMode):
    """Count the aten ops dispatched inside the ``with`` block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        out = func(*args, **(kwargs or {}))
        if func.is_view:
            self.views += 1
        return out


def _clip(batch: int, frames: int, size: int, device: str) -> torch.Tensor:
    return torch.rand(batch, frames, 3, size, size, device=device)


def count_ops(transform: torch.nn.Module, x: torch.Tensor) -> OpCounter:
    """Ops dispatched by one call on a copy of ``x`` (after one warm-up call)."""
    transform(x.clone())
    y = x.clone()
    with OpCounter() as counter:
        transform(y)
    return counter


def _once(transform: torch.nn.Module, x: torch.Tensor, device: str) -> float:
    y = x.clone()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    transform(y)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_pair(theirs: torch.nn.Module, ours: torch.nn.Module, x: torch.Tensor, repeats: int,
              device: str) -> tuple[float, float, float]:
    """Median seconds per call of each (fresh copy of ``x`` per call, copy not timed) and the
    median of the paired ratios theirs / ours; calls alternate, so both see the same load."""
    _once(theirs, x, device), _once(ours, x, device)  # warm-up
    pairs = [(_once(theirs, x, device), _once(ours, x, device)) for _ in range(repeats)]
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(a / b for a, b in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--tiny", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-rand-calls", type=int, default=-1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kw = dict(RECIPE, num_rand_calls=args.num_rand_calls)
    ours = BatchRandomColorJitter(**kw).to(args.device)
    theirs = tab.BatchRandomColorJitter(**kw).to(args.device)
    print(f"device={args.device} threads={args.threads} num_rand_calls={args.num_rand_calls} "
          f"clips 3x{args.frames}x{args.size}x{args.size} (overhead at {args.tiny}x{args.tiny})")
    print(f"{'batch':>5} {'impl':>8} {'ops':>6} {'non-view':>8} {'syncs':>5} "
          f"{'ms/call':>9} {'ms tiny':>8}")
    for batch in args.batches:
        x = _clip(batch, args.frames, args.size, args.device)
        tiny = _clip(batch, args.frames, args.tiny, args.device)
        counts = {}
        for name, t in (("torchaug", theirs), ("ours", ours)):
            c = count_ops(t, tiny)
            total = sum(c.ops.values())
            counts[name] = (total, total - c.views, sum(c.ops[k] for k in SYNC_OPS))
        full = time_pair(theirs, ours, x, args.repeats, args.device)
        small = time_pair(theirs, ours, tiny, args.repeats * 10, args.device)
        for i, name in enumerate(("torchaug", "ours")):
            total, non_view, syncs = counts[name]
            print(f"{batch:>5} {name:>8} {total:>6} {non_view:>8} {syncs:>5} "
                  f"{full[i] * 1e3:>9.2f} {small[i] * 1e3:>8.3f}")
        a, b = counts["torchaug"], counts["ours"]
        print(f"{batch:>5} {'ratio':>8} {a[0] / b[0]:>5.1f}x {a[1] / b[1]:>7.1f}x {'':>5} "
              f"{full[2]:>8.2f}x {small[2]:>7.2f}x   (torchaug / ours, median of paired calls)")


if __name__ == "__main__":
    main()
