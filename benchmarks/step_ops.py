"""Count what one training step asks of the host: dispatched ops (about one kernel launch each on
a GPU) and the points where the host reads a tensor value (a blocking device synchronisation
when the tensor lives on a GPU).

One full step cycle of the real run (``sce_core.runner.setup_run``: the run's callbacks, logging
and progress included) is counted with a ``TorchDispatchMode`` on the CPU: from the end of step
``warmup`` to the end of the next one, so it holds the batch transfer, the GPU augmentations,
both branches, the loss, backward, the optimizer, the EMA, the queue and every callback. The
data are synthetic batches of the config's shape (no decoding), and ``trainer.sync_batchnorm``
is emulated for ``--ranks`` processes (the all-gather returns this rank's statistics ``ranks``
times), since a CPU has no NCCL.

What a CPU count can and cannot say: every tensor is a host tensor here, so "host reads" are all
``.item()``/``.tolist()``/``float()``/boolean-mask style reads, whichever device the tensor would
be on with a GPU (a read of a CPU tensor, such as a random draw torchaug makes on the CPU, costs
no device sync there). The op count excludes views (no kernel). torch's own SyncBatchNorm does
not run on a CPU, so the "before" column of the issue's 8-rank SyncBN figures cannot be
reproduced here; our GlobalBatchNorm's forward and backward have no host read (see
tests/test_sync_batchnorm.py).

Usage::

    python benchmarks/step_ops.py                      # the recipe and its fast variant
    python benchmarks/step_ops.py --before e978cbe     # and the same count at an earlier commit
    python benchmarks/step_ops.py --reduced            # small sizes (what the test suite runs)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HOST_READS = {
    "aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
    "aten.is_nonzero.default", "aten.equal.default", "aten._unique2.default",
    "aten.unique_consecutive.default", "aten.unique_dim.default", "aten.repeat_interleave.Tensor",
}
CONFIGS = {"exact": "pretrain_r3d18_sce_kinetics200", "fast": "pretrain_r3d18_sce_kinetics200_fast"}


class OpCounter(TorchDispatchMode):
    """Counts dispatched non-view ops (by part of the step) and host reads (by the Python line
    that asked)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.by_op: collections.Counter = collections.Counter()
        self.host_reads: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if not func.is_view:
            self.ops += 1
            self.by_op[_category(traceback.extract_stack(limit=40))] += 1
        if name in HOST_READS:
            self.host_reads[f"{name.split('.')[1]} at {_caller()}"] += 1
        return func(*args, **(kwargs or {}))


CATEGORIES = (  # (path fragment, category), the first that matches the innermost frames wins
    ("torch/autograd/graph.py", "backward"), ("sync_batchnorm", "batch norm"), ("shuffle_bn", "batch norm"), ("torchaug", "augmentations"),
    ("/transforms/", "augmentations"), ("/trunks/", "trunk forward"), ("/heads/", "heads forward"),
    ("/losses/", "loss"), ("/optim/", "optimizer"), ("momentum.py", "EMA"), ("queue.py", "queue"),
    ("/optim/optimizer.py", "optimizer"), ("lightning", "lightning and callbacks"),
    ("sce_core", "lightning and callbacks"),
)


def _category(stack: traceback.StackSummary) -> str:
    for frame in reversed(stack):
        for fragment, category in CATEGORIES:
            if fragment in frame.filename:
                return category
    return "other"


def _caller() -> str:
    """The innermost frame outside torch and this file: who asked for the value."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        path = frame.filename
        if "/torch/" not in path and not path.endswith("step_ops.py"):
            parts = Path(path).parts
            short = "/".join(parts[-3:])
            return f"{short}:{frame.lineno}"
    return "?"


def _emulate_ranks(ranks: int) -> None:
    """GlobalBatchNorm's collectives answer as if ``ranks`` processes held this batch."""
    try:
        from sce_core import sync_batchnorm
    except ImportError:  # an earlier commit without it
        return
    sync_batchnorm._world_size = lambda: ranks
    sync_batchnorm._gather_rows = lambda local: local.repeat(ranks, 1)
    sync_batchnorm._sum_over_ranks = lambda t: t * ranks


class _Batches(torch.utils.data.Dataset):
    def __init__(self, batch: dict[str, Any], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.batch


def _datamodule(shape: tuple[int, ...], views: int, steps: int) -> Any:
    from lightning.pytorch import LightningDataModule

    class Synthetic(LightningDataModule):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(0)
            clips = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen) for _ in range(views)]
            self.batch = {"input": clips, "label": torch.zeros(shape[0], dtype=torch.long),
                          "idx": torch.arange(shape[0])}
            self.train_global_batch_size = shape[0]

        def train_dataloader(self) -> torch.utils.data.DataLoader:
            return torch.utils.data.DataLoader(_Batches(self.batch, steps), batch_size=None)

    return Synthetic()


