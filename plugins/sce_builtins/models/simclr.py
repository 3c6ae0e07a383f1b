"""SimCLR: the shared online branch and views, no target, NT-Xent over the global batch."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from sce_builtins.losses.ntxent import NTXentLoss
from sce_builtins.models.sce_options import Temperature
from sce_builtins.models.siamese import QUEUE_REFUSED, SiameseModel
from sce_core.slots import BaseArgs


class SimCLRModel(SiameseModel):
    """SimCLR: both views go through the online branch; each embedding must pick its other
    view among every other embedding of the global batch (NT-Xent at ``temp``), the negatives
    gathered from every rank with their gradients.

    Differs from SCE: no momentum target (no EMA, no momentum schedule, no shuffle-BN), no
    queue and no predictor in SimCLR (a configured one is used); the loss is averaged over the
    view pairs that include a global crop. Everything else (trunk, projector, crops,
    transforms, performance) is the shared base's (``sce info`` prints its docstring too).

    Args:
        temp: softmax temperature of NT-Xent.
        **kwargs: the shared parameters (trunk, optimizer, projector, predictor, transforms,
            loss, queue, normalize_outputs, crops, per_rank_seed, performance); a ``loss``
            component called as ``loss(a, b)`` on two views' embeddings replaces NT-Xent.
    """

    method: ClassVar[str] = "simclr"
    uses_target: ClassVar[bool] = False
    queue_use: ClassVar[str] = QUEUE_REFUSED

    def __init__(self, temp: Temperature = 0.1, **kwargs: BaseArgs) -> None:
        if kwargs.get("loss") is None:
            kwargs["loss"] = NTXentLoss(temp=temp)
        super().__init__(**kwargs)
        self.temp = float(temp)

    def step_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """Online passes of every view, NT-Xent averaged over the pairs (global i, any j > i)."""
        online = self.multi_crop_shared_step(views)
        pairs = [(i, j) for i in range(self.num_global_crops) for j in range(i + 1, self.num_crops)]
        total = views[0].new_zeros((), dtype=torch.float32)
        for i, j in pairs:
            total = total + self.loss_fn(online[i]["q"], online[j]["q"])
        return total / len(pairs), online[0], None
