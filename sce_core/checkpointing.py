"""The run's checkpoint: ``<run>/checkpoints/last.ckpt`` at epoch ends, periodically and when
a stop signal arrived, with what an exact mid-epoch resume needs.

Writing is atomic (:mod:`sce_core.checkpoint_files`); ``resume=auto`` continues from the newest
complete checkpoint of the run's folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint

from sce_core.checkpoint_files import remove_stale_temp_files
from sce_core.host_sync import sum_over_ranks
from sce_core.lightning_state import epoch_accumulators, merge_accumulators, restore_loader_position
from sce_core.run_callbacks import gather_per_rank, own_rank
from sce_core.stop import StopRequest

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


def _any_rank(*flags: bool) -> list[bool]:
    """Each flag OR-ed over all ranks (one host-side collective; nothing on one process)."""
    return [total > 0 for total in sum_over_ranks([int(f) for f in flags])]


class RunCheckpoint(Checkpoint):
    """Writes ``<run>/checkpoints/last.ckpt``: at every epoch end, every ``every_n_steps``
    optimizer steps or ``every_minutes`` of training, and when a stop signal arrived (then
    the fit ends after this step's logging).

    Args:
        dirpath: the run's checkpoint folder.
        stop: the run's stop flag.
        every_n_steps: also save every n optimizer steps (None: off).
        every_minutes: also save when this many minutes passed since the last save (None: off).
    """

    def __init__(self, dirpath: Path, stop: StopRequest, every_n_steps: int | None = None,
                 every_minutes: float | None = None) -> None:
        self.dirpath = Path(dirpath)
        self.stop = stop
        self.every_n_steps = every_n_steps
        self.every_s = None if every_minutes is None else 60.0 * float(every_minutes)
        self._last_save = time.monotonic()
        self._flush_logs = False
        self._trainer: Trainer | None = None
        self._saved_metrics: list[dict[str, list[Any]]] = []  # every rank's, from a checkpoint
        self._pending_metrics: dict[str, list[Any]] = {}  # this rank's, not merged yet

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer
        if trainer.is_global_zero:
            remove_stale_temp_files(self.dirpath)

    def state_dict(self) -> dict[str, Any]:
        """Every rank's epoch aggregates so far (the epoch's logged means continue exactly)."""
        own = epoch_accumulators(self._trainer) if self._trainer is not None else {}
        return {"epoch_metrics": gather_per_rank(self._trainer, own)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved_metrics = state_dict.get("epoch_metrics") or []

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        restore_loader_position(trainer)
        if self._saved_metrics:
            self._pending_metrics = dict(own_rank(trainer, self._saved_metrics))
        self._saved_metrics = []
        self.stop.immediate = False
        self._last_save = time.monotonic()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.stop.immediate = not self.stop.requested

    def _due(self, trainer: Trainer) -> bool:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            return True
        return self.every_s is not None and time.monotonic() - self._last_save >= self.every_s

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self._flush_logs:  # the rows of the step saved last are logged by now
            self._flush_logs = False
            for logger in trainer.loggers:
                logger.save()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self._pending_metrics:  # after every value of the first resumed step was logged
            merge_accumulators(trainer, self._pending_metrics)
        stop, due = _any_rank(self.stop.requested, self._due(trainer))
        if not (stop or due):
            return
        self.save(trainer)
        if stop:
            self.stop.confirmed = True
            if trainer.is_global_zero:
                print(f"sce: stop requested by a signal; saved {self.last_path} at step "
                      f"{trainer.global_step} (restart the same command with resume=auto)",
                      flush=True)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: Trainer) -> None:
        """Write ``last.ckpt`` now (every rank calls this; rank 0 writes)."""
        trainer.save_checkpoint(self.last_path, weights_only=False)  # a full, resumable checkpoint
        self._last_save = time.monotonic()
        self._flush_logs = True
