"""The run's checkpoints: atomic writes, one folder per run, periodic and stop-time saves.

Every checkpoint is written to a hidden temporary file in its own folder, flushed to disk and
renamed into place, so a kill at any moment leaves the previous complete file.
``resume=auto`` continues from the newest complete checkpoint of the run's folder.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint

from sce_core.run_callbacks import gather_per_rank, own_rank
from sce_core.stop import StopRequest

log = logging.getLogger("sce")

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
TEMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose local writes are atomic (:func:`atomic_torch_save`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temporary checkpoint files that a killed process of ours left in ``folder``.

    Only names this module writes (``.<name>.<pid>.tmp``) whose process no longer runs.
    """
    removed = []
    for tmp in folder.glob(f".*{TEMP_SUFFIX}") if folder.is_dir() else ():
        pid = tmp.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_resumable(path: Path) -> bool:
    """Whether ``path`` is a complete Lightning training checkpoint (weights, loops, optimizer)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - truncated, empty or foreign file
        return False
    return isinstance(ckpt, dict) and "state_dict" in ckpt and "loops" in ckpt


def newest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder`` (by modification time), or None."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.rglob("*.ckpt") if p.is_file() and not p.name.startswith(".")]
    for path in sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        if is_resumable(path):
            return path
        log.warning("resume: skipping %s: not a complete training checkpoint", path)
    return None


def _any_rank(trainer: Trainer, *flags: bool) -> list[bool]:
    """Each flag OR-ed over all ranks (one collective; no communication on one process)."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return list(flags)
    values = torch.tensor([int(f) for f in flags], device=trainer.strategy.root_device)
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def restore_loader_position(trainer: Trainer) -> None:
    """Give the training loaders their saved position when Lightning could not.

    Lightning loads stateful loaders' ``state_dict`` only when it sets the train loader up
    after restoring the checkpoint; a model that reads ``trainer.estimated_stepping_batches``
    in ``configure_optimizers`` (for schedules) sets it up before, and the position would be
    dropped. Here the pending states are loaded and the iterator is made again.
    """
    fit_loop = trainer.fit_loop
    pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
    loader = getattr(fit_loop, "_combined_loader", None)
    fetcher = getattr(fit_loop, "_data_fetcher", None)
    if not pending or loader is None or fetcher is None:
        return
    loader._load_state_dicts(pending)
    fit_loop._combined_loader_states_to_load = []
    iter(fetcher)


def epoch_accumulators(trainer: Trainer) -> dict[str, list[Any]]:
    """This rank's running epoch aggregates of ``self.log(..., on_epoch=True)`` values,
    while an epoch is under way (empty at its end): ``name -> [value, batch count]``."""
    loop = trainer.fit_loop.epoch_loop
    if not 0 < loop.batch_progress.current.processed < trainer.num_training_batches:
        return {}
    out: dict[str, list[Any]] = {}
    for key, metric in loop._results.items():
        if metric.is_tensor and metric.meta.on_epoch and not metric.has_reset:
            count = metric.cumulated_batch_size if metric.meta.is_mean_reduction else None
            out[key] = [metric.value.detach().cpu().clone(),
                        None if count is None else count.detach().cpu().clone()]
    return out


def merge_accumulators(trainer: Trainer, saved: dict[str, list[Any]]) -> None:
    """Fold saved aggregates into the entries this epoch has logged so far (removing them
    from ``saved``). Adding the earlier sum to the first new value gives the same bits as
    the uninterrupted run (float addition is commutative)."""
    results = trainer.fit_loop.epoch_loop._results
    for key in [k for k in saved if k in results]:
        value, count = saved.pop(key)
        metric = results[key]
        value = value.to(metric.value.device, metric.value.dtype)
        if metric.meta.is_mean_reduction:
            metric.value = metric.value + value
            metric.cumulated_batch_size = metric.cumulated_batch_size + count.to(
                metric.cumulated_batch_size.device)
        elif metric.meta.is_sum_reduction:
            metric.value = metric.value + value
        else:
            metric.value = metric.meta.reduce_fx(metric.value, value)


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
        self._pending_metrics: dict[str, list[Any]] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer
        if trainer.is_global_zero:
            remove_stale_temp_files(self.dirpath)

    def state_dict(self) -> dict[str, Any]:
        """Every rank's epoch aggregates so far (the epoch's logged means continue exactly)."""
        own = epoch_accumulators(self._trainer) if self._trainer is not None else {}
        return {"epoch_metrics": gather_per_rank(self._trainer, own)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_metrics_all = state_dict.get("epoch_metrics") or []

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        restore_loader_position(trainer)
        saved = getattr(self, "_pending_metrics_all", None)
        if saved:
            self._pending_metrics = dict(own_rank(trainer, saved))
        self._pending_metrics_all = None
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
        stop, due = _any_rank(trainer, self.stop.requested, self._due(trainer))
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
