"""GlobalBatchNorm (``trainer.sync_batchnorm``) on two real gloo processes: the same numbers as
one BatchNorm over the concatenated batch, no host synchronisation, shuffle-BN's layers kept."""

from __future__ import annotations

import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sce_builtins.models.shuffle_bn import SplitBatchNorm3d, convert_to_split_batchnorm
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from sce_core.sync_batchnorm import GlobalBatchNorm, convert_to_global, convert_to_local

SYNC_OPS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default"}
SIZES = (3, 4)  # uneven local batches: 7 samples in all


class OpNames(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sum(SIZES), 5, 2, 3, 3, generator=g, dtype=torch.float64) * 3 + 1
    w = torch.randn(sum(SIZES), 5, 2, 3, 3, generator=g, dtype=torch.float64)
    return x, w


def _layer(cls: type) -> nn.Module:
    torch.manual_seed(1)
    bn = cls(5, momentum=0.3).double()
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    return bn


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    x, w = _data()
    start = sum(SIZES[:rank])
    x_local = x[start:start + SIZES[rank]].clone().requires_grad_()
    bn = convert_to_global(_layer(nn.BatchNorm3d))
    with OpNames() as ops:
        y = bn(x_local)
        (y * w[start:start + SIZES[rank]]).sum().backward()
    torch.save({"y": y.detach(), "gx": x_local.grad, "gw": bn.weight.grad, "gb": bn.bias.grad,
                "rm": bn.running_mean, "rv": bn.running_var, "ops": ops.names}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(f"file://{tmp}/init", tmp), nprocs=2, join=True)
        yield [torch.load(f"{tmp}/rank{r}.pt") for r in range(2)]


def test_two_ranks_equal_one_batchnorm_over_the_whole_batch(two_ranks):
    x, w = _data()
    x = x.clone().requires_grad_()
    bn = _layer(nn.BatchNorm3d)
    y = bn(x)
    (y * w).sum().backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in two_ranks]), y.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.cat([r["gx"] for r in two_ranks]), x.grad, rtol=0, atol=1e-12)
    # DDP sums (then averages) parameter gradients over ranks: their sum is the whole batch's.
    torch.testing.assert_close(two_ranks[0]["gw"] + two_ranks[1]["gw"], bn.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(two_ranks[0]["gb"] + two_ranks[1]["gb"], bn.bias.grad, rtol=0, atol=1e-12)
    for r in two_ranks:  # running statistics: the global mean and unbiased variance, on every rank
        torch.testing.assert_close(r["rm"], bn.running_mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(r["rv"], bn.running_var, rtol=0, atol=1e-12)


def test_forward_and_backward_never_synchronise_with_the_host(two_ranks):
    for r in two_ranks:
        assert not SYNC_OPS & set(r["ops"]), sorted(SYNC_OPS & set(r["ops"]))
        assert len(r["ops"]) <= 130, len(r["ops"])  # forward and backward: 117 ops measured


@pytest.mark.parametrize("case", ["bfloat16-input", "bf16-mixed-autocast", "channels-last-3d"])
def test_bf16_inputs_and_channels_last_match_plain_batchnorm(monkeypatch, case):
    """Two ranks holding the same batch (emulated: the collectives return this rank's share
    twice) normalise and differentiate exactly like one plain BatchNorm over that batch."""
    from sce_core import sync_batchnorm

    monkeypatch.setattr(sync_batchnorm, "_world_size", lambda: 2)
    monkeypatch.setattr(sync_batchnorm, "_gather_rows", lambda local: local.repeat(2, 1))
    monkeypatch.setattr(sync_batchnorm, "_sum_over_ranks", lambda t: t * 2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 8, 3, 6, 6, generator=g) * 2 + 0.5
    w = torch.randn(4, 8, 3, 6, 6, generator=g)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "bf16-mixed-autocast")
    if case != "channels-last-3d":  # what a BatchNorm sees in a bf16-mixed run: float32 parameters
        x, w, tol = x.bfloat16(), w.bfloat16(), {"rtol": 2e-2, "atol": 2e-2}
    else:
        x = x.contiguous(memory_format=torch.channels_last_3d)
        tol = {"rtol": 1e-5, "atol": 1e-5}
    results = []
    for make in (lambda: nn.BatchNorm3d(8), lambda: convert_to_global(nn.BatchNorm3d(8))):
        torch.manual_seed(1)
        bn = make()
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
        xi = x.clone().requires_grad_()
        with autocast:
            y = bn(xi)
        (y.float() * w.float()).sum().backward()
        results.append((y, xi.grad, bn.weight.grad, bn.bias.grad, bn.running_mean))
    (y0, gx0, gw0, gb0, rm0), (y1, gx1, gw1, gb1, rm1) = results
    assert y1.dtype == y0.dtype and gx1.dtype == x.dtype and gw1.dtype == torch.float32
    assert rm1.dtype == torch.float32 and bn.running_var.dtype == torch.float32
    if case == "channels-last-3d":
        assert y1.is_contiguous(memory_format=torch.channels_last_3d)
    for ours, plain in ((y1, y0), (gx1, gx0), (gw1, gw0), (gb1, gb0), (rm1, rm0)):
        torch.testing.assert_close(ours.float(), plain.float(), **tol)


def test_one_process_and_eval_mode_are_plain_batchnorm():
    x, _ = _data()
    plain, ours = _layer(nn.BatchNorm3d), convert_to_global(_layer(nn.BatchNorm3d))
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)
    plain.eval(), ours.eval()
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)


