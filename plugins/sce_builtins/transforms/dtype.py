"""Dtype helpers shared by models that receive uint8 clips."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def to_float(x: Any) -> Any:
    """uint8 tensors (or lists of them) -> float32 in ``[0, 1]``; anything else unchanged."""
    if isinstance(x, Tensor):
        return x.float().div_(255) if x.dtype == torch.uint8 else x
    if isinstance(x, (list, tuple)):
        return [to_float(v) for v in x]
    return x
