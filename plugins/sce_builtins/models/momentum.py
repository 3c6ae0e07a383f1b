"""Momentum (EMA) target network utilities: fused in-place update and momentum schedules.

The reference loops over parameters in Python and re-assigns ``.data`` with fresh tensors every
step (docs/reference.md §9.15). Here the whole update is one fused ``torch._foreach_lerp_`` over the parameter
lists, in place: ``theta_t <- theta_t + (1 - m) * (theta_o - theta_t)`` which equals
``m * theta_t + (1 - m) * theta_o`` (docs/reference.md §2.3) up to float rounding.
Only parameters are averaged; buffers (BN running statistics) are not (docs/reference.md §2.3).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

MomentumScheduleKind = Literal["constant", "cosine", "cosine_epoch"]


def make_target(online: nn.Module) -> nn.Module:
    """Return a frozen deep copy of ``online`` (parameters and buffers) for the target branch."""
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def _pair_params(target: nn.Module, online: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    t_named = list(target.named_parameters())
    o_named = list(online.named_parameters())
    if [n for n, _ in t_named] != [n for n, _ in o_named]:
        raise ValueError(
            "ema: target and online modules have different parameter names; build the target "
            "as a copy of the online module."
        )
    for (name, tp), (_, op) in zip(t_named, o_named):
        if tp.shape != op.shape:
            raise ValueError(f"ema: shape mismatch for parameter {name!r}.")
    return [p for _, p in t_named], [p for _, p in o_named]


@torch.no_grad()
def ema_update_(
    target_params: Sequence[Tensor], online_params: Sequence[Tensor], momentum: float
) -> None:
    """In place, fused: ``target <- momentum * target + (1 - momentum) * online`` per tensor."""
    if len(target_params) != len(online_params):
        raise ValueError("ema: target and online parameter lists differ in length.")
    if not target_params:
        return
    if momentum == 1.0:
        return
    torch._foreach_lerp_(list(target_params), list(online_params), 1.0 - float(momentum))


class EMAUpdater:
    """Fused EMA of a target module's parameters towards an online module's.

    The parameter lists are collected once (paired by name, in ``named_parameters`` order), so a
    call costs one fused foreach kernel per device/dtype group and no Python loop.

    Args:
        target: the momentum (target) module, updated in place.
        online: the online module whose parameters are followed.
    """

    def __init__(self, target: nn.Module, online: nn.Module) -> None:
        self.target_params, self.online_params = _pair_params(target, online)

    def __call__(self, momentum: float) -> None:
        ema_update_(self.target_params, self.online_params, momentum)


def momentum_value(
    kind: MomentumScheduleKind | None, initial: float, step: int, total_steps: int
) -> float:
    """Momentum at ``step`` for schedule ``kind`` (docs/reference.md §2.3).

    ``constant`` (or ``None``): ``initial``. ``cosine``: ``1 - (1 - m0) * (1 + cos(pi * step /
    total_steps)) / 2`` so ``m(0) = m0`` and ``m(total_steps) = 1``; ``step`` counts optimizer
    steps (``cosine``) or epochs (``cosine_epoch``) and ``total_steps`` is ``S * E - 1`` resp.
    ``E - 1``. Steps past ``total_steps`` stay at 1 (the reference's cosine would rise again;
    clamped here). ``total_steps <= 0`` gives 1.
    """
    if kind is None or kind == "constant":
        return float(initial)
    if kind not in ("cosine", "cosine_epoch"):
        raise ValueError(
            f"momentum schedule: unknown kind {kind!r}; use 'constant', 'cosine' or 'cosine_epoch'."
        )
    if total_steps <= 0:
        return 1.0
    progress = min(max(step / total_steps, 0.0), 1.0)
    return 1.0 - (1.0 - initial) * (math.cos(math.pi * progress) + 1.0) / 2.0
