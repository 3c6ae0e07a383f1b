"""LARS against hand-computed updates, torch optimizer wrappers, and optimizer_factory (docs/reference.md §4)."""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
from sce_builtins.optim.factory import optimizer_factory, scale_learning_rate
from sce_builtins.optim.lars import LARS
from sce_builtins.optim.schedulers import scheduler_factory
from torch import nn

import sce_core

# -- LARS --------------------------------------------------------------------------------


def test_lars_hand_computed_two_steps() -> None:
    w = nn.Parameter(torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64))
    b = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = LARS([w, b], lr=0.1, momentum=0.9, weight_decay=0.5, trust_coefficient=0.4)
    # step 1: d = g + 0.5 w = [[0, 0], [0, 4]]; a = 0.4 * 5 / 4 = 0.5; mu = d * a = [[0,0],[0,2]]
    w.grad = torch.tensor([[-1.5, 0.0], [0.0, 2.0]], dtype=torch.float64)
    b.grad = torch.tensor([0.5, 0.5], dtype=torch.float64)
    opt.step()
    assert w.flatten().tolist() == pytest.approx([3.0, 0.0, 0.0, 3.8], abs=1e-12)
    assert b.tolist() == pytest.approx([0.95, -2.05], abs=1e-12)  # no decay, no adaptation
    # docs/reference.md §4.2: `.grad` is scratch space and holds a·d / (1 - momentum) after the
    # step (d / (1 - momentum) for one-dimensional tensors), not the raw gradient
    assert w.grad.flatten().tolist() == pytest.approx([0.0, 0.0, 0.0, 20.0], abs=1e-12)
    assert b.grad.tolist() == pytest.approx([5.0, 5.0], abs=1e-12)
    # step 2: d = [[1 + 1.5, 0], [0, 1.9]]; a = 0.4 * sqrt(23.44) / sqrt(9.86)
    w.grad = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    b.grad = torch.tensor([1.0, 0.0], dtype=torch.float64)
    opt.step()
    a = 0.4 * math.sqrt(9 + 3.8**2) / math.sqrt(2.5**2 + 1.9**2)
    mu = [[0.9 * 0 + a * 2.5, 0.0], [0.0, 0.9 * 2 + a * 1.9]]
    want = [[3.0 - 0.1 * mu[0][0], 0.0], [0.0, 3.8 - 0.1 * mu[1][1]]]
    assert w.tolist()[0] == pytest.approx(want[0], abs=1e-12)
    assert w.tolist()[1] == pytest.approx(want[1], abs=1e-12)
    assert b.tolist() == pytest.approx([0.95 - 0.1 * 1.45, -2.05 - 0.1 * 0.45], abs=1e-12)


def test_lars_zero_norm_param_is_not_adapted_and_none_grad_skipped() -> None:
    w = nn.Parameter(torch.zeros(2, 3))
    skipped = nn.Parameter(torch.ones(2, 2))
    opt = LARS([w, skipped], lr=0.5, momentum=0.9, weight_decay=0.1, trust_coefficient=0.001)
    w.grad = torch.full((2, 3), 2.0)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2, 3), -1.0))  # a = 1 since ||p|| = 0
    assert torch.equal(skipped.detach(), torch.ones(2, 2))
    assert skipped not in opt.state


def _naive_lars_step(params, grads, bufs, lr, mom, wd, eta) -> None:
    for p, g, buf in zip(params, grads, bufs):
        d = g.clone()
        if p.ndim > 1:
            d = d + wd * p
            pn, dn = torch.norm(p), torch.norm(d)
            if pn > 0 and dn > 0:
                d = d * (eta * pn / dn)
        buf.mul_(mom).add_(d)
        p.sub_(lr * buf)


def test_lars_matches_naive_loop_on_random_params() -> None:
    g = torch.Generator().manual_seed(0)
    shapes = [(4, 3, 2, 2), (5,), (6, 4), (3,), (2, 2, 1, 1, 1)]
    params = [nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in shapes]
    ref = [p.detach().clone() for p in params]
    bufs = [torch.zeros_like(p) for p in ref]
    opt = LARS(params, lr=0.3, momentum=0.9, weight_decay=1e-2, trust_coefficient=1e-3)
    for _ in range(3):
        grads = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        opt.step()
        _naive_lars_step(ref, grads, bufs, 0.3, 0.9, 1e-2, 1e-3)
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.detach(), r, rtol=1e-12, atol=1e-12)


