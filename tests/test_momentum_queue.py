"""EMA target update, momentum schedule, and the feature queue (FIFO, wrap-around, gather)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sce_builtins.models.momentum import EMAUpdater, ema_update_, make_target, momentum_value
from sce_builtins.models.queue import FeatureQueue, concat_all_gather
from torch import nn


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3, bias=False))


def test_ema_matches_naive_loop() -> None:
    torch.manual_seed(0)
    online = _net()
    target = make_target(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    expected = [0.99 * t.clone() + 0.01 * o for t, o in zip(target.parameters(), online.parameters())]
    stats_before = target[1].running_mean.clone()
    online[1].running_mean.fill_(5.0)
    EMAUpdater(target, online)(0.99)
    for got, want in zip(target.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert torch.equal(target[1].running_mean, stats_before)  # buffers are not averaged
    assert all(not p.requires_grad for p in target.parameters())


def test_ema_extreme_momenta() -> None:
    online, other = _net(), _net()
    target_params = [p.detach().clone() for p in other.parameters()]
    before = [p.clone() for p in target_params]
    ema_update_(target_params, list(online.parameters()), 1.0)
    assert all(torch.equal(a, b) for a, b in zip(target_params, before))
    ema_update_(target_params, list(online.parameters()), 0.0)
    assert all(torch.equal(a, b.detach()) for a, b in zip(target_params, online.parameters()))


def test_ema_rejects_mismatched_modules() -> None:
    with pytest.raises(ValueError, match="parameter names"):
        EMAUpdater(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)))


def test_momentum_schedules() -> None:
    assert momentum_value("constant", 0.99, 500, 1000) == 0.99
    assert momentum_value("cosine", 0.99, 0, 1000) == pytest.approx(0.99, abs=1e-15)
    assert momentum_value("cosine", 0.99, 1000, 1000) == pytest.approx(1.0, abs=1e-15)
    assert momentum_value("cosine", 0.99, 500, 1000) == pytest.approx(0.995, abs=1e-12)
    # hand value: 1 - 0.01 * (cos(pi / 4) + 1) / 2
    assert momentum_value("cosine", 0.99, 1, 4) == pytest.approx(0.9914644660940673, abs=1e-12)
    assert momentum_value("cosine", 0.99, 2000, 1000) == 1.0  # clamped past the end
    # the reference's shipped check: 0.98 after 2 steps with T1 = 1 would be the cosine period
    assert momentum_value("cosine", 0.98, 1, 1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="momentum schedule"):
        momentum_value("linear", 0.99, 0, 10)  # type: ignore[arg-type]


def _keys(start: int, n: int) -> torch.Tensor:
    idx = torch.arange(start, start + n, dtype=torch.float32)
    return torch.stack([idx, -idx], dim=1)


def test_queue_fifo_and_wrap_around() -> None:
    torch.manual_seed(0)
    queue = FeatureQueue(size=5, feature_dim=2)
    torch.testing.assert_close(queue.queue.norm(dim=1), torch.ones(5))
    queue.enqueue(_keys(0, 2))
    assert queue.position == 2 and int(queue.ptr) == 2
    queue.enqueue(_keys(2, 2))
    queue.enqueue(_keys(4, 2))  # batch 2 does not divide K = 5: wraps into row 0
    assert queue.position == 1 and int(queue.ptr) == 1
    assert queue.queue[:, 0].tolist() == [5, 1, 2, 3, 4]
    assert queue.ordered()[:, 0].tolist() == [1, 2, 3, 4, 5]  # oldest first
    snap = queue.snapshot()
    queue.enqueue(_keys(6, 7))  # more keys than slots: only the newest K survive
    assert queue.ordered()[:, 0].tolist() == [8, 9, 10, 11, 12]
    assert queue.position == (1 + 7) % 5
    assert snap[:, 0].tolist() == [5, 1, 2, 3, 4]  # the snapshot did not change


def test_queue_state_dict_round_trip() -> None:
    queue = FeatureQueue(size=6, feature_dim=2)
    queue.enqueue(_keys(0, 4))
    state = queue.state_dict()
    assert set(state) == {"queue", "ptr"}
    restored = FeatureQueue(size=6, feature_dim=2)
    restored.load_state_dict(state)
    assert restored.position == 4
    restored.enqueue(_keys(4, 3))
    assert restored.ordered()[:, 0].tolist() == [1, 2, 3, 4, 5, 6]


def test_queue_rejects_bad_keys() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        FeatureQueue(8, 4).enqueue(torch.zeros(2, 3))


def test_gather_is_identity_without_distributed() -> None:
    x = torch.randn(3, 2)
    assert concat_all_gather(x) is x


def _gather_worker(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)  # same initial queue on both ranks
    queue = FeatureQueue(size=5, feature_dim=2)
    queue.enqueue(_keys(10 * rank, 2), gather=True)  # rank 0 keys 0, 1; rank 1 keys 10, 11
    queue.enqueue(_keys(10 * rank + 2, 2), gather=True)  # rank 0 keys 2, 3; rank 1 keys 12, 13
    torch.save({"queue": queue.queue.clone(), "pos": queue.position}, f"{out_file}.{rank}")
    dist.destroy_process_group()


def test_queue_receives_keys_from_both_ranks(tmp_path) -> None:
    init_file, out_file = str(tmp_path / "init"), str(tmp_path / "out")
    mp.spawn(_gather_worker, args=(init_file, out_file), nprocs=2, join=True)
    results = [torch.load(f"{out_file}.{r}", weights_only=True) for r in range(2)]
    assert torch.equal(results[0]["queue"], results[1]["queue"])
    # 8 keys into K = 5 (rank order inside each step): 0, 1, 10, 11 | 2, 3, 12, 13
    assert results[0]["queue"][:, 0].tolist() == [3, 12, 13, 11, 2]
    assert results[0]["pos"] == 3


def test_cosine_momentum_equals_value_schedule_form() -> None:
    """m(t) = 1 - (1 - m0) (1 + cos(pi t / T)) / 2 at a few hand-picked steps."""
    for t, total in [(0, 10), (3, 10), (7, 9)]:
        want = 1 - 0.01 * (1 + math.cos(math.pi * t / total)) / 2
        assert momentum_value("cosine", 0.99, t, total) == pytest.approx(want, abs=1e-15)

