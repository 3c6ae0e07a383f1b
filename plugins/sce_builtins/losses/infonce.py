"""MoCo's InfoNCE loss over [positive, queue] (the lambda = 1 limit of the SCE loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sce_builtins.losses._common import TemperatureLoss

_NAME = "infonce_loss"


class InfoNCELoss(TemperatureLoss):
    """InfoNCE (MoCo v2): cross-entropy of ``[q.k, q.queue] / temp`` with the positive at 0.

    Called like the SCE loss, ``loss(q, k, queue=None, k_global=None)``; ``k_global`` is
    accepted for interface compatibility and ignored. Computed in at least float32 with
    autocast disabled.

    Args:
        temp: softmax temperature.
    """

    name = _NAME

    def __init__(self, temp: float = 0.2) -> None:
        super().__init__(temp)

    def forward(
        self, q: Tensor, k: Tensor, queue: Tensor | None = None, k_global: Tensor | None = None
    ) -> Tensor:
        """Return the mean InfoNCE loss over the batch."""
        dtype = torch.promote_types(q.dtype, torch.float32)
        with torch.autocast(device_type=q.device.type, enabled=False):
            q = q.to(dtype)
            k = k.detach().to(dtype)
            logits = (q * k).sum(dim=1, keepdim=True)
            if queue is not None:
                logits = torch.cat([logits, q @ queue.detach().to(dtype).T], dim=1)
            labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
            return F.cross_entropy(logits / self.temp, labels)
