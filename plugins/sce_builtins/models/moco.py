"""MoCo v2: the shared momentum target and queue with the InfoNCE loss."""

from __future__ import annotations

from typing import ClassVar

from sce_builtins.losses.infonce import InfoNCELoss
from sce_builtins.models.sce_options import Temperature
from sce_builtins.models.siamese import QUEUE_REQUIRED, SiameseModel
from sce_core.slots import BaseArgs


class MoCoModel(SiameseModel):
    """MoCo v2: each online projection must pick its target key among the queue's keys
    (InfoNCE, softmax at ``temp`` over ``[q.k, q.queue]``, the positive at column 0).

    Differs from SCE: a one-hot target (SCE with ``coeff: 1`` computes the same loss), no
    predictor in MoCo v2 (a configured one is used, as MoCo v3 does), a queue is required.
    Everything else (trunk, projector, EMA target, queue, crops, shuffle_bn, momentum
    schedule, performance) is the shared base's (``sce info`` prints its docstring too).

    Args:
        temp: softmax temperature of InfoNCE.
        **kwargs: the shared parameters (trunk, optimizer, projector, predictor, transforms,
            loss, sym, queue, normalize_outputs, crops, schedules, shuffle_bn, per_rank_seed,
            performance); a ``loss`` component replaces InfoNCE.
    """

    method: ClassVar[str] = "moco"
    queue_use: ClassVar[str] = QUEUE_REQUIRED

    def __init__(self, temp: Temperature = 0.2, **kwargs: BaseArgs) -> None:
        if kwargs.get("loss") is None:
            kwargs["loss"] = InfoNCELoss(temp=temp)
        super().__init__(**kwargs)
        self.temp = float(temp)
