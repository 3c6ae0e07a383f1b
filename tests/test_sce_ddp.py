"""Two-process CPU DDP run (Lightning DDP, forked processes, gloo) of the SCE model.

Checks that the queue receives the all-gathered keys of both ranks in the spec's order
([rank0 z_0; rank1 z_0; rank0 z_1; rank1 z_1]), that both ranks keep identical parameters and
queues (DDP buffer broadcast is off, so the queue really is kept in sync by the gathers), and
that the per-rank seed offset gives the ranks different augmentation randomness.
"""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from sce_builtins.models.heads.mlp import MLPHead
from sce_builtins.models.sce import SCEModel
from sce_builtins.strategies import ddp
from torch import nn
from torch.utils.data import DataLoader, Dataset

B, D, K = 4, 8, 40


class TinyTrunk(nn.Module):
    """Test-only trunk: Conv3d + BN3d + ReLU + global pool -> (B, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.num_features = 8
        self.net = nn.Sequential(nn.Conv3d(3, 8, (1, 3, 3), padding=(0, 1, 1), bias=False),
                                 nn.BatchNorm3d(8), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def sgd(model, num_steps_per_epoch, global_batch_size):
    """Stand-in optimizer factory: SGD on the online branch."""
    assert num_steps_per_epoch == 2 and global_batch_size == 2 * B
    return {"optimizer": torch.optim.SGD(model.learnable_params, lr=0.05, momentum=0.9)}


class Views(Dataset):
    """16 fixed samples with two uint8 views each."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.views = [torch.randint(0, 256, (16, 3, 2, 8, 8), generator=g, dtype=torch.uint8)
                      for _ in range(2)]

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict:
        return {"input": [v[i] for v in self.views], "label": 0, "idx": i}


class Probe(Callback):
    """Saves, per rank, what the main process compares."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.record: dict = {}

    def on_train_start(self, trainer, model):
        gen = torch.Generator()
        gen.set_state(torch.get_rng_state())
        self.record["draw"] = torch.rand(3, generator=gen)

    def on_train_batch_start(self, trainer, model, batch, batch_idx):
        if trainer.global_step == 0:
            t, p = copy.deepcopy(model.momentum_trunk), copy.deepcopy(model.momentum_projector)
            with torch.no_grad():
                self.record["keys0"] = [F.normalize(p(t(v)), dim=1) for v in batch["input"]]

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        self.record.setdefault("losses", []).append(float(outputs["loss"]))
        if trainer.global_step == 1:
            self.record["queue1"] = model.queue.queue.clone()

    def on_train_end(self, trainer, model):
        self.record["queue"] = model.queue.queue.clone()
        self.record["ptr"] = int(model.queue.ptr)
        self.record["logged"] = {k: float(trainer.callback_metrics[f"pretrain/loss_{k}"])
                                 for k in ("step", "epoch")}
        self.record["params"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        torch.save(self.record, f"{self.out_dir}/rank{trainer.global_rank}.pt")


@pytest.mark.ddp
def test_two_process_ddp_queue_gathers_both_ranks_and_ranks_stay_in_sync(tmp_path):
    pl.seed_everything(7)
    proj = MLPHead(input_dim=8, hidden_dims=[16], output_dim=D, num_layers=2, norm_layer="bn_1D",
                   bias=False, last_bias=False, last_norm=True, last_affine=False)
    pred = MLPHead(input_dim=D, hidden_dims=[16], output_dim=D, num_layers=2, norm_layer="bn_1D",
                   bias=False, last_bias=False)
    model = SCEModel(trunk=TinyTrunk(), projector=proj, predictor=pred, optimizer=sgd,
                     queue={"size": K, "feature_dim": D}, sym=True,
                     schedules={"momentum": {"initial": 0.9, "kind": "cosine"}})
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy=ddp(process_group_backend="gloo", broadcast_buffers=False, start_method="fork"),
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
        callbacks=[Probe(str(tmp_path))],
    )
    loader = DataLoader(Views(), batch_size=B, shuffle=False, drop_last=True)
    trainer.fit(model, loader)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))

    # First step: [rank0 z_0; rank1 z_0; rank0 z_1; rank1 z_1] written at rows 0..15.
    expected = torch.cat([r0["keys0"][0], r1["keys0"][0], r0["keys0"][1], r1["keys0"][1]])
    assert not torch.allclose(r0["keys0"][0], r1["keys0"][0])  # the ranks saw different samples
    for rec in (r0, r1):
        torch.testing.assert_close(rec["queue1"][: 4 * B], expected, rtol=0, atol=1e-6)
    # 2 epochs x 2 steps x 16 keys = 64 keys into K = 40 rows: pointer 24 on both ranks.
    assert r0["ptr"] == r1["ptr"] == 64 % K
    assert torch.equal(r0["queue"], r1["queue"])
    assert r0["params"].keys() == r1["params"].keys() and len(r0["params"]) > 0
    for name in r0["params"]:
        assert torch.equal(r0["params"][name], r1["params"][name]), name
    # The logged loss is averaged over the ranks (docs/reference.md §2.9), step and epoch values.
    assert r0["losses"] != r1["losses"]
    assert r0["logged"] == r1["logged"]
    assert r0["logged"]["step"] == pytest.approx((r0["losses"][-1] + r1["losses"][-1]) / 2, abs=1e-6)
    assert r0["logged"]["epoch"] == pytest.approx(sum(r0["losses"][2:] + r1["losses"][2:]) / 4, abs=1e-6)
    # Per-rank augmentation seed: PL_GLOBAL_SEED (7) + rank.
    for rank, rec in enumerate((r0, r1)):
        torch.testing.assert_close(rec["draw"], torch.rand(3, generator=torch.Generator().manual_seed(7 + rank)))


def _shuffle_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from sce_builtins.models.gather import concat_all_gather_without_backprop
    from sce_builtins.models.shuffle_bn import shuffled_forward

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # different local RNG: rank 0's permutation must win
        x = torch.arange(6.0).view(6, 1) + 100 * rank
        seen = []

        def fn(t):
            seen.append(t.clone())
            return {"h": t * 2, "z": t + 1}

        out = shuffled_forward(fn, x)
        gathered = concat_all_gather_without_backprop(x)
        torch.save({"out": out, "seen": seen[0], "gathered": gathered}, f"{out_dir}/shuffle{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_distributed_shuffle_forward_two_processes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_shuffle_worker, args=(port, str(tmp_path)), nprocs=2, start_method="fork")
    r0, r1 = (torch.load(tmp_path / f"shuffle{r}.pt", weights_only=True) for r in (0, 1))
    everything = torch.cat([torch.arange(6.0), torch.arange(6.0) + 100]).view(12, 1)
    for rank, rec in enumerate((r0, r1)):
        x = torch.arange(6.0).view(6, 1) + 100 * rank
        torch.testing.assert_close(rec["gathered"], everything)
        torch.testing.assert_close(rec["out"]["h"], x * 2)  # back in the original order
        torch.testing.assert_close(rec["out"]["z"], x + 1)
    # The two ranks processed disjoint halves of one shared permutation of the global batch.
    seen = torch.cat([r0["seen"], r1["seen"]]).view(-1)
    assert sorted(seen.tolist()) == everything.view(-1).tolist()
    assert not torch.equal(seen, everything.view(-1))  # actually shuffled (seeded: fixed draw)
