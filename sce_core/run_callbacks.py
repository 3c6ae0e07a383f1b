"""Lightning callbacks every run gets: each rank's RNG state, the config in checkpoints.

These are framework concerns: they know nothing of SCE.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from sce_core.errors import SCEError

CONFIG_KEY = "sce_config"


def gather_per_rank(trainer: Trainer | None, own: Any) -> list[Any]:
    """``own`` of every rank, in rank order (every rank must call this together)."""
    world = int(trainer.world_size) if trainer is not None else 1
    if world == 1 or not torch.distributed.is_initialized():
        return [own]
    states: list[Any] = [None] * world
    torch.distributed.all_gather_object(states, own)
    return states


def check_process_count(saved: int, current: int) -> None:
    """Refuse to resume per-rank state written by another number of processes."""
    if saved != current:
        raise SCEError(
            f"the checkpoint was written by {saved} process(es) and this run has {current}; "
            f"resume with the same number of devices (trainer.devices x trainer.num_nodes = "
            f"{saved}) to continue exactly")


def saved_process_count(checkpoint: dict[str, Any]) -> int | None:
    """How many processes wrote a checkpoint (None: not recorded)."""
    state = (checkpoint.get("callbacks") or {}).get(RNGStateCallback.__name__) or {}
    ranks = state.get("ranks")
    return None if ranks is None else len(ranks)


def own_rank(trainer: Trainer, ranks: list[Any]) -> Any:
    """This rank's entry of :func:`gather_per_rank` output; refuses another process count."""
    check_process_count(len(ranks), int(trainer.world_size))
    return ranks[trainer.global_rank]


class RNGStateCallback(Callback):
    """Saves every rank's Python, NumPy, torch and CUDA RNG states; restores each rank's own.

    The states are taken where training can stop: when a checkpoint is written during an epoch
    (after a training batch), and at the end of every epoch (after validation, kept until the
    next batch starts), so work done after training (reports, a final save) does not shift
    them. Nothing is captured per step. A checkpoint holds the states of all ranks (gathered when it
    is written; every rank takes part in a save) and each rank restores its own at
    ``on_train_start`` (after Lightning's sanity check, which draws random numbers), so a
    resumed run continues the random streams of an uninterrupted one. A checkpoint written by
    another number of processes is refused: per-rank streams cannot be mapped exactly.
    States are stored as tensors and lists so ``torch.load(weights_only=True)`` reads them.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._captured: dict[str, Any] | None = None
        self._trainer: Trainer | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._captured = None  # a save during the epoch takes the states as they are then

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._captured = self.current_state()

    def state_dict(self) -> dict[str, Any]:
        own = self._captured if self._captured is not None else self.current_state()
        return {"ranks": gather_per_rank(self._trainer, own)}

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
        saved, self._pending = self._pending, None
        if not saved:
            return
        ranks = saved["ranks"] if "ranks" in saved else [saved]
        self.restore(own_rank(trainer, ranks))

    @staticmethod
    def restore(state: dict[str, Any]) -> None:
        """Set this process' RNG states from :meth:`current_state` output."""
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
