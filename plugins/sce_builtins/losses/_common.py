"""What the built-in losses share: the float32 (at least) compute dtype, autocast off, and the
one-temperature loss base."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """float32, or a wider dtype among ``tensors`` (float64 inputs stay float64)."""
    dtype = torch.float32
    for t in tensors:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def no_autocast(x: Tensor) -> torch.autocast:
    """A context that turns autocast off on ``x``'s device."""
    return torch.autocast(device_type=x.device.type, enabled=False)


class TemperatureLoss(nn.Module):
    """A loss with one softmax temperature ``temp`` (> 0), logged as ``pretrain/temp``.

    Subclasses set ``name`` (their registry name, for errors) and give ``temp`` its default.
    """

    name = "loss"

    def __init__(self, temp: float) -> None:
        super().__init__()
        if temp <= 0:
            raise ValueError(f"{self.name}: temp must be > 0 (got {temp}).")
        self.temp = float(temp)

    def logged_values(self) -> dict[str, float]:
        """What the model logs of this loss each step: ``pretrain/<name>``."""
        return {"temp": self.temp}
