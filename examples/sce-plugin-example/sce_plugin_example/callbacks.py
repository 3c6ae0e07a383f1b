"""The callback the hook module adds to every run: one throughput line at the end of fit."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import Callback

PREFIX = "sce-plugin-example:"


def batch_size_of(batch: Any) -> int:
    """Samples in a training batch (``{"input": [views] or tensor, ...}``, or a tensor)."""
    if isinstance(batch, dict):
        batch = batch.get("input", batch.get("label"))
    if isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    shape = getattr(batch, "shape", None)
    return int(shape[0]) if shape else 0


class FitReport(Callback):
    """Counts training steps and samples; prints one line with the throughput when fit ends.

    Only rank 0 prints. The line reads
    ``sce-plugin-example: 6 training steps, 48 samples in 3.1 s (15.5 samples/s)``.

    Args:
        prefix: text at the start of the printed line.
    """

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.steps = 0
        self.samples = 0
        self._start: float | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.steps += 1
        self.samples += batch_size_of(batch)

    def summary(self, seconds: float) -> str:
        """The printed line for ``seconds`` of training."""
        rate = self.samples / seconds if seconds > 0 else 0.0
        return (f"{self.prefix} {self.steps} training steps, {self.samples} samples in "
                f"{seconds:.1f} s ({rate:.1f} samples/s)")

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero and self._start is not None:
            print(self.summary(time.perf_counter() - self._start), flush=True)
