"""BYOL: the shared momentum target and online predictor with a regression loss."""

from __future__ import annotations

from typing import ClassVar

from sce_builtins.losses.byol import BYOLLoss
from sce_builtins.models.siamese import QUEUE_REFUSED, SiameseModel
from sce_core.slots import BaseArgs


class BYOLModel(SiameseModel):
    """BYOL: the online prediction regresses the target projection of another view,
    ``2 - 2 cos(q, k)``; no negatives.

    Differs from SCE: no queue and no negatives at all (collapse is avoided by the predictor
    and the momentum target), so a predictor is required and ``queue`` must be null.
    Everything else is the shared base's (``sce info`` prints its docstring too).

    Args:
        **kwargs: the shared parameters (trunk, optimizer, projector, predictor, transforms,
            loss, sym, queue, normalize_outputs, crops, schedules, shuffle_bn, per_rank_seed,
            performance); a ``loss`` component replaces the BYOL loss.
    """

    method: ClassVar[str] = "byol"
    queue_use: ClassVar[str] = QUEUE_REFUSED

    def __init__(self, **kwargs: BaseArgs) -> None:
        if kwargs.get("predictor") is None:
            raise self.error("needs a predictor (without one BYOL collapses); set model.predictor")
        if kwargs.get("loss") is None:
            kwargs["loss"] = BYOLLoss()
        super().__init__(**kwargs)
