"""``cosine_pair_loss``: ``scale * (2 - 2 cos(q, k))`` averaged over the batch."""

from __future__ import annotations

from typing import Any

import torch

CALLS = [0]  # read by the hook's callback: the run used this loss


class CosinePairLoss(torch.nn.Module):
    """Negative cosine similarity of predictions and keys, as BYOL.

    It has none of the SCE loss's ``coeff``, ``temp`` or ``temp_m``, and no ``logged_values``.

    Args:
        scale: factor applied to the batch mean (> 0).
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"cosine_pair_loss: scale must be > 0, got {scale}")
        self.scale = float(scale)

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: Any = None,
                k_global: Any = None) -> torch.Tensor:
        CALLS[0] += 1
        return self.scale * (2 - 2 * (q * k.detach()).sum(dim=1)).mean()
