"""What the built-in losses share: the float32 (at least) compute dtype, autocast off."""

from __future__ import annotations

import torch
from torch import Tensor


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
