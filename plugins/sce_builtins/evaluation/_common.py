"""Helpers shared by the evaluation models: the frozen trunk, steps per epoch, batch size, views."""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import LightningModule
from torch import Tensor, nn


class FrozenTrunkModule(LightningModule):
    """A LightningModule whose ``trunk`` never trains: no gradients, always in eval mode."""

    trunk: nn.Module

    def freeze_trunk(self, trunk: nn.Module) -> None:
        """Keep ``trunk`` as ``self.trunk``, without gradients and in eval mode."""
        self.trunk = trunk
        self.trunk.requires_grad_(False)
        self.trunk.eval()

    def train(self, mode: bool = True) -> FrozenTrunkModule:
        """Set the mode of the other modules; the trunk always stays in eval mode."""
        super().train(mode)
        self.trunk.eval()
        return self


def steps_per_epoch(trainer: Any) -> int:
    """Optimizer steps per epoch as Lightning counts them (at least 1)."""
    total = trainer.estimated_stepping_batches
    batches = trainer.num_training_batches
    accumulate = max(int(trainer.accumulate_grad_batches), 1)
    if not math.isinf(batches):
        return max(math.ceil(batches / accumulate), 1)
    if math.isinf(total):
        raise ValueError("evaluation: cannot size the schedule; set trainer.max_steps or a sized loader")
    return max(int(total) // max(int(trainer.max_epochs or 1), 1), 1)


def global_batch_size(trainer: Any) -> int | None:
    """The datamodule's training global batch size, else local batch x world x accumulation."""
    dm = getattr(trainer, "datamodule", None)
    value = getattr(dm, "train_global_batch_size", None) if dm is not None else None
    if isinstance(value, int) and value > 0:
        return value
    loader = trainer.train_dataloader
    size = getattr(loader, "batch_size", None)
    if not isinstance(size, int):
        return None
    return size * trainer.world_size * max(int(trainer.accumulate_grad_batches), 1)


def first_view(x: Any) -> Tensor:
    """The input tensor, or the first view of a list of views."""
    return x if isinstance(x, Tensor) else x[0]
