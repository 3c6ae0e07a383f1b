"""SCE (Similarity Contrastive Estimation) pretraining (docs/reference.md §2).

What SCE adds to the shared base (``siamese.py``: online branch, EMA target, queue, views,
shuffle-BN, schedules, logging, checkpoints): the SCE loss (docs/reference.md §1) built from
``coeff``, ``temp``, ``temp_m`` and ``use_keys``, and the coefficient / target-temperature
schedules (docs/reference.md §1.8). The loss is computed in float32 even under autocast (see
``losses/sce.py``); ``shuffle_bn.enabled`` defaults to false (the canonical recipe's value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, get_args

from sce_builtins.losses.sce import SCELoss
from sce_builtins.models.sce_options import DEFAULT_SCHEDULES, Schedules, Temperature
from sce_builtins.models.siamese import SiameseModel, as_views
from sce_builtins.optim.value_schedule import ValueScheduleKind, scheduler_value
from sce_core.constraints import UnitInterval
from sce_core.slots import BaseArgs

__all__ = ["SCEModel", "as_views"]


class SCEModel(SiameseModel):
    """SCE: the target mixes the one-hot positive (weight ``coeff``) with the target's
    similarities to the queue (softmax at ``temp_m``); online predictions match it at ``temp``.

    Differs from the other methods: a predictor on the online branch (like BYOL), a queue (like
    MoCo and ReSSL), and a soft target between MoCo's one-hot (``coeff: 1`` is MoCo's InfoNCE)
    and ReSSL's relational one, with schedules for ``coeff`` and ``temp_m``. The other
    parameters (trunk, heads, queue, crops, shuffle_bn, momentum schedule, performance) are
    the shared ones of every method (documented below by ``sce info``; docs/methods.md).

    Args:
        coeff: lambda, weight of the one-hot positive in the target distribution (the value
            after the coeff warm-up and at the start of the main coeff schedule).
        temp: temperature of the online distribution (never scheduled).
        temp_m: temperature of the target distribution (the value after its warm-up).
        use_keys: use the in-batch gathered keys as extra candidates (see the SCE loss).
        schedules: per-batch values of coeff, temp_m and the EMA momentum, keys (defaults):
            ``coeff.warmup_epochs`` (0: none), ``coeff.warmup_start`` (1.0) and
            ``coeff.warmup_kind`` (linear): a warm-up from ``warmup_start`` to ``coeff``;
            ``coeff.kind`` (null: constant) and ``coeff.final`` (0.0): the main schedule from
            ``coeff`` to ``final`` after the warm-up;
            ``temp_m.warmup_epochs`` (0), ``temp_m.warmup_start`` (0.05) and
            ``temp_m.warmup_kind`` (cosine): a warm-up from ``warmup_start`` to ``temp_m``;
            ``momentum.initial`` (0.999): EMA momentum at the first step;
            ``momentum.kind`` (constant): ``constant``, ``cosine`` (per step, to 1 at the last
            step) or ``cosine_epoch`` (per epoch). Kinds of coeff/temp_m: linear, cosine, null.
        **kwargs: the shared parameters (trunk, optimizer, projector, predictor, transforms,
            loss, sym, queue, normalize_outputs, crops, shuffle_bn, per_rank_seed,
            performance); a ``loss`` component replaces the SCE loss, and the ``coeff`` and
            ``temp_m`` schedules are applied to any loss that has those attributes.
    """

    method: ClassVar[str] = "sce"
    schedule_defaults: ClassVar[Mapping[str, Any]] = DEFAULT_SCHEDULES
    scheduled: ClassVar[tuple[str, ...]] = ("coeff", "temp_m", "momentum")

    def __init__(
        self,
        coeff: Annotated[float, UnitInterval] = 0.5,
        temp: Temperature = 0.1,
        temp_m: Temperature = 0.05,
        use_keys: bool = False,
        schedules: Schedules = DEFAULT_SCHEDULES,
        **kwargs: BaseArgs,
    ) -> None:
        if kwargs.get("loss") is None:
            kwargs["loss"] = SCELoss(coeff=coeff, temp=temp, temp_m=temp_m, use_keys=use_keys)
        super().__init__(schedules=schedules, **kwargs)
        _check_loss_schedules(self.schedules)
        # ``coeff`` and ``temp_m`` are the values the warm-ups reach; the main coeff schedule
        # starts from ``coeff`` (docs/reference.md §1.8).
        self.initial_coeff = float(coeff)
        self.final_temp_m = float(temp_m)
        self.temp = float(temp)
        self.coeff = self.initial_coeff
        self.temp_m = self.final_temp_m

    def loss_schedule_values(self, step: int, epoch: int) -> dict[str, float]:
        """``coeff`` and ``temp_m`` for the batch starting at optimizer step ``step``: in order
        (docs/reference.md §1.8) the temp_m warm-up, the coeff warm-up, then the main coeff
        schedule (after the warm-up, or over the whole run without one)."""
        steps, epochs = self.steps_per_epoch, self.max_epochs
        temp_m_sched, coeff_sched = self.schedules["temp_m"], self.schedules["coeff"]
        temp_m = self.final_temp_m
        warm = temp_m_sched["warmup_epochs"]
        if warm > 0 and epoch < warm:
            temp_m = scheduler_value(temp_m_sched["warmup_kind"], temp_m_sched["warmup_start"],
                                     self.final_temp_m, step, warm * steps - 1)
        coeff = self.initial_coeff
        warm = coeff_sched["warmup_epochs"]
        if warm > 0 and epoch < warm:
            coeff = scheduler_value(coeff_sched["warmup_kind"], coeff_sched["warmup_start"],
                                    self.initial_coeff, step, warm * steps - 1)
        elif coeff_sched["kind"] is not None:
            coeff = scheduler_value(coeff_sched["kind"], self.initial_coeff, coeff_sched["final"],
                                    step - warm * steps, (epochs - warm) * steps - 1)
        return {"coeff": float(coeff), "temp_m": float(temp_m)}


def _check_loss_schedules(schedules: Mapping[str, Mapping[str, Any]]) -> None:
    """Known kinds for the coeff and temp_m schedules, non-negative warm-up lengths."""
    for path, kind in (("coeff.kind", schedules["coeff"]["kind"]),
                       ("coeff.warmup_kind", schedules["coeff"]["warmup_kind"]),
                       ("temp_m.warmup_kind", schedules["temp_m"]["warmup_kind"])):
        if kind is not None and kind not in get_args(ValueScheduleKind):
            raise SCEModel.error(f"schedules.{path} must be 'linear', 'cosine' or null, got {kind!r}")
    for name in ("coeff", "temp_m"):
        if schedules[name]["warmup_epochs"] < 0:
            raise SCEModel.error(f"schedules.{name}.warmup_epochs must be >= 0, got {schedules[name]['warmup_epochs']}")
