"""Time one SCE step's non-trunk work on CPU against a naive reference-style baseline.

Measured, at the recipe's sizes (D 256, K 32768, local batch 64, 2 views, R3D-18 trunk +
projector + predictor parameter set):
  * loss: symmetric SCE loss (2 pairs) forward + backward on the predictions;
  * queue: enqueue the 2 x 64 target keys;
  * EMA: fused ``torch._foreach_lerp_`` over trunk + projector vs the reference's per-parameter
    Python loop re-assigning ``.data`` with fresh tensors;
  * LARS: the foreach LARS step vs the reference's per-parameter loop.
Prints median milliseconds of process CPU time (stable on a shared machine; the fused and
naive variants are timed alternately) and naive / fused speed-up ratios (target: >= 3x).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/step_overhead.py [--repeats N] [--threads T]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from sce_builtins.losses.sce import SCELoss
from sce_builtins.models.momentum import EMAUpdater, make_target
from sce_builtins.models.queue import FeatureQueue
from sce_builtins.optim.lars import LARS
from torch import nn

D, K, BATCH = 256, 32768, 64
LR, MOM, WD, ETA, EMA_M = 4.8, 0.9, 1e-6, 1e-3, 0.99


def _r3d18_trunk() -> tuple[nn.Module, str]:
    try:
        from sce_builtins.models.trunks.resnet3d import ResNet3DBasic

        return ResNet3DBasic(model_depth=18), "sce_builtins ResNet3DBasic"
    except Exception:  # noqa: BLE001 - fall back to the same parameter shapes built here
        return _r3d18_shapes(), "generated R3D-18 shapes"


def _r3d18_shapes() -> nn.Module:
    """Parameter shapes of the recipe's R3D-18 (docs/reference.md §3.2): convs without bias + BN3d."""
    layers: list[nn.Module] = [nn.Conv3d(3, 64, (1, 7, 7), bias=False), nn.BatchNorm3d(64)]
    dim_in = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        kt = 3 if stage >= 2 else 1
        for block in range(2):
            cin = dim_in if block == 0 else width
            if block == 0 and cin != width:
                layers += [nn.Conv3d(cin, width, 1, bias=False), nn.BatchNorm3d(width)]
            layers += [nn.Conv3d(cin, width, (kt, 3, 3), bias=False), nn.BatchNorm3d(width),
                       nn.Conv3d(width, width, (1, 3, 3), bias=False), nn.BatchNorm3d(width)]
        dim_in = width
    return nn.Sequential(*layers)


def _mlp(dims: list[int], last_norm: bool) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=False))
        if not last:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
        elif last_norm:
            layers.append(nn.BatchNorm1d(b, affine=False))
    return nn.Sequential(*layers)


def _heads() -> tuple[nn.Module, nn.Module]:
    try:
        from sce_builtins.models.heads.mlp import MLPHead

        common = dict(activation_layer="relu", affine=True, bias=False, norm_layer="bn_1D",
                      last_bias=False, last_affine=False, output_dim=D)
        projector = MLPHead(hidden_dims=[1024, 1024], input_dim=512, num_layers=3,
                            last_norm=True, **common)
        predictor = MLPHead(hidden_dims=[1024], input_dim=D, num_layers=2, last_norm=False,
                            **common)
        return projector, predictor
    except Exception:  # noqa: BLE001
        return _mlp([512, 1024, 1024, D], True), _mlp([D, 1024, D], False)


def _time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3


def _compare(
    ours: Callable[[], object],
    naive: Callable[[], object],
    repeats: int,
    setup: Callable[[], object] = lambda: None,
) -> tuple[float, float]:
    """Median ms of ``ours`` and ``naive``, timed alternately (fair on a shared, noisy CPU);
    ``setup`` runs untimed before each call."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for i in range(repeats + 1):
        for j, fn in enumerate((ours, naive) if i % 2 == 0 else (naive, ours)):
            which = j if i % 2 == 0 else 1 - j
            setup()
            start = time.process_time()
            fn()
            if i > 0:  # the first round is a warm-up
                times[which].append(time.process_time() - start)
    return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3


@torch.no_grad()
def naive_ema(target: nn.Module, online: nn.Module, m: float) -> None:
    """The reference's EMA: a Python loop re-assigning ``.data`` with new tensors."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.data = t.data * m + o.data * (1.0 - m)


