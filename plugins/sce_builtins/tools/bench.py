"""``sce bench data|step CONFIG [OVERRIDES]``: what bounds a run, the loader or the step.

``data`` times the config's own train loader (:mod:`.bench_data`), ``step`` the model's training
step on the configured device with synthetic input of the configured shape (:mod:`.bench_step`).
Each saves its result in ``<SCE cache>/bench/``; when the other one has been measured for the
same CONFIG, it prints the bound as one line: ``data: need ~K workers per device for this step
rate ...``. A command of the built-ins, declared in ``sce.commands``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sce_core.errors import SCEError

__all__ = ["BenchError", "bound_line", "main"]


class BenchError(SCEError, ValueError):
    """A usage or config problem of ``sce bench`` (printed as one line, no traceback)."""


# Lightning's remarks on the bench's own set-up (a datamodule without validation, the model's
# batch hook), not on the user's config.
BENCH_NOISE = (
    r"You defined a `validation_step` but have no `val_dataloader`",
    r"You have overridden `on_after_batch_transfer` in `LightningModule`",
    r".*isinstance\(treespec, LeafSpec\)",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The ``sce bench`` argument parser."""
    parser = _Parser(prog="sce bench", description="What bounds a run: the train loader (data) "
                     "or the training step (step). Run both for the workers a device needs.")
    sub = parser.add_subparsers(dest="what", metavar="{data,step}", parser_class=_Parser)
    data = sub.add_parser("data", help="the train loader: clips/s per worker and in total, "
                                       "decode vs crop vs collate time, bad samples")
    data.add_argument("--batches", type=int, default=20, help="timed batches (default 20)")
    step = sub.add_parser("step", help="the training step: clips/s, peak memory, TFLOP/s")
    step.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    step.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    step.add_argument("--input-shape", help="T,H,W of a clip (default: read from the config)")
    step.add_argument("--batch-size", type=int, help="per-device batch (default: the config's "
                                                     "global batch over its devices)")
    for p in (data, step):
        p.add_argument("config", metavar="CONFIG", help="a shipped config's name or a YAML path")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _results_dir() -> Path:
    from sce_core.paths import cache_dir

    return cache_dir() / "bench"


def _save(what: str, config: str, result: dict[str, Any]) -> None:
    from sce_core.outputs import atomic_write_text

    record = {"config": config, "time": time.strftime("%Y-%m-%d %H:%M"), **result}
    atomic_write_text(_results_dir() / f"{what}.json", json.dumps(record, indent=1))


def _load(what: str, config: str) -> dict[str, Any] | None:
    path = _results_dir() / f"{what}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("config") == config else None


def bound_line(step_clips_per_s: float, worker_clips_per_s: float, workers: int) -> str:
    """One actionable line: the workers one device needs to keep up with its step."""
    need = max(1, math.ceil(step_clips_per_s / max(worker_clips_per_s, 1e-9)))
    rates = (f"{step_clips_per_s:.0f} clips/s per device; one worker loads "
             f"{worker_clips_per_s:.0f} clips/s")
    if workers >= need:
        verdict = f"{workers} configured: enough, the run is bound by the step"
    else:
        verdict = (f"{workers} configured: the run is data-bound; set "
                   f"datamodule.train.loader.num_workers={need} (or decode_on: gpu for JPEG frames)")
    return f"data: need ~{need} workers per device for this step rate ({rates}); {verdict}"


def _progress(total: int, enabled: bool, desc: str) -> tuple[Callable[[], None], Any]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="batch", file=sys.stderr,
               disable=None if enabled else True, leave=False)  # None: on a terminal only
    return (lambda: bar.update(1)), bar