def measure(config: str, batch: int, size: int, frames: int, ranks: int, warmup: int) -> dict[str, Any]:
    """Counts of one step cycle of ``config`` on the CPU (see the module docstring)."""
    from lightning.pytorch import Callback

    if ranks > 1:
        _emulate_ranks(ranks)
    counter = OpCounter()

    class Window(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch_, batch_idx):  # noqa: ANN001
            if batch_idx == warmup:
                counter.__enter__()
            elif batch_idx == warmup + 1:
                counter.__exit__(None, None, None)

    with tempfile.TemporaryDirectory(prefix="sce-step-ops-") as root:
        return _count_fit(config, root, counter, Window(), batch, size, frames, ranks, warmup)


def _count_fit(config: str, root: str, counter: OpCounter, window: Any, batch: int, size: int,
               frames: int, ranks: int, warmup: int) -> dict[str, Any]:
    """Runs the counted fit with its run folder under ``root`` (removed by the caller)."""
    from sce_core.runner import setup_run

    overrides = [
        f"dir.root={root}", f"dir.data={root}", "trainer.accelerator=cpu", "trainer.devices=1",
        "trainer.precision=32-true", "trainer.strategy={_name_: auto}", "trainer.max_epochs=1",
        f"trainer.max_steps={warmup + 4}", "trainer.num_sanity_val_steps=0",
        "trainer.limit_val_batches=0", "trainer.log_every_n_steps=50", "trainer.enable_progress_bar=false",
        f"datamodule.train.global_batch_size={batch}", f"model.queue.size={batch * 8}",
    ]
    run = setup_run(config, overrides)
    if ranks > 1 and run.plain.get("trainer", {}).get("sync_batchnorm"):
        try:
            from sce_core.sync_batchnorm import convert_to_global

            convert_to_global(run.model)
        except ImportError:
            pass
    run.trainer.callbacks.append(window)
    shape = (batch, 3, frames, size, size)
    run.trainer.fit(run.model, datamodule=_datamodule(shape, 2, warmup + 4))
    return {"config": config, "ops": counter.ops, "host_reads": sum(counter.host_reads.values()),
            "reads_by_site": {k: v for k, v in counter.host_reads.most_common() if v},
            "ops_by_part": dict(counter.by_op.most_common()), "shape": list(shape), "ranks": ranks}


def _before(commit: str, args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The same counts at ``commit`` (a temporary git worktree, this script run inside it)."""
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="sce-before-") as tmp:
        return _count_in_worktree(repo, Path(tmp) / "tree", commit, args, names)


def _count_in_worktree(repo: Path, tree: Path, commit: str, args: argparse.Namespace,
                       names: list[str]) -> dict[str, Any]:
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(tree), commit], check=True)
    try:
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'plugins'}"}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--json", *_size_args(args), "--only", *names]
        out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"the count at {commit} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.splitlines()[-1])
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)


def _size_args(args: argparse.Namespace) -> list[str]:
    return ["--batch", str(args.batch), "--size", str(args.size), "--frames", str(args.frames),
            "--ranks", str(args.ranks), "--warmup", str(args.warmup)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="local batch (the recipe's: 64)")
    parser.add_argument("--size", type=int, default=32, help="crop side (op counts do not depend on it)")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip")
    parser.add_argument("--ranks", type=int, default=8, help="ranks emulated for sync_batchnorm")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the counted one")
    parser.add_argument("--reduced", action="store_true", help="batch 8, 16 px, 2 frames")
    parser.add_argument("--before", metavar="COMMIT", help="also count at this commit")
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS))
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--sites", action="store_true", help="list where the host reads happen")
    args = parser.parse_args(argv)
    if args.reduced:
        args.batch, args.size, args.frames = 8, 16, 2
    torch.set_num_threads(1)
    results = {name: measure(CONFIGS[name], args.batch, args.size, args.frames, args.ranks, args.warmup)
               for name in args.only}
    if args.json:
        print(json.dumps(results))
        return 0
    before = _before(args.before, args, [n for n in args.only if n == "exact"]) if args.before else {}
    print(f"one step cycle on the CPU: local batch {args.batch}, 2 views of 3 x {args.frames} x "
          f"{args.size} x {args.size}, sync_batchnorm emulated for {args.ranks} ranks")
    print(f"{'config':<28} {'ops':>7} {'host reads':>11}")
    rows = [(f"exact at {args.before}", before["exact"])] if "exact" in before else []
    rows += [(name, r) for name, r in results.items()]
    for label, r in rows:
        print(f"{label:<28} {r['ops']:>7} {r['host_reads']:>11}")
    if "exact" in before and "exact" in results:
        b, a = before["exact"], results["exact"]
        print(f"ratios before/after (exact recipe): ops {b['ops'] / a['ops']:.2f}x, host reads "
              f"{b['host_reads']} -> {a['host_reads']}")
    if args.sites:
        for label, r in rows:
            print(f"\n{label}: host reads by call site")
            for site, n in r["reads_by_site"].items():
                print(f"  {n:5d}  {site}")
            print(f"{label}: ops by part of the step {r['ops_by_part']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
