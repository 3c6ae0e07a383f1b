"""ReSSL: the shared momentum target and queue with the relational loss."""

from __future__ import annotations

from typing import ClassVar

from sce_builtins.losses.ressl import ReSSLLoss
from sce_builtins.models.sce_options import Temperature
from sce_builtins.models.siamese import QUEUE_REQUIRED, SiameseModel
from sce_core.slots import BaseArgs


class ReSSLModel(SiameseModel):
    """ReSSL: the online projection's similarities to the queue (softmax at ``temp``) match the
    target key's similarities to the queue, sharpened by a lower ``temp_m``.

    Differs from SCE: a purely relational target with no positive column in either softmax
    (SCE with ``coeff: 0`` keeps the positive in the online softmax), no predictor, a queue is
    required. Everything else is the shared base's (``sce info`` prints its docstring too).

    Args:
        temp: temperature of the online distribution.
        temp_m: temperature of the target distribution (sharper than ``temp``).
        **kwargs: the shared parameters (trunk, optimizer, projector, predictor, transforms,
            loss, sym, queue, normalize_outputs, crops, schedules, shuffle_bn, per_rank_seed,
            performance); a ``loss`` component replaces the ReSSL loss.
    """

    method: ClassVar[str] = "ressl"
    queue_use: ClassVar[str] = QUEUE_REQUIRED

    def __init__(self, temp: Temperature = 0.1, temp_m: Temperature = 0.04, **kwargs: BaseArgs) -> None:
        if kwargs.get("loss") is None:
            kwargs["loss"] = ReSSLLoss(temp=temp, temp_m=temp_m)
        super().__init__(**kwargs)
        self.temp, self.temp_m = float(temp), float(temp_m)