def test_lars_state_dict_round_trip() -> None:
    p = nn.Parameter(torch.ones(3, 3))
    opt = LARS([p], lr=0.1)
    p.grad = torch.ones(3, 3)
    opt.step()
    other = LARS([nn.Parameter(torch.ones(3, 3))], lr=0.1)
    other.load_state_dict(opt.state_dict())
    assert torch.equal(next(iter(other.state.values()))["momentum_buffer"],
                       opt.state[p]["momentum_buffer"])


# -- torch wrappers ----------------------------------------------------------------------


def test_torch_optimizer_wrappers_from_registry() -> None:
    params = list(nn.Linear(3, 2).parameters())
    sgd = sce_core.build("optimizers", {"_name_": "sgd", "lr": 0.5, "momentum": 0.9}, params=params)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    adam = sce_core.build("optimizers", {"_name_": "adam", "betas": [0.8, 0.9]}, params=params)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.8, 0.9)
    adamw = sce_core.build("optimizers", "adamw", params=params)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.01
    lars = sce_core.build("optimizers", {"_name_": "lars", "lr": 0.2}, params=params)
    assert isinstance(lars, LARS) and lars.defaults["trust_coefficient"] == 0.001


# -- optimizer_factory -------------------------------------------------------------------


class Boring(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(32, 2)


class LargeBoring(nn.Module):
    """3 x [Linear(no bias) + BN1d] + Linear(bias) + an extra Linear outside learnable_params."""

    num_layers = 4

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *[nn.Sequential(nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32)) for _ in range(3)]
        )
        self.last = nn.Linear(32, 2)
        self.extra = nn.Linear(32, 2)

    @property
    def learnable_params(self) -> list[nn.Parameter]:
        return list(self.blocks.parameters()) + list(self.last.parameters())

    def get_param_layer_id(self, name: str) -> int:
        return int(name.split(".")[1]) if name.startswith("blocks.") else 3


Boring.num_layers = 1  # type: ignore[attr-defined]
Boring.get_param_layer_id = lambda self, name: 0  # type: ignore[attr-defined]


def _sizes(model: nn.Module, **kwargs) -> list[int]:
    out = optimizer_factory("sgd", model, 10, initial_lr=2.0, **kwargs)
    return [len(g["params"]) for g in out["optimizer"].param_groups]


@pytest.mark.parametrize(
    ("kwargs", "small", "large"),
    [
        ({}, [2], [11]),
        ({"layer_decay_lr": 0.7}, [2], [3, 3, 3, 2]),
        ({"exclude_wd_bias": True}, [1, 1], [7, 4]),
        ({"exclude_wd_bias": True, "layer_decay_lr": 0.7}, [1, 1], [2, 2, 2, 1, 1, 1, 1, 1]),
        ({"exclude_wd_norm": True}, [2], [5, 6]),
        ({"exclude_wd_norm": True, "layer_decay_lr": 0.7}, [2], [1, 1, 1, 2, 2, 2, 2]),
        ({"exclude_wd_norm": True, "exclude_wd_bias": True}, [1, 1], [4, 7]),
        (
            {"exclude_wd_norm": True, "exclude_wd_bias": True, "layer_decay_lr": 0.7},
            [1, 1],
            [1, 1, 1, 1, 2, 2, 2, 1],
        ),
        ({"exclude_wd_norm": True, "keys_without_decay": ["bias"]}, [1, 1], [4, 7]),
    ],
)
def test_group_counts_match_reference(kwargs, small, large) -> None:
    assert _sizes(Boring(), **kwargs) == small
    assert _sizes(LargeBoring(), **kwargs) == large


def test_excluded_group_has_zero_weight_decay_and_layer_lrs() -> None:
    model = LargeBoring()
    out = optimizer_factory(
        "sgd", model, 10, initial_lr=1.0, params={"weight_decay": 0.1}, exclude_wd_bias=True,
        layer_decay_lr=0.5,
    )
    groups = out["optimizer"].param_groups
    decayed, plain = groups[:4], groups[4:]
    assert [g["weight_decay"] for g in decayed] == [0.1] * 4
    assert [g["weight_decay"] for g in plain] == [0.0] * 4
    assert [g["lr"] for g in decayed] == [0.125, 0.25, 0.5, 1.0]
    assert plain[-1]["params"][0] is model.last.bias
    assert all(p is not model.extra.weight for g in groups for p in g["params"])


