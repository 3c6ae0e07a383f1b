"""What a run prints: our own lines and a progress display; Lightning's chatter only with
``--verbose`` (``SCE_VERBOSE=1``, inherited by the ranks Lightning launches).

On a terminal the progress is Lightning's bar (without ``v_num``); in a log file (SLURM, CI)
it is one line every ``every_steps`` steps or ``every_seconds`` seconds.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

VERBOSE_ENV = "SCE_VERBOSE"
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
# Warnings raised inside Lightning or torch about what Lightning does, not about the user's run.
NOISE = (
    r".*isinstance\(treespec, LeafSpec\)",                     # Lightning's pytree on new torch
    r".*broadcast_buffers",                                      # DDP internals
    r"You have overridden `on_after_batch_transfer`",            # the model owns batch transforms
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"Total length of `.*` across ranks is zero",                # no validation loader
    r".*`weights_only` was not set",                             # Lightning's own checkpoint load
    r"The '\w+_dataloader' does not have many workers",          # the demo chooses its workers
    r"Starting from v1\.9\.0, `tensorboardX`",
)


def verbose() -> bool:
    """Whether ``--verbose`` (or ``SCE_VERBOSE=1``) asked for all of Lightning's output."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_lightning() -> None:
    """Silence Lightning's info lines (tips, device banners, seed) and the known noise warnings,
    unless verbose."""
    if verbose():
        return
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def count_clips(batch: Any) -> int:
    """Clips of a batch: the leading size of its ``input`` tensor, summed over a list of views."""
    x = batch.get("input") if isinstance(batch, Mapping) else batch
    if isinstance(x, (list, tuple)):
        return sum(count_clips({"input": v}) for v in x)
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape else 0


_TRAINING_LOSSES = ("pretrain/loss_step", "pretrain/loss", "train/loss_step", "train/loss")


def _loss(metrics: Mapping[str, Any]) -> float | None:
    """The training loss among logged values (the pretraining or fine-tuning one first)."""
    for name in _TRAINING_LOSSES:
        if name in metrics:
            return float(metrics[name])
    names = sorted(k for k in metrics if "loss" in k)
    names = [k for k in names if k.endswith("_step")] or names
    return float(metrics[names[0]]) if names else None


def _lr(trainer: Trainer) -> float | None:
    optimizers = trainer.optimizers
    return float(optimizers[0].param_groups[0]["lr"]) if optimizers else None


class RunSummary(Callback):
    """One line when training starts (config, run folder, devices, steps) and the figures of
    the end summary (time, clips per second): :meth:`end_line`."""

    def __init__(self, config_name: str, run_dir: Any) -> None:
        self.config_name, self.run_dir = config_name, run_dir
        self.started: float | None = None
        self.seconds = 0.0
        self.clips = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Print the start line (rank 0)."""
        self.started = time.perf_counter()
        if trainer.is_global_zero:
            steps = trainer.estimated_stepping_batches
            steps_text = f"{int(steps)} steps" if steps != float("inf") else "steps unknown"
            device = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
            print(f"sce: {self.config_name} | run {self.run_dir} | {trainer.world_size} x {device} "
                  f"(nodes {trainer.num_nodes}) | {trainer.max_epochs} epochs, {steps_text}",
                  flush=True)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Count clips (all ranks: this rank's count times the number of processes)."""
        self.clips += count_clips(batch) * max(int(trainer.world_size), 1)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop the clock."""
        if self.started is not None:
            self.seconds += time.perf_counter() - self.started
            self.started = None

    def end_line(self, trainer: Trainer) -> str:
        """``time, clips/s, final metrics`` of the finished training."""
        rate = self.clips / self.seconds if self.seconds > 0 else 0.0
        metrics = {k.removesuffix("_epoch"): v for k, v in trainer.callback_metrics.items()
                   if not k.endswith("_step") and any(s in k for s in ("loss", "acc", "top1"))}
        shown = "  ".join(f"{k} {float(v):.4g}" for k, v in sorted(metrics.items()))
        return (f"sce: trained {trainer.global_step} steps in {_duration(self.seconds)} "
                f"({rate:.1f} clips/s)" + (f" | {shown}" if shown else ""))


class Bar(TQDMProgressBar):
    """Lightning's terminal bar without the logger version (``v_num``); ETA and clips/s stay.

    It redraws at most every ``min_interval_s`` seconds (and at the end of each loop): every
    redraw reads the logged values back from the device, a host synchronisation.
    """

    def __init__(self, min_interval_s: float = 0.5) -> None:
        super().__init__()
        self.min_interval_s = float(min_interval_s)
        self._last_redraw = -math.inf

    def _should_update(self, current: int, total: int) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if current == total or now - self._last_redraw >= self.min_interval_s:
            self._last_redraw = now
            return True
        return False

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """The bar's metrics, ``v_num`` left out, the training loss added (read here, at a
        redraw, rather than logged with ``prog_bar``: Lightning reads those every step)."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        loss = _loss(trainer.callback_metrics) if trainer.training else None
        if loss is not None:
            items.setdefault("loss", f"{loss:.4g}")
        return items


class LineProgress(ProgressBar):
    """Progress for log files: one line every ``every_steps`` optimizer steps or
    ``every_seconds`` seconds, whichever comes first (step, epoch, loss, lr, clips/s, ETA).

    The default when stdout is not a terminal; name it (``progress_lines``) in ``callbacks``
    to choose the interval, or to get lines on a terminal too.

    Args:
        every_steps: optimizer steps between two lines.
        every_seconds: seconds between two lines.
    """

    def __init__(self, every_steps: int = 100, every_seconds: float = 30.0) -> None:
        if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(f"progress_lines: every_steps must be a positive integer, got {every_steps!r}")
        if not every_seconds > 0:
            raise ValueError(f"progress_lines: every_seconds must be positive, got {every_seconds!r}")
        super().__init__()
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self._enabled = True
        self._start = self._last_time = 0.0
        self._start_step = self._last_step = 0
        self._clips = 0

    def disable(self) -> None:
        """Print nothing (non-zero ranks)."""
        self._enabled = False

    def enable(self) -> None:
        """Print lines."""
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clocks."""
        self._start = self._last_time = time.perf_counter()
        self._start_step = self._last_step = trainer.global_step
        self._clips = 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Print a line when due."""
        self._clips += count_clips(batch) * max(int(trainer.world_size), 1)
        step, now = trainer.global_step, time.perf_counter()
        total = trainer.estimated_stepping_batches
        due = (step - self._last_step >= self.every_steps or now - self._last_time >= self.every_seconds
               or step >= total)
        if not (self._enabled and trainer.is_global_zero and due and step > self._last_step):
            return
        self._last_step, self._last_time = step, now
        print(self.line(trainer, step, total, now - self._start), flush=True)

    def line(self, trainer: Trainer, step: int, total: float, elapsed: float) -> str:
        """``step S/T epoch E/N loss L lr R clips/s C ETA D``."""
        parts = [f"step {step}/{int(total)}" if total != float("inf") else f"step {step}",
                 f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        loss, lr = _loss(trainer.callback_metrics), _lr(trainer)
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if lr is not None:
            parts.append(f"lr {lr:.4g}")
        done = step - self._start_step
        if elapsed > 0:
            parts.append(f"clips/s {self._clips / elapsed:.1f}")
        if done > 0 and total != float("inf"):
            parts.append(f"ETA {_duration((total - step) * elapsed / done)}")
        return "sce: " + "  ".join(parts)


def progress_bar() -> ProgressBar:
    """The bar on a terminal, lines in a log file."""
    return Bar() if sys.stdout.isatty() else LineProgress()