def _setup(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    import warnings

    from lightning.pytorch import seed_everything

    from sce_core.console import quiet_lightning, verbose
    from sce_core.runner import prepare

    quiet_lightning()
    if not verbose():
        for pattern in BENCH_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
    config, overrides = args.config, args.overrides
    _resolved, plain = prepare(config, overrides)
    seed = (plain.get("seed") or {}).get("seed")
    if isinstance(seed, int):
        seed_everything(seed, workers=True, verbose=False)
    return config, plain


def run_data(args: argparse.Namespace) -> int:
    """``sce bench data``."""
    from sce_builtins.tools.bench_data import measure_loader, plan_batches
    from sce_core.building import build_parts

    if args.batches < 1:
        raise BenchError("sce bench data: --batches must be >= 1")
    config, plain = _setup(args)
    datamodule, _parts = build_parts("datamodules", plain["datamodule"], path="datamodule")
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    step, bar = _progress(sum(plan_batches(loader, args.batches)), not args.no_progress,
                          "sce bench data")
    with bar:
        report = measure_loader(loader, args.batches, step)
    print(f"sce bench data {config}: {report.batches} batches of {report.batch_size} samples "
          f"({report.clips_per_batch} clips), {report.workers} worker(s)")
    print(f"  loader total      {report.total_clips_per_s:10.1f} clips/s")
    print(f"  per worker        {report.worker_clips_per_s:10.1f} clips/s (per CPU second of one "
          "process, one thread)")
    print(f"  per clip          decode {report.decode_ms_per_clip:.2f} ms, crop "
          f"{report.crop_ms_per_clip:.2f} ms, other {report.other_ms_per_clip:.2f} ms; collate "
          f"{report.collate_ms_per_batch:.1f} ms per batch")
    if report.device_decode_ms_per_batch is not None:
        print(f"  GPU decode        {report.device_decode_ms_per_batch:.1f} ms per batch (nvJPEG)")
    print(f"  bad samples       {report.bad_samples}")
    _save("data", config, report.as_dict())
    step_result = _load("step", config)
    if step_result is None:
        print(f"data: one worker loads {report.worker_clips_per_s:.0f} clips/s; run "
              f"`sce bench step {config}` for the workers the step needs")
    else:
        print(bound_line(step_result["clips_per_s"], report.worker_clips_per_s, report.workers))
    return 0


def _shape(text: str) -> tuple[int, int, int]:
    try:
        t, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise BenchError(f"sce bench step: --input-shape must be T,H,W (three integers), got {text!r}") from None
    return t, h, w


def run_step(args: argparse.Namespace) -> int:
    """``sce bench step``."""
    if args.steps < 1 or args.warmup < 0:
        raise BenchError("sce bench step: --steps must be >= 1 and --warmup >= 0")
    shape = _shape(args.input_shape) if args.input_shape else None
    from sce_builtins.tools.bench_step import (
        check_accelerator,
        configured_devices,
        input_shape,
        local_batch,
        measure_step,
    )
    from sce_core.building import build_parts

    config, plain = _setup(args)
    check_accelerator(plain.get("trainer") or {})
    t, h, w = shape or input_shape(plain)
    batch = args.batch_size or local_batch(plain, configured_devices(plain.get("trainer") or {}))
    model, _parts = build_parts("models", plain["model"], path="model")
    clip_sampler = ((plain.get("datamodule") or {}).get("train") or {}).get("clip_sampler") or {}
    views = int(getattr(model, "num_crops", None) or clip_sampler.get("num_clips") or 1)
    step, bar = _progress(args.warmup + 1 + args.steps, not args.no_progress, "sce bench step")
    with bar:
        report = measure_step(plain, model, (batch, 3, t, h, w), views, args.warmup, args.steps, step)
    origin = "--batch-size" if args.batch_size else "global batch over the configured devices"
    print(f"sce bench step {config}: {report.device}, precision {report.precision}, "
          f"{views} view(s) of {batch} x 3 x {t} x {h} x {w} uint8 (batch: {origin})")
    print(f"  step              {report.step_ms:10.1f} ms (median of {report.steps})")
    print(f"  throughput        {report.clips_per_s:10.1f} clips/s")
    print(f"  peak memory       {report.peak_memory_mib:10.0f} MiB ({report.memory_kind})")
    compute = (f"  compute           {report.achieved_tflops:10.3f} TFLOP/s achieved "
               f"({report.flops_per_step / 1e9:.1f} GFLOP per step)")
    if report.peak_fraction is not None:
        compute += f", {100 * report.peak_fraction:.0f}% of the GPU's bf16 dense peak"
    print(compute)
    _save("step", config, report.as_dict())
    data_result = _load("data", config)
    if data_result is None:
        print(f"data: run `sce bench data {config}` to see whether the loader keeps up with "
              f"{report.clips_per_s:.0f} clips/s")
    else:
        print(bound_line(report.clips_per_s, data_result["worker_clips_per_s"], data_result["workers"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sce bench`` (usage and config problems are one-line :class:`BenchError` s)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in ("data", "step"):
        args = parser.parse_args(argv)  # --help, or a one-line error for an unknown word
        parser.print_help()
        return 0
    # options may come after the overrides: each subcommand parses its words intermixed
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = sub.choices[argv[0]].parse_intermixed_args(argv[1:])
    args.what = argv[0]
    return run_data(args) if args.what == "data" else run_step(args)
