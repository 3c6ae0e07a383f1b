"""Learning-rate schedulers and ``scheduler_factory`` (docs/reference.md §4.3).

Every scheduler component takes two build-time arguments: ``optimizer`` and
``num_steps_per_epoch``, the number of *scheduler* steps per epoch (the optimizer steps per
epoch for a per-step schedule, 1 for a per-epoch one). ``scheduler_factory`` passes the right
value for its ``interval`` and wraps the result for Lightning; a scheduler used directly as the
optimizer factory's ``scheduler`` is stepped every optimizer step.

``warmup_start_lr`` and ``eta_min`` are multiplied per param group by the group's batch-size lr
scale (``lr_scale``) and layer decay (``layer_lr_decay``) as the reference does.

Differences from the reference (documented on purpose): the config is never mutated (the
reference multiplied ``max_epochs``/``warmup_epochs`` in place), the warm-up/cosine schedule is
closed-form (no accumulated rounding) and stays at ``eta_min`` after the last step instead of
rising again, and a one-step warm-up starts at the base lr instead of dividing by zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR

from sce_builtins.optim._build import build_node
from sce_builtins.optim.param_groups import LAYER_DECAY_KEY, LR_SCALE_KEY
from sce_core.constraints import AtMost, Range
from sce_core.slots import Factory

_RUNTIME = ("optimizer", "num_steps_per_epoch")


def _group_factor(group: Mapping[str, Any]) -> float:
    return float(group.get(LR_SCALE_KEY, 1.0)) * float(group.get(LAYER_DECAY_KEY, 1.0))


def warmup_cosine_lr(
    step: int, warmup_steps: int, total_steps: int, base: float, start: float, eta_min: float
) -> float:
    """Closed form of docs/reference.md §4.3 at scheduler step ``step`` (0-based).

    ``step < W``: ``start + step * (base - start) / (W - 1)``; then
    ``eta_min + (base - eta_min) * (1 + cos(pi * (step - W) / (T - W))) / 2``, held at
    ``eta_min`` from ``T`` on.
    """
    if step < warmup_steps:
        if warmup_steps == 1:
            return base
        return start + step * (base - start) / (warmup_steps - 1)
    if step >= total_steps or total_steps <= warmup_steps:
        return eta_min
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return eta_min + 0.5 * (base - eta_min) * (1.0 + math.cos(math.pi * progress))


class LinearWarmupCosineAnnealingLR(LRScheduler):
    """Linear warm-up from ``warmup_start_lr`` to the base lr, then cosine decay to ``eta_min``.

    Args:
        optimizer: the wrapped optimizer.
        warmup_steps: number of warm-up scheduler steps W (``lr(W - 1)`` = base lr).
        total_steps: total scheduler steps T (``lr(T)`` = ``eta_min``).
        warmup_start_lr: lr at step 0 (times each group's lr scale).
        eta_min: final lr (times each group's lr scale).
        last_epoch: index of the last step when resuming (-1 for a fresh start).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        total_steps: int,
        warmup_start_lr: float = 0.0,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps < 0 or total_steps <= 0 or warmup_steps > total_steps:
            raise ValueError(
                "linear_warmup_cosine_annealing_lr: need 0 <= warmup steps <= total steps and "
                f"total steps > 0 (got {warmup_steps}, {total_steps}); check the epochs."
            )
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.start_lrs = [warmup_start_lr * _group_factor(g) for g in optimizer.param_groups]
        self.eta_mins = [eta_min * _group_factor(g) for g in optimizer.param_groups]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Learning rates of every group at the current step (closed form)."""
        step = self.last_epoch
        return [
            warmup_cosine_lr(step, self.warmup_steps, self.total_steps, base, lo, eta)
            for base, lo, eta in zip(self.base_lrs, self.start_lrs, self.eta_mins)
        ]

    _get_closed_form_lr = get_lr


def linear_warmup_cosine_annealing_lr(
    optimizer: Optimizer,
    num_steps_per_epoch: int,
    warmup_epochs: Annotated[float, Range(ge=0), AtMost("max_epochs")],
    max_epochs: Annotated[float, Range(gt=0)],
    warmup_start_lr: Annotated[float, Range(ge=0)] = 0.0,
    eta_min: Annotated[float, Range(ge=0)] = 0.0,
) -> LinearWarmupCosineAnnealingLR:
    """Linear warm-up then cosine annealing, lengths in epochs (docs/reference.md §4.3).

    Epochs are converted to scheduler steps with ``num_steps_per_epoch`` (rounded), without
    touching the config.

    Args:
        optimizer: the wrapped optimizer (given at build time).
        num_steps_per_epoch: scheduler steps per epoch (given at build time).
        warmup_epochs: length of the linear warm-up.
        max_epochs: total length of the schedule.
        warmup_start_lr: lr at the first step, before batch-size scaling.
        eta_min: final lr, before batch-size scaling.
    """
    return LinearWarmupCosineAnnealingLR(
        optimizer,
        warmup_steps=round(warmup_epochs * num_steps_per_epoch),
        total_steps=round(max_epochs * num_steps_per_epoch),
        warmup_start_lr=warmup_start_lr,
        eta_min=eta_min,
    )


def cosine_annealing_lr(
    optimizer: Optimizer, num_steps_per_epoch: int, T_max: int, eta_min: float = 0.0  # noqa: N803
) -> CosineAnnealingLR:
    """Cosine annealing (``torch.optim.lr_scheduler.CosineAnnealingLR``).

    Args:
        optimizer: the wrapped optimizer (given at build time).
        num_steps_per_epoch: scheduler steps per epoch (given at build time; unused).
        T_max: half period in scheduler steps.
        eta_min: final lr, multiplied by the first group's batch-size lr scale.
    """
    factor = _group_factor(optimizer.param_groups[0])
    return CosineAnnealingLR(optimizer, T_max=T_max, eta_min=eta_min * factor)


def multi_step_lr(
    optimizer: Optimizer, num_steps_per_epoch: int, milestones: Sequence[int], gamma: float = 0.1
) -> MultiStepLR:
    """Multiply the lr by ``gamma`` at each milestone (``torch.optim.lr_scheduler.MultiStepLR``).

    Args:
        optimizer: the wrapped optimizer (given at build time).
        num_steps_per_epoch: scheduler steps per epoch (given at build time; unused).
        milestones: scheduler steps at which the lr decays.
        gamma: multiplicative factor.
    """
    return MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)


def scheduler_factory(
    name: Factory("schedulers", args_param="params"),  # type: ignore[valid-type]
    optimizer: Optimizer,
    num_steps_per_epoch: int,
    params: Mapping[str, Any] | None = None,
    interval: Literal["step", "epoch"] = "epoch",
) -> dict[str, Any]:
    """Build the scheduler ``name`` and wrap it as Lightning's ``lr_scheduler`` dict.

    With ``interval: step`` the scheduler is stepped after every optimizer step and its epoch
    lengths are converted with the steps per epoch; with ``epoch`` it is stepped once per epoch.

    Args:
        name: scheduler registry name (``linear_warmup_cosine_annealing_lr``, ...); the config
            checks ``params`` against that scheduler's parameters.
        optimizer: the wrapped optimizer (given at build time).
        num_steps_per_epoch: optimizer steps per epoch (given at build time).
        params: the scheduler's arguments.
        interval: ``step`` or ``epoch``.
    """
    if interval not in ("step", "epoch"):
        raise ValueError(f"scheduler_factory: interval must be 'step' or 'epoch', got {interval!r}.")
    if getattr(name, "name", name) == "scheduler_factory":
        raise ValueError("scheduler_factory: name must be a scheduler, not scheduler_factory.")
    steps = num_steps_per_epoch if interval == "step" else 1
    if isinstance(name, str):
        node = {"_name_": name, **dict(params or {})}
        scheduler = build_node(
            "schedulers", node, "scheduler", optimizer=optimizer, num_steps_per_epoch=steps
        )
    else:  # the config's `name` + `params`, validated with it by the core
        scheduler = name(optimizer=optimizer, num_steps_per_epoch=steps)
    return {"scheduler": scheduler, "interval": interval, "frequency": 1}


for _fn in (linear_warmup_cosine_annealing_lr, cosine_annealing_lr, multi_step_lr, scheduler_factory):
    _fn.__sce_runtime_args__ = _RUNTIME  # type: ignore[attr-defined]

__all__ = [
    "LinearWarmupCosineAnnealingLR",
    "cosine_annealing_lr",
    "linear_warmup_cosine_annealing_lr",
    "multi_step_lr",
    "scheduler_factory",
    "warmup_cosine_lr",
]
