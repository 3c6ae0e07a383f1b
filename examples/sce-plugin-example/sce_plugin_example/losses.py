"""``byol_cosine_loss``: the BYOL regression loss, ``2 - 2 cos(q, k)`` averaged over the batch."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BYOLCosineLoss(nn.Module):
    """BYOL-style loss between online predictions ``q`` and target keys ``k``.

    ``loss(q, k, queue=None, k_global=None)`` has the call signature of the SCE loss;
    ``queue`` and ``k_global`` are accepted and ignored (BYOL uses no negatives). Gradients
    do not flow into ``k`` (stop-gradient on the target). For unit vectors
    ``2 - 2 cos = ||q - k||^2``: 0 for equal rows, 2 for orthogonal ones, 4 for opposite ones.

    Args:
        scale: factor applied to the batch mean (1 gives the BYOL loss as published).
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f"byol_cosine_loss: scale must be a positive number, got {scale!r}")
        self.scale = float(scale)

    def forward(self, q: Tensor, k: Tensor, queue: Tensor | None = None,
                k_global: Tensor | None = None) -> Tensor:
        """Mean of ``2 - 2 cos(q_i, k_i)`` over the rows, times ``scale`` (a scalar)."""
        if q.shape != k.shape or q.ndim != 2:
            raise ValueError(f"byol_cosine_loss: q and k must both be (B, D), got "
                             f"{tuple(q.shape)} and {tuple(k.shape)}")
        cos = torch.nn.functional.cosine_similarity(q.float(), k.detach().float(), dim=1)
        return self.scale * (2.0 - 2.0 * cos).mean()
