"""ReSSL loss: the online distribution over the queue matches the target's sharper one."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sce_builtins.losses._common import compute_dtype, no_autocast

_NAME = "ressl_loss"


class ReSSLLoss(nn.Module):
    """ReSSL (relational self-supervised learning): cross-entropy between the target's
    similarities to the queue, ``softmax(k.queue / temp_m)``, and the online prediction's,
    ``softmax(q.queue / temp)``. There is no positive column (unlike SCE with ``coeff: 0``,
    whose online softmax keeps one). Called like the SCE loss, ``loss(q, k, queue=, k_global=)``
    (``k_global`` ignored); computed in at least float32 with autocast off.

    Args:
        temp: temperature of the online distribution.
        temp_m: temperature of the target distribution (sharper: smaller than ``temp``).
    """

    def __init__(self, temp: float = 0.1, temp_m: float = 0.04) -> None:
        super().__init__()
        if temp <= 0 or temp_m <= 0:
            raise ValueError(f"{_NAME}: temp and temp_m must be > 0 (got {temp}, {temp_m}).")
        self.temp = float(temp)
        self.temp_m = float(temp_m)

    def logged_values(self) -> dict[str, float]:
        """What the model logs of this loss each step: ``pretrain/<name>``."""
        return {"temp": self.temp, "temp_m": self.temp_m}

    def forward(self, q: Tensor, k: Tensor, queue: Tensor | None = None, k_global: Tensor | None = None) -> Tensor:
        """Return the mean loss over the batch (gradient through ``q`` only)."""
        if queue is None:
            raise ValueError(f"{_NAME}: needs the queue (the relation is over its keys); set model.queue")
        dtype = compute_dtype(q, k, queue)
        with no_autocast(q):
            q, k, queue = q.to(dtype), k.detach().to(dtype), queue.detach().to(dtype)
            target = torch.softmax(k @ queue.T / self.temp_m, dim=1)
            log_online = torch.log_softmax(q @ queue.T / self.temp, dim=1)
            return -(target * log_online).sum(dim=1).mean()