def test_lr_scaler() -> None:
    assert scale_learning_rate(2.0, None, 16) == 2.0
    assert scale_learning_rate(2.0, "none", 16) == 2.0
    assert scale_learning_rate(2.0, "linear", 16) == 0.125
    assert scale_learning_rate(2.0, "sqrt", 16) == 8.0
    with pytest.raises(ValueError, match="batch_size"):
        scale_learning_rate(2.0, "linear", None)


def test_recipe_lars_lr_and_global_batch_fallback() -> None:
    params = {"momentum": 0.9, "trust_coefficient": 0.001, "weight_decay": 1e-6}
    frozen = copy.deepcopy(params)
    out = optimizer_factory("lars", LargeBoring(), 156, params=params, batch_size=512,
                            initial_lr=2.4, scaler="linear")
    opt = out["optimizer"]
    assert set(out) == {"optimizer"}
    assert isinstance(opt, LARS) and len(opt.param_groups) == 1
    assert opt.param_groups[0]["lr"] == pytest.approx(4.8)
    assert opt.param_groups[0]["weight_decay"] == 1e-6
    assert params == frozen  # config not mutated
    out = optimizer_factory("lars", Boring(), 1, global_batch_size=1024, initial_lr=0.1,
                            scaler="sqrt")
    assert out["optimizer"].param_groups[0]["lr"] == pytest.approx(3.2)


def test_factory_with_scheduler_returns_lightning_dict() -> None:
    sched = partial(scheduler_factory, name="linear_warmup_cosine_annealing_lr",
                    params={"max_epochs": 2, "warmup_epochs": 1}, interval="step")
    out = optimizer_factory("sgd", Boring(), 4, initial_lr=1.0, scheduler=sched)
    assert set(out) == {"optimizer", "lr_scheduler"}
    assert out["lr_scheduler"]["interval"] == "step" and out["lr_scheduler"]["frequency"] == 1
    assert out["lr_scheduler"]["scheduler"].optimizer is out["optimizer"]


def test_factory_errors() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        optimizer_factory("sgd", nn.Linear(2, 2), 1, layer_decay_lr=0.5)
    with pytest.raises(ValueError, match="initial_lr"):
        optimizer_factory("sgd", nn.Linear(2, 2), 1, params={"lr": 0.1})
    with pytest.raises(ValueError, match="learnable"):
        optimizer_factory("sgd", nn.ReLU(), 1)


def test_seed_node_builds_through_core() -> None:
    """The seed's optimizer node, verbatim apart from `_name_`, through sce_core.build."""
    node = {
        "_name_": "optimizer_factory",
        "exclude_wd_norm": False,
        "exclude_wd_bias": False,
        "name": "lars",
        "params": {"momentum": 0.9, "trust_coefficient": 0.001, "weight_decay": 1.0e-06},
        "batch_size": 512,
        "initial_lr": 2.4,
        "layer_decay_lr": None,
        "scaler": "linear",
        "scheduler": {
            "_name_": "scheduler_factory",
            "name": "linear_warmup_cosine_annealing_lr",
            "params": {"max_epochs": 200, "warmup_epochs": 35, "warmup_start_lr": 0.0,
                       "eta_min": 0.0},
            "interval": "step",
        },
    }
    frozen = copy.deepcopy(node)
    out = sce_core.build("optimizers", node, model=LargeBoring(), num_steps_per_epoch=156)
    assert node == frozen
    sched = out["lr_scheduler"]["scheduler"]
    assert (sched.warmup_steps, sched.total_steps) == (35 * 156, 200 * 156)
    assert out["optimizer"].param_groups[0]["lr"] == 0.0  # lr(0) = warmup_start_lr
    assert sched.base_lrs == [pytest.approx(4.8)]



@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_lars_momentum_edge_values(momentum: float) -> None:
    """Two steps on w = [[3, 4]] with g = [[0, 2]], wd 0, eta 0.5: a = 0.5 * ||w|| / 2."""
    w = nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    opt = LARS([w], lr=0.1, momentum=momentum, weight_decay=0.0, trust_coefficient=0.5)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    opt.step()  # a = 1.25, mu = 2.5, w = [3, 3.75]
    assert w.flatten().tolist() == pytest.approx([3.0, 3.75], abs=1e-12)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    opt.step()  # a = 0.25 * sqrt(9 + 3.75^2); mu = momentum * 2.5 + 2 a
    mu = momentum * 2.5 + 2 * 0.25 * math.sqrt(9 + 3.75**2)
    assert w.flatten().tolist() == pytest.approx([3.0, 3.75 - 0.1 * mu], abs=1e-12)