@torch.no_grad()
def naive_lars_step(params: list[nn.Parameter], state: dict[int, torch.Tensor]) -> None:
    """The reference's LARS: per-parameter norms and updates in a Python loop."""
    for p in params:
        if p.grad is None:
            continue
        dp = p.grad
        if p.ndim > 1:
            dp = dp.add(p, alpha=WD)
            p_norm, d_norm = torch.norm(p), torch.norm(dp)
            one = torch.ones_like(p_norm)
            q = torch.where(p_norm > 0.0, torch.where(d_norm > 0, ETA * p_norm / d_norm, one), one)
            dp = dp.mul(q)
        if id(p) not in state:
            state[id(p)] = torch.zeros_like(p)
        mu = state[id(p)]
        mu.mul_(MOM).add_(dp)
        p.add_(mu, alpha=-LR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    trunk, trunk_src = _r3d18_trunk()
    projector, predictor = _heads()
    online_target_part = nn.ModuleDict({"trunk": trunk, "projector": projector})
    target = make_target(online_target_part)
    learnable = [p for m in (trunk, projector, predictor) for p in m.parameters()]
    n_online = sum(p.numel() for p in learnable)
    n_target = sum(p.numel() for p in target.parameters())
    print(f"trunk: {trunk_src}; online params {n_online:,} in {len(learnable)} tensors; "
          f"target params {n_target:,}; threads {args.threads}")

    # loss + queue ---------------------------------------------------------------------
    loss_fn = SCELoss(coeff=0.5, temp=0.1, temp_m=0.05, use_keys=False)
    queue = FeatureQueue(K, D)
    qs = [F.normalize(torch.randn(BATCH, D), dim=1).requires_grad_(True) for _ in range(2)]
    ks = [F.normalize(torch.randn(BATCH, D), dim=1) for _ in range(2)]

    def loss_step() -> None:
        snap = queue.snapshot()
        loss = 0.5 * (loss_fn(qs[1], ks[0], snap) + loss_fn(qs[0], ks[1], snap))
        loss.backward()

    t_loss = _time(loss_step, args.repeats)
    keys = torch.cat(ks)
    t_queue = _time(lambda: queue.enqueue(keys), args.repeats)

    # EMA ----------------------------------------------------------------------------------
    ema = EMAUpdater(target, online_target_part)
    naive_target = make_target(online_target_part)
    ema(EMA_M)
    naive_ema(naive_target, online_target_part, EMA_M)
    for a, b in zip(target.parameters(), naive_target.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    t_ema, t_ema_naive = _compare(
        lambda: ema(EMA_M), lambda: naive_ema(naive_target, online_target_part, EMA_M),
        args.repeats,
    )

    # LARS ---------------------------------------------------------------------------------
    grads = [torch.randn_like(p) * 1e-3 for p in learnable]
    fused_params = [nn.Parameter(p.detach().clone()) for p in learnable]
    opt = LARS(fused_params, lr=LR, momentum=MOM, weight_decay=WD, trust_coefficient=ETA)
    naive_state: dict[int, torch.Tensor] = {}

    def set_grads() -> None:  # LARS uses .grad as scratch: give both the same fresh gradients
        for fp, p, g in zip(fused_params, learnable, grads):
            fp.grad = g.clone()
            p.grad = g

    set_grads()
    opt.step()
    naive_lars_step(learnable, naive_state)
    for fp, p in zip(fused_params, learnable):
        torch.testing.assert_close(fp.detach(), p.detach(), rtol=1e-5, atol=1e-6)
    t_lars, t_lars_naive = _compare(
        opt.step, lambda: naive_lars_step(learnable, naive_state), args.repeats, setup=set_grads
    )

    fused_total = t_loss + t_queue + t_ema + t_lars
    naive_total = t_loss + t_queue + t_ema_naive + t_lars_naive
    rows = [
        ("SCE loss fwd+bwd (2 pairs)", t_loss, None),
        ("queue enqueue (128 keys)", t_queue, None),
        ("EMA update", t_ema, t_ema_naive),
        ("LARS step", t_lars, t_lars_naive),
        ("total non-trunk work", fused_total, naive_total),
    ]
    print(f"{'part':30s} {'ours ms':>10s} {'naive ms':>10s} {'speed-up':>9s}")
    for name, ours, naive in rows:
        if naive is None:
            print(f"{name:30s} {ours:10.2f} {'':>10s} {'':>9s}")
        else:
            print(f"{name:30s} {ours:10.2f} {naive:10.2f} {naive / ours:8.2f}x")


if __name__ == "__main__":
    main()
