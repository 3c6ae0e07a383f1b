"""LR schedules of docs/reference.md §4.3 at chosen steps, scheduler_factory, and the docs/reference.md §1.8 value helper."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from sce_builtins.optim.factory import optimizer_factory
from sce_builtins.optim.schedulers import (
    LinearWarmupCosineAnnealingLR,
    cosine_annealing_lr,
    linear_warmup_cosine_annealing_lr,
    multi_step_lr,
    scheduler_factory,
    warmup_cosine_lr,
)
from sce_builtins.optim.value_schedule import scheduler_value
from torch import nn


def _sgd(lr: float = 1.0) -> torch.optim.SGD:
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=lr)


def _lrs(scheduler, optimizer, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_cosine_small_by_hand() -> None:
    opt = _sgd(1.0)
    sched = LinearWarmupCosineAnnealingLR(opt, warmup_steps=5, total_steps=20)
    lrs = _lrs(sched, opt, 23)
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert lrs[5] == pytest.approx(1.0)  # lr(W) = base again
    assert lrs[10] == pytest.approx(0.75)  # 0.5 * (1 + cos(pi * 5 / 15))
    assert lrs[19] == pytest.approx(0.5 * (1 + math.cos(math.pi * 14 / 15)))
    assert 0 < lrs[19] < 0.02
    assert lrs[20:] == [0.0, 0.0, 0.0]  # held at eta_min after T


def test_recipe_schedule_values() -> None:
    w, t, base = 35 * 156, 200 * 156, 4.8
    assert (w, t) == (5460, 31200)
    assert warmup_cosine_lr(0, w, t, base, 0.0, 0.0) == 0.0
    assert warmup_cosine_lr(w - 1, w, t, base, 0.0, 0.0) == pytest.approx(4.8, abs=1e-12)
    assert warmup_cosine_lr(w, w, t, base, 0.0, 0.0) == pytest.approx(4.8, abs=1e-12)
    assert warmup_cosine_lr(1, w, t, base, 0.0, 0.0) == pytest.approx(4.8 / 5459, abs=1e-15)
    last = warmup_cosine_lr(t - 1, w, t, base, 0.0, 0.0)
    assert 0 < last < 1e-7
    mid = warmup_cosine_lr(w + (t - w) // 2, w, t, base, 0.0, 0.0)
    assert mid == pytest.approx(2.4, abs=1e-12)


def test_warmup_start_and_eta_min_are_scaled_like_the_lr() -> None:
    out = optimizer_factory(
        "sgd", nn.Linear(2, 2), 1, batch_size=512, initial_lr=1.0, scaler="linear",
        scheduler={"_name_": "linear_warmup_cosine_annealing_lr", "warmup_epochs": 2,
                   "max_epochs": 4, "warmup_start_lr": 0.1, "eta_min": 0.05},
    )
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "step"
    assert _lrs(sched, opt, 5) == pytest.approx([0.2, 2.0, 2.0, 0.1 + 0.95 * 1.0, 0.1])


def test_scheduler_factory_step_and_epoch_intervals_without_mutation() -> None:
    params = {"max_epochs": 10, "warmup_epochs": 2}
    frozen = copy.deepcopy(params)
    per_step = scheduler_factory("linear_warmup_cosine_annealing_lr", _sgd(), 7, params, "step")
    per_epoch = scheduler_factory("linear_warmup_cosine_annealing_lr", _sgd(), 7, params, "epoch")
    assert params == frozen
    assert (per_step["scheduler"].warmup_steps, per_step["scheduler"].total_steps) == (14, 70)
    assert (per_epoch["scheduler"].warmup_steps, per_epoch["scheduler"].total_steps) == (2, 10)
    assert per_step["interval"] == "step" and per_epoch["interval"] == "epoch"
    assert per_step["frequency"] == 1
    with pytest.raises(ValueError, match="interval"):
        scheduler_factory("multi_step_lr", _sgd(), 7, {"milestones": [1]}, "batch")  # type: ignore[arg-type]


def test_epoch_conversion_direct() -> None:
    sched = linear_warmup_cosine_annealing_lr(_sgd(), 10, warmup_epochs=0.5, max_epochs=3)
    assert (sched.warmup_steps, sched.total_steps) == (5, 30)
    with pytest.raises(ValueError, match="warm"):
        linear_warmup_cosine_annealing_lr(_sgd(), 10, warmup_epochs=4, max_epochs=3)


def test_layer_decay_factor_scales_start_and_eta() -> None:
    opt = torch.optim.SGD(
        [{"params": [nn.Parameter(torch.ones(1))], "lr": 0.5, "layer_lr_decay": 0.5},
         {"params": [nn.Parameter(torch.ones(1))], "lr": 1.0, "layer_lr_decay": 1.0}],
        lr=1.0,
    )
    sched = LinearWarmupCosineAnnealingLR(opt, 3, 6, warmup_start_lr=0.2, eta_min=0.1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.2])
    for _ in range(6):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.1])


def test_resume_continues_exactly() -> None:
    opt = _sgd(2.0)
    sched = LinearWarmupCosineAnnealingLR(opt, 4, 12)
    _lrs(sched, opt, 6)
    state = sched.state_dict()
    opt2 = _sgd(2.0)  # Lightning's order: build both, then load optimizer and scheduler states
    sched2 = LinearWarmupCosineAnnealingLR(opt2, 4, 12)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    assert _lrs(sched2, opt2, 4) == pytest.approx(_lrs(sched, opt, 4))


def test_cosine_and_multistep() -> None:
    opt = _sgd(1.0)
    sched = cosine_annealing_lr(opt, 1, T_max=4, eta_min=0.0)
    assert _lrs(sched, opt, 5) == pytest.approx(
        [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0]
    )
    opt = _sgd(1.0)
    sched = multi_step_lr(opt, 1, milestones=[2, 4], gamma=0.1)
    assert _lrs(sched, opt, 5) == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


def test_scheduler_value_linear_fixed_direction_and_cosine() -> None:
    assert scheduler_value(None, 0.3, 1.0, 5, 10) == 0.3
    # increasing ramp goes start -> end (the reference ran it end -> start)
    assert scheduler_value("linear", 0.0, 1.0, 0, 10) == 0.0
    assert scheduler_value("linear", 0.0, 1.0, 3, 10) == pytest.approx(0.3)
    assert scheduler_value("linear", 0.0, 1.0, 10, 10) == 1.0
    # decreasing ramp agrees with the reference a + s * (b - a) / M
    assert scheduler_value("linear", 1.0, 0.5, 4, 10) == pytest.approx(1.0 + 4 * (0.5 - 1.0) / 10)
    # cosine: c = (1 + cos(pi + pi s / M)) / 2, hand value at s/M = 1/3 is 0.25
    assert scheduler_value("cosine", 0.05, 0.1, 0, 9) == pytest.approx(0.05)
    assert scheduler_value("cosine", 0.05, 0.1, 3, 9) == pytest.approx(0.05 + 0.25 * 0.05)
    assert scheduler_value("cosine", 0.5, 0.0, 9, 9) == pytest.approx(0.0)
    assert scheduler_value("cosine", 0.5, 0.0, 20, 9) == pytest.approx(0.0)  # clamped
    assert scheduler_value("linear", 0.5, 0.0, 0, 0) == 0.0  # no division by zero
    with pytest.raises(ValueError, match="scheduler_value"):
        scheduler_value("step", 0.0, 1.0, 0, 1)  # type: ignore[arg-type]
