"""BYOL loss: the normalised squared distance between prediction and target, no negatives."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from sce_builtins.losses._common import compute_dtype, no_autocast


class BYOLLoss(nn.Module):
    """BYOL's regression loss ``|q/|q| - k/|k||^2 = 2 - 2 cos(q, k)``, averaged over the batch.

    Called like the SCE loss, ``loss(q, k, queue=None, k_global=None)``; ``queue`` and
    ``k_global`` are ignored (BYOL uses no negatives). Computed in at least float32 with
    autocast off; the gradient flows through ``q`` only.
    """

    def forward(self, q: Tensor, k: Tensor, queue: Tensor | None = None, k_global: Tensor | None = None) -> Tensor:
        """Return ``mean(2 - 2 cos(q, k))``."""
        dtype = compute_dtype(q, k)
        with no_autocast(q):
            q, k = F.normalize(q.to(dtype), dim=1), F.normalize(k.detach().to(dtype), dim=1)
            return (2.0 - 2.0 * (q * k).sum(dim=1)).mean()
