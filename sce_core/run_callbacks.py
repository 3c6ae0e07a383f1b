"""Lightning callbacks every run gets: exact-resume RNG state, config in checkpoints, preemption.

These are framework concerns: they know nothing of SCE.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

CONFIG_KEY = "sce_config"


class RNGStateCallback(Callback):
    """Saves the Python, NumPy and torch RNG states and restores them when training resumes.

    The states are captured where training can stop (after every training batch and at the
    end of every epoch, after validation), so work done after training (reports, a final
    save) does not shift them. Restoring happens at ``on_train_start`` (after Lightning's
    sanity check, which draws random numbers), so a resumed run continues the same random
    stream as an uninterrupted one. States are stored as tensors and tuples so
    ``torch.load(weights_only=True)`` reads them.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._captured: dict[str, Any] | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._captured = self.current_state()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._captured = self.current_state()

    def state_dict(self) -> dict[str, Any]:
        return self._captured if self._captured is not None else self.current_state()

    @staticmethod
    def current_state() -> dict[str, Any]:
        """The RNG states of this process right now."""
        version, mt_state, gauss = random.getstate()
        np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
        return {
            "python": [version, list(mt_state), gauss],
            "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                      int(np_has_gauss), float(np_cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        state, self._pending = self._pending, None
        if not state:
            return
        version, mt_state, gauss = state["python"]
        random.setstate((version, tuple(mt_state), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class ConfigInCheckpoint(Callback):
    """Stores the run's resolved config (plain data) in every checkpoint, for ``sce export``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config


class PreemptionCheckpoint(Callback):
    """On SIGTERM (SLURM preemption, ``scancel``, ``kill``), save ``path`` and let the run stop.

    Lightning turns SIGTERM into a ``SIGTERMException`` raised after the current training step
    (on every rank); this callback saves the checkpoint from its ``on_exception`` hook, so a
    signal that arrives while the run is still starting is handled too. Restarting the same
    command with ``resume=auto`` continues from that checkpoint.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.saved = False

    def on_exception(self, trainer: Trainer, pl_module: LightningModule,
                     exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(exception, SIGTERMException) or trainer.state.stage is None:
            return
        if trainer.global_step == 0:
            print("sce: stop requested by a signal before the first step; nothing to save")
            return
        trainer.save_checkpoint(self.path)
        self.saved = True
        if trainer.is_global_zero:
            print(f"sce: stop requested by a signal; saved {self.path} at step "
                  f"{trainer.global_step} (restart the same command with resume=auto)")
