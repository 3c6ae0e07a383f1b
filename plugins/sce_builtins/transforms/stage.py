"""Batch transforms by trainer stage, applied after transfer to the device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

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
