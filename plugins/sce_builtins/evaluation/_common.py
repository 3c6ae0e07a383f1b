"""Helpers shared by the evaluation models: stage transforms, steps per epoch, batch size."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from sce_builtins.transforms.dtype import to_float


def stage_transform(module: Any, train: Any, val: Any, test: Any) -> Any:
    """The GPU batch transform of the trainer's current stage (train / val / test)."""
    trainer = module._trainer
    if trainer is None:
        return train if module.training else val
    if trainer.training:
        return train
    if trainer.testing:
        return test
    if trainer.validating or trainer.sanity_checking:
        return val
    return None


def transform_batch(module: Any, batch: Any, train: Any, val: Any, test: Any) -> Any:
    """Apply the stage transform to ``batch["input"]`` under no-grad, autocast off."""
    if not isinstance(batch, Mapping) or "input" not in batch:
        return batch
    transform = stage_transform(module, train, val, test)
    x = batch["input"]
    with torch.no_grad(), torch.autocast(device_type=module.device.type, enabled=False):
        if transform is not None:
            x = transform(x)
        x = to_float(x)
    return {**batch, "input": x}


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
