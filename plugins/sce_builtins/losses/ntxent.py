"""SimCLR's NT-Xent loss with the in-batch negatives of every rank."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sce_builtins.losses._common import TemperatureLoss, compute_dtype, no_autocast
from sce_builtins.models.gather import concat_all_gather_with_backprop, get_rank

_NAME = "ntxent_loss"


class NTXentLoss(TemperatureLoss):
    """NT-Xent (SimCLR): each embedding of view a (and of view b) must pick its other view
    among the ``2 N - 1`` other embeddings of the global batch (``N`` samples over every rank),
    by a softmax of cosine similarities at ``temp``; averaged over the local ``2 B`` anchors.

    Called as ``loss(a, b, queue=None, k_global=None)`` with the two views' online embeddings
    ``(B, D)`` (both carry gradients; ``queue`` and ``k_global`` are ignored). On several
    processes the candidates are gathered from every rank with their gradient, so each rank's
    loss reaches every rank's embeddings. Computed in at least float32 with autocast off.

    Args:
        temp: softmax temperature.
    """

    name = _NAME

    def __init__(self, temp: float = 0.1) -> None:
        super().__init__(temp)

    def forward(self, a: Tensor, b: Tensor, queue: Tensor | None = None, k_global: Tensor | None = None) -> Tensor:
        """Return the mean NT-Xent loss of the local anchors."""
        if a.ndim != 2 or a.shape != b.shape:
            raise ValueError(f"{_NAME}: both views must be (B, D); got {tuple(a.shape)} and {tuple(b.shape)}.")
        dtype = compute_dtype(a, b)
        with no_autocast(a):
            a, b = F.normalize(a.to(dtype), dim=1), F.normalize(b.to(dtype), dim=1)
            candidates = torch.cat([concat_all_gather_with_backprop(a), concat_all_gather_with_backprop(b)])
            n, total = a.shape[0], candidates.shape[0] // 2
            own = get_rank() * n + torch.arange(n, device=a.device)
            self_col = torch.cat([own, own + total])  # each anchor's own column
            positive = torch.cat([own + total, own])  # the other view of the same sample
            logits = torch.cat([a, b]) @ candidates.T / self.temp
            mask = F.one_hot(self_col, candidates.shape[0]).bool()
            return F.cross_entropy(logits.masked_fill(mask, float("-inf")), positive)
