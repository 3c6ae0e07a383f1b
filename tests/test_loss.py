"""SCE loss: docs/reference.md §1.7 reference values, hand-computed logits, InfoNCE limit, precision."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sce_builtins.losses.infonce import InfoNCELoss
from sce_builtins.losses.sce import SCELoss

import sce_core

F64 = torch.float64


def small_fixture() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """docs/reference.md §1.7 / §7.1 inputs (not normalised), queue as (K, D) rows."""
    q = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=F64)
    k = torch.tensor([[0, 0], [1, 1], [0, 0], [1, 1]], dtype=F64)
    queue = torch.tensor([[0, 0, 0, 2], [0, 0, 0, 2]], dtype=F64).T
    return q, k, queue


def _grid(fn, rows: int, cols: int, offset: float, step_j: float = 1.0) -> torch.Tensor:
    return torch.tensor(
        [[fn(offset + 3 * i + step_j * j) for j in range(cols)] for i in range(rows)], dtype=F64
    )


def trig_fixture() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """docs/reference.md §1.7 sin/cos vectors: B=4, D=3, K=5 (queue columns normalised, stored as rows)."""
    q = F.normalize(_grid(math.sin, 4, 3, 1), dim=1)
    k = F.normalize(_grid(math.cos, 4, 3, 1), dim=1)
    cols = torch.tensor(
        [[math.sin(0.5 * (5 * j + n) + 0.3) for n in range(5)] for j in range(3)], dtype=F64
    )
    return q, k, F.normalize(cols, dim=0).T


def test_small_table_values() -> None:
    q, k, queue = small_fixture()
    assert SCELoss(0.5, 0.1, 0.07, False)(q, k, queue).item() == pytest.approx(90.5, abs=1e-6)
    assert SCELoss(0.5, 0.1, 0.07, True)(q, k, queue).item() == pytest.approx(87.5, abs=1e-6)
    assert SCELoss(0.5, 0.1, 0.07, True)(q, k).item() == pytest.approx(24.02648051391478, abs=1e-6)


def _expected_from_sims(sim_q, sim_k, pos_cols, coeff, temp, temp_m) -> float:
    """Plain-math SCE from explicit similarity rows (the shipped test's construction)."""
    total = 0.0
    for row_q, row_k, pos in zip(sim_q, sim_k, pos_cols):
        zk = [math.exp(s / temp_m) for s in row_k]
        pk = [z / sum(zk) for z in zk]
        w = [(1 - coeff) * p + (coeff if j == pos else 0.0) for j, p in enumerate(pk)]
        lse = math.log(sum(math.exp(s / temp) for s in row_q))
        total += -sum(wj * (s / temp - lse) for wj, s in zip(w, row_q))
    return total / len(sim_q)


def test_hand_computed_logits_without_keys() -> None:
    q, k, queue = small_fixture()
    sim_q = [[0, 0, 0, 0, 6], [7, 0, 0, 0, 14], [0, 0, 0, 0, 22], [15, 0, 0, 0, 30]]
    sim_k = [[0, 0, 0, 0, 0], [0, 0, 0, 0, 4], [0, 0, 0, 0, 0], [0, 0, 0, 0, 4]]
    expected = _expected_from_sims(sim_q, sim_k, [0] * 4, 0.5, 0.1, 0.07)
    assert expected == pytest.approx(90.5, abs=1e-9)
    assert SCELoss(0.5, 0.1, 0.07, False)(q, k, queue).item() == pytest.approx(expected, abs=1e-9)


def test_hand_computed_logits_with_keys() -> None:
    q, k, queue = small_fixture()
    qk = [[0, 3, 0, 3], [0, 7, 0, 7], [0, 11, 0, 11], [0, 15, 0, 15]]
    kk = [[0, 0, 0, 0], [0, 2, 0, 2], [0, 0, 0, 0], [0, 2, 0, 2]]
    qq = [[0, 0, 0, 6], [0, 0, 0, 14], [0, 0, 0, 22], [0, 0, 0, 30]]
    kq = [[0, 0, 0, 0], [0, 0, 0, 4], [0, 0, 0, 0], [0, 0, 0, 4]]
    sim_q = [a + b for a, b in zip(qk, qq)]
    sim_k = [[v - (1e9 if j == i else 0) for j, v in enumerate(a + b)] for i, (a, b) in
             enumerate(zip(kk, kq))]
    expected = _expected_from_sims(sim_q, sim_k, range(4), 0.5, 0.1, 0.07)
    got = SCELoss(0.5, 0.1, 0.07, True)(q, k, queue).item()
    assert got == pytest.approx(expected, abs=1e-9)


TRIG_TABLE = {
    0.5: (2.029109531982205, 3.702964020444523, 3.1879821921774374),
    0.125: (1.409799828807127, 3.481177360519563, 3.184646386979371),
    1.0: (2.8548558028823092, 3.9986795670111364, 3.1924299324415264),
    0.0: (1.2033632610821008, 3.4072484738779103, 3.1835344519133493),
}


@pytest.mark.parametrize("coeff", sorted(TRIG_TABLE))
def test_trig_table(coeff: float) -> None:
    q, k, queue = trig_fixture()
    no_keys, keys_queue, keys_only = TRIG_TABLE[coeff]
    assert abs(SCELoss(coeff, 0.1, 0.05, False)(q, k, queue).item() - no_keys) < 1e-6
    assert abs(SCELoss(coeff, 0.1, 0.05, True)(q, k, queue).item() - keys_queue) < 1e-6
    assert abs(SCELoss(coeff, 0.1, 0.05, True)(q, k).item() - keys_only) < 1e-6


def test_symmetric_two_view_value() -> None:
    q, k, queue = trig_fixture()
    q2 = F.normalize(_grid(math.cos, 4, 3, 2), dim=1)
    k2 = F.normalize(
        torch.tensor([[math.sin(3 + 3 * i + 2 * j) for j in range(3)] for i in range(4)], dtype=F64),
        dim=1,
    )
    loss = SCELoss(0.5, 0.1, 0.05, False)
    value = 0.5 * (loss(q2, k, queue) + loss(q, k2, queue))
    assert abs(value.item() - 3.429909840618371) < 1e-6


def test_coeff_one_is_infonce() -> None:
    q, k, queue = trig_fixture()
    sce = SCELoss(1.0, 0.1, 0.05, False)(q, k, queue)
    nce = InfoNCELoss(0.1)(q, k, queue)
    assert abs(sce.item() - nce.item()) < 1e-12
    # also against a direct MoCo formula on random float32 inputs
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    k = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    queue = F.normalize(torch.randn(64, 16, generator=g), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / 0.2
    moco = F.cross_entropy(logits, torch.zeros(8, dtype=torch.long))
    torch.testing.assert_close(SCELoss(1.0, 0.2, 0.05)(q, k, queue), moco, rtol=0, atol=1e-6)


def test_coeff_zero_is_not_ressl() -> None:
    """lambda = 0 keeps the positive in both softmaxes; ReSSL drops it from both."""
    q, k, queue = trig_fixture()
    sce = SCELoss(0.0, 0.1, 0.05, False)(q, k, queue).item()
    p_k = torch.softmax(k @ queue.T / 0.05, dim=1)
    ressl = -(p_k * torch.log_softmax(q @ queue.T / 0.1, dim=1)).sum(1).mean().item()
    assert abs(sce - 1.2033632610821008) < 1e-6
    assert abs(sce - ressl) > 1e-3


def test_golden_random_values() -> None:
    """Appendix A.1 of the research notes: seeded inputs, eztorch's float64 values."""
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(8, 16, generator=g, dtype=F64), dim=1)
    k = F.normalize(torch.randn(8, 16, generator=g, dtype=F64), dim=1)
    queue = F.normalize(torch.randn(16, 64, generator=g, dtype=F64), dim=0).T
    assert q[0, 0].item() == pytest.approx(-0.48991755094822176, abs=1e-12)
    assert SCELoss(0.5, 0.1, 0.05)(q, k, queue).item() == pytest.approx(7.400923754824, abs=1e-9)
    assert SCELoss(1.0, 0.1, 0.05)(q, k, queue).item() == pytest.approx(6.865336888714, abs=1e-9)
    assert SCELoss(0.0, 0.1, 0.05)(q, k, queue).item() == pytest.approx(7.936510620935, abs=1e-9)
    assert SCELoss(0.5, 0.1, 0.07)(q, k, queue).item() == pytest.approx(7.300726259889, abs=1e-9)
    assert SCELoss(0.5, 0.1, 0.05, True)(q, k, queue).item() == pytest.approx(
        7.261691988347279, abs=1e-9
    )


def test_no_queue_without_keys_is_zero() -> None:
    q, k, _ = trig_fixture()
    assert SCELoss(0.5, 0.1, 0.05, False)(q, k).item() == 0.0


def test_rank_block_of_gathered_keys() -> None:
    q, k, queue = trig_fixture()
    other = F.normalize(_grid(math.cos, 4, 3, 7), dim=1)
    loss = SCELoss(0.5, 0.1, 0.05, True)
    as_rank0 = loss(q, k, queue, k_global=torch.cat([k, other]), rank=0)
    as_rank1 = loss(q, k, queue, k_global=torch.cat([other, k]), rank=1)
    wrong = loss(q, k, queue, k_global=torch.cat([other, k]), rank=0)
    assert abs(as_rank0.item() - as_rank1.item()) < 1e-12
    assert abs(wrong.item() - as_rank1.item()) > 1e-3


def test_float32_under_autocast_and_gradient_only_through_q() -> None:
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(8, 16, generator=g), dim=1).requires_grad_(True)
    k = F.normalize(torch.randn(8, 16, generator=g), dim=1).requires_grad_(True)
    queue = F.normalize(torch.randn(32, 16, generator=g), dim=1)
    loss = SCELoss(0.5, 0.1, 0.05, False)
    plain = loss(q, k, queue)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = loss(q, k, queue)
    assert auto.dtype == torch.float32
    assert auto.item() == plain.item()
    half = loss(q.detach().bfloat16(), k.detach().bfloat16(), queue.bfloat16())
    assert half.dtype == torch.float32
    plain.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_bad_inputs_raise() -> None:
    q, k, queue = trig_fixture()
    with pytest.raises(ValueError, match="sce_loss"):
        SCELoss()(q, k[:3], queue)
    with pytest.raises(ValueError, match="one key per row"):
        SCELoss()(q, k, queue.T)
    with pytest.raises(ValueError, match="temp"):
        SCELoss(temp=0.0)


def test_built_from_registry() -> None:
    node = {"_name_": "sce_loss", "coeff": 0.5, "temp": 0.1, "temp_m": 0.05, "use_keys": False}
    loss = sce_core.build("losses", node)
    assert isinstance(loss, SCELoss)
    assert (loss.coeff, loss.temp, loss.temp_m, loss.use_keys) == (0.5, 0.1, 0.05, False)
    q, k, queue = trig_fixture()
    assert abs(loss(q, k, queue).item() - 2.029109531982205) < 1e-6