def test_conversion_keeps_parameters_keys_and_shuffle_bn_layers():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Linear(4, 4), nn.BatchNorm1d(4))
    target = convert_to_split_batchnorm(nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4)), 1)
    model = nn.ModuleDict({"online": online, "target": target})
    before = {k: v for k, v in model.state_dict().items()}
    weight = online[1].weight
    convert_to_global(model)
    assert type(model["online"][1]) is GlobalBatchNorm and type(model["online"][3]) is GlobalBatchNorm
    assert type(model["target"][1]) is SplitBatchNorm3d
    assert model["online"][1].weight is weight
    assert list(model.state_dict()) == list(before)
    convert_to_local(model)
    assert [type(model["online"][i]) for i in (1, 3)] == [nn.BatchNorm3d, nn.BatchNorm1d]
    assert model["online"][1].weight is weight
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_sync_batchnorm_in_the_trainer_section_installs_it(tmp_path):
    from sce_core.runner import build_trainer
    from sce_core.sync_batchnorm import BatchNormSync

    plain = {"trainer": {"accelerator": "cpu", "devices": 1, "sync_batchnorm": True, "logger": False}}
    trainer = build_trainer(plain, tmp_path, [])
    assert isinstance(trainer._accelerator_connector._layer_sync, BatchNormSync)


def test_the_benchmark_runs_at_a_tiny_size_and_counts_fewer_ops_than_before():
    """benchmarks/sync_batchnorm.py (so it does not rot): every stage shape measured for both
    layers, the ratio column is the time over plain BatchNorm's."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "sync_batchnorm.py"
    proc = subprocess.run([sys.executable, str(script), "--batch", "2", "--frames", "4", "--size", "16",
                           "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(r"^(plain BatchNorm3d|GlobalBatchNorm)\s+(\(.*?\))\s+(\d+)\s+([\d.]+)\s+([\d.]+)x$",
                      proc.stdout, re.M)
    assert len(rows) == 8, proc.stdout
    for plain, ours in zip(rows[::2], rows[1::2]):
        assert plain[0] == "plain BatchNorm3d" and ours[0] == "GlobalBatchNorm" and plain[1] == ours[1]
        assert float(plain[4]) == 1.0
        assert int(ours[2]) <= 35  # forward, backward and gradient accumulation; 37 at c53cfd0
        assert int(plain[2]) < int(ours[2])
