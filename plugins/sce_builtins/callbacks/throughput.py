"""Training throughput (clips per second) in the progress bar and the logs."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

_NAME = "throughput"


def count_clips(batch: Any) -> int:
    """Clips in a batch: batch size times views (``input`` a tensor or a list of views)."""
    x = batch.get("input") if isinstance(batch, Mapping) else batch
    if isinstance(x, Tensor):
        return int(x.shape[0])
    if isinstance(x, (list, tuple)):
        return sum(count_clips({"input": v}) for v in x)
    return 0


class Throughput(Callback):
    """Logs ``throughput/clips_per_s`` (progress bar) over the last ``window`` training steps.

    Clips = batch size x views, times the number of processes (a global rate). Time runs from
    one batch end to the next, so data loading is included; the device is never synchronised,
    so the rate is exact over a window rather than per step. ``throughput/epoch_clips_per_s``
    is logged at each epoch end.

    Args:
        window: number of recent steps averaged.
        prog_bar: show the rate in Lightning's progress bar (logged every step then; a logged
            value is otherwise sent only on the steps the loggers write, since each one is a
            host-to-device copy and a progress-bar value is read back every step).
    """

    def __init__(self, window: int = 20, prog_bar: bool = False) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"{_NAME}: window must be a positive integer, got {window!r}")
        self.window = window
        self.prog_bar = bool(prog_bar)
        self._marks: deque[tuple[float, int]] = deque(maxlen=window + 1)
        self._epoch_start: float | None = None
        self._epoch_clips = 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start timing the epoch."""
        now = time.perf_counter()
        self._marks.clear()
        self._marks.append((now, 0))
        self._epoch_start, self._epoch_clips = now, 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Record this batch and log the windowed rate."""
        clips = count_clips(batch) * max(int(trainer.world_size), 1)
        now = time.perf_counter()
        self._marks.append((now, clips))
        self._epoch_clips += clips
        elapsed = self._marks[-1][0] - self._marks[0][0]
        connector = getattr(trainer, "_logger_connector", None)
        writes = getattr(connector, "should_update_logs", True) or trainer.is_last_batch
        if elapsed > 0 and (writes or self.prog_bar):
            total = sum(c for _, c in list(self._marks)[1:])
            pl_module.log("throughput/clips_per_s", total / elapsed, on_step=True, on_epoch=False,
                          prog_bar=self.prog_bar, batch_size=1)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the epoch's mean rate."""
        if self._epoch_start is None:
            return
        elapsed = time.perf_counter() - self._epoch_start
        if elapsed > 0 and self._epoch_clips:
            pl_module.log("throughput/epoch_clips_per_s", self._epoch_clips / elapsed,
                          on_step=False, on_epoch=True, batch_size=1, sync_dist=True)
