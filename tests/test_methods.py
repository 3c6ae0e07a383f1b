"""The sibling methods (moco, ressl, byol, simclr): hand-computed losses, MoCo = SCE with
coeff 1, what each model refuses, the gradient of the negatives gathered across ranks,
each demo config in a reduced size on 2 DDP processes through the real `sce pretrain`, and the
ReSSL demo's first steps leaving ln(queue size) (its keys no longer collapse)."""

from __future__ import annotations

import csv
import json
import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sce_builtins.losses.byol import BYOLLoss
from sce_builtins.losses.infonce import InfoNCELoss
from sce_builtins.losses.ntxent import NTXentLoss
from sce_builtins.losses.ressl import ReSSLLoss
from sce_builtins.losses.sce import SCELoss
from sce_builtins.models.byol import BYOLModel
from sce_builtins.models.heads.mlp import MLPHead
from sce_builtins.models.moco import MoCoModel
from sce_builtins.models.ressl import ReSSLModel
from sce_builtins.models.sce import SCEModel
from sce_builtins.models.simclr import SimCLRModel
from tiny_demo import TINY, sce
from torch import nn

E = math.e
METHODS = ["moco", "ressl", "byol", "simclr"]


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------- hand-computed losses
def test_infonce_known_values():
    # logits [q.k, q.queue] / temp = [1, 0] / temp, positive at 0: log(1 + e^(-1/temp)).
    q, k, queue = t([[1.0, 0.0]]), t([[1.0, 0.0]]), t([[0.0, 1.0]])
    assert float(InfoNCELoss(temp=1.0)(q, k, queue=queue)) == pytest.approx(math.log(1 + 1 / E), abs=1e-12)
    assert float(InfoNCELoss(temp=0.5)(q, k, queue=queue)) == pytest.approx(math.log(1 + E ** -2), abs=1e-12)


def test_ressl_known_values():
    # queue = identity; target softmax([1, 0] / temp_m), online log-softmax([0, 1] / 1).
    q, k, queue = t([[0.0, 1.0]]), t([[1.0, 0.0]]), t([[1.0, 0.0], [0.0, 1.0]])
    # temp_m 1: -(e/(1+e) log(1/(1+e)) + 1/(1+e) log(e/(1+e))) = log(1+e) - 1/(1+e)
    assert float(ReSSLLoss(temp=1.0, temp_m=1.0)(q, k, queue=queue)) == pytest.approx(
        math.log(1 + E) - 1 / (1 + E), abs=1e-12)
    # the sharper target (temp_m 0.5) puts e^2/(1+e^2) on the key's own direction
    assert float(ReSSLLoss(temp=1.0, temp_m=0.5)(q, k, queue=queue)) == pytest.approx(
        math.log(1 + E) - 1 / (1 + E ** 2), abs=1e-12)
    with pytest.raises(ValueError, match="^ressl_loss: needs the queue"):
        ReSSLLoss()(q, k)


def test_byol_known_values():
    # 2 - 2 cos: orthogonal -> 2; 45 degrees -> 2 - sqrt(2) (inputs need not be unit vectors).
    q, k = t([[1.0, 0.0], [3.0, 0.0]]), t([[0.0, 1.0], [1.0, 1.0]])
    assert float(BYOLLoss()(q, k)) == pytest.approx((2 + 2 - math.sqrt(2)) / 2, abs=1e-12)


def test_ntxent_known_values():
    # a = b = identity, temp 1: each anchor sees its positive (1) and two others (0), itself masked.
    eye = t([[1.0, 0.0], [0.0, 1.0]])
    assert float(NTXentLoss(temp=1.0)(eye, eye)) == pytest.approx(math.log(1 + 2 / E), abs=1e-12)
    # b swapped: the positive is orthogonal (0), one negative is parallel (1): log(2 + e).
    assert float(NTXentLoss(temp=1.0)(eye, eye.flip(0))) == pytest.approx(math.log(2 + E), abs=1e-12)


def seeded_set():
    """The seeded inputs of ../shared/research/ssl_anchors.md A.1 (float64, queue one key per row)."""
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(8, 16, generator=g, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(8, 16, generator=g, dtype=torch.float64), dim=1)
    queue = torch.nn.functional.normalize(torch.randn(16, 64, generator=g, dtype=torch.float64), dim=0).T
    return q, k, queue


def test_ressl_and_infonce_match_the_published_golden_values():
    q, k, queue = seeded_set()
    assert float(q[0, 0]) == pytest.approx(-0.48991755094822176, abs=1e-15)
    # solo-learn's ReSSL formula (tau_s 0.1, tau_t 0.04) and MoCo's InfoNCE (= SCE lambda 1) at tau 0.1.
    assert float(ReSSLLoss(temp=0.1, temp_m=0.04)(q, k, queue=queue)) == pytest.approx(8.020040126672, abs=1e-11)
    assert float(InfoNCELoss(temp=0.1)(q, k, queue=queue)) == pytest.approx(6.865336888714, abs=1e-11)
    assert float(SCELoss(coeff=1.0, temp=0.1)(q, k, queue=queue)) == pytest.approx(6.865336888714, abs=1e-11)


# ---------------------------------------------------------------- models
class Trunk(nn.Module):
    """Test-only trunk: Conv3d + BN3d + ReLU + pool -> (B, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.num_features = 8
        self.net = nn.Sequential(nn.Conv3d(3, 8, (1, 3, 3), padding=(0, 1, 1), bias=False), nn.BatchNorm3d(8),
                                 nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def parts(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return dict(trunk=Trunk(), projector=MLPHead(input_dim=8, hidden_dims=[16], output_dim=8, num_layers=2,
                                                 norm_layer="bn_1D", bias=False),
                queue={"size": 12, "feature_dim": 8}, sym=True)


def views(seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(4, 3, 2, 8, 8, generator=g) for _ in range(2)]


def test_moco_and_sce_with_coeff_1_give_the_same_loss_and_gradients():
    moco, sce_ = MoCoModel(temp=0.1, **parts()), SCEModel(coeff=1.0, temp=0.1, **parts())
    sce_.load_state_dict(moco.state_dict())
    assert set(moco.state_dict()) == set(sce_.state_dict())
    batch = views()
    losses, grads = [], []
    for model in (moco, sce_):
        loss, _, keys = model.step_loss(batch)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.learnable_params]))
        assert keys.shape == (8, 8)  # both views' keys go to the queue
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)
    assert losses[0] > 0.1


@pytest.mark.parametrize(("cls", "change", "message"), [
    (MoCoModel, {"queue": None}, "moco: needs a queue; set model.queue: {size: K, feature_dim: D}"),
    (ReSSLModel, {"queue": None}, "ressl: needs a queue; set model.queue: {size: K, feature_dim: D}"),
    (BYOLModel, {}, "byol: needs a predictor (without one BYOL collapses); set model.predictor"),
    (SimCLRModel, {}, "simclr: uses no queue; set model.queue: null"),
    (SimCLRModel, {"queue": None, "shuffle_bn": {"enabled": True}},
     "simclr: has no target branch to shuffle; set shuffle_bn.enabled: false"),
])
def test_each_method_refuses_what_it_cannot_use_in_one_line(cls, change, message):
    with pytest.raises(ValueError) as info:
        cls(**{**parts(), **change})
    assert str(info.value) == message


def test_simclr_has_no_target_and_byol_no_queue():
    simclr = SimCLRModel(**{**parts(), "queue": None})
    assert simclr.momentum_trunk is None and simclr.momentum_projector is None
    assert not any(k.startswith("momentum_") for k in simclr.state_dict())
    loss, first, keys = simclr.step_loss(views())
    assert keys is None and first["q"].shape == (4, 8)
    loss.backward()  # both views carry gradients
    assert simclr.trunk.net[0].weight.grad.abs().sum() > 0
    byol = BYOLModel(**{**parts(), "queue": None, "predictor": MLPHead(input_dim=8, hidden_dims=[16], output_dim=8,
                                                                       num_layers=2, norm_layer="bn_1D")})
    assert byol.queue is None and 0.0 <= float(byol.step_loss(views())[0].detach()) <= 4.0


def _gather_worker(rank: int, port: int, a: torch.Tensor, b: torch.Tensor, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    mine = [x[4 * rank:4 * (rank + 1)].clone().requires_grad_(True) for x in (a, b)]
    NTXentLoss(temp=0.2)(*mine).backward()
    out[rank] = torch.cat([m.grad for m in mine])
    dist.destroy_process_group()


@pytest.mark.ddp
@pytest.mark.timeout(120)
def test_ntxent_gradients_across_ranks_equal_the_whole_batch_gradients():
    """Each rank's loss reaches the other rank's embeddings: after DDP's mean over 2 ranks,
    the gradients are those of NT-Xent over the whole batch on one process."""
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.start_processes(_gather_worker, args=(port, a, b, out), nprocs=2, start_method="fork")
    whole = [x.clone().requires_grad_(True) for x in (a, b)]
    NTXentLoss(temp=0.2)(*whole).backward()
    for rank in range(2):
        expected = torch.cat([w.grad[4 * rank:4 * (rank + 1)] for w in whole])
        torch.testing.assert_close(out[rank] / 2, expected, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- the demos, reduced, on 2 DDP processes
def nt_xent(a: np.ndarray, b: np.ndarray, rows: range, temp: float) -> float:
    """NT-Xent of the anchors ``rows`` (of a and of b) against the whole batch, written out."""
    emb = np.concatenate([a, b]) / np.linalg.norm(np.concatenate([a, b]), axis=1, keepdims=True)
    n, losses = a.shape[0], []
    for i in [*rows, *(r + n for r in rows)]:
        sims = emb @ emb[i] / temp
        pos = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        losses.append(-sims[pos] + math.log(sum(math.exp(sims[j]) for j in others)))
    return float(np.mean(losses))


@pytest.mark.ddp
@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", METHODS)
def test_demo_config_trains_on_two_ddp_processes(method, cache, tmp_path):
    tiny = [o for o in TINY if method in ("moco", "ressl") or not o.startswith("model.queue.")]
    proc = sce("pretrain", f"demo_{method}", *tiny, "trainer.devices=2", "trainer.strategy=ddp",
               "trainer.max_epochs=1", f"dir.root={tmp_path}", "--code",
               os.path.join(os.path.dirname(__file__), "data", "method_probe.py"),
               env={"SCE_TEST_PROBE": str(tmp_path / "probe"), "SCE_CACHE_DIR": str(cache)})
    out, _ = proc.communicate(timeout=280)
    assert proc.returncode == 0, out[-3000:]
    assert f"sce: demo_{method} | run {tmp_path}/demo_{method} | 2 x cpu" in out
    assert "kNN top-1 (held-out synthetic videos): learned " in out
    ranks = [json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the online branches equal
    if method in ("moco", "ressl"):  # both views' keys of both ranks, in rank order, on both ranks
        k = [np.array(r["local_keys"]) for r in ranks]
        gathered = np.concatenate([k[0][0], k[1][0], k[0][1], k[1][1]])
        assert gathered.shape == (16, 64)
        for rank in ranks:
            np.testing.assert_allclose(rank["enqueued"], gathered, atol=1e-6)
            np.testing.assert_allclose(rank["queue_after"], gathered, atol=1e-6)
    else:
        assert "enqueued" not in ranks[0]
    if method == "simclr":  # each rank's loss uses the other rank's clips as negatives
        a = np.concatenate([r["ntxent"]["a"] for r in ranks])
        b = np.concatenate([r["ntxent"]["b"] for r in ranks])
        temp = ranks[0]["ntxent"]["temp"]
        for rank, r in enumerate(ranks):
            assert r["ntxent"]["loss"] == pytest.approx(nt_xent(a, b, range(4 * rank, 4 * rank + 4), temp), abs=1e-5)
            local = nt_xent(np.array(r["ntxent"]["a"]), np.array(r["ntxent"]["b"]), range(4), temp)
            assert abs(r["ntxent"]["loss"] - local) > 1e-3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ressl_demo_learns_relations_instead_of_collapsing(cache, tmp_path):
    """The first 350 steps of the real `sce pretrain demo_ressl` (schedules untouched): the loss
    leaves ln(queue size). With the demo's crops (area 0.36 to 1) the views were too different for
    ReSSL's relational target and every key collapsed onto one vector: the loss sat at ln 1024 =
    6.931 (6.930 over steps 300 to 349); with demo_ressl's crops it is 6.28 there."""
    proc = sce("pretrain", "demo_ressl", f"dir.root={tmp_path}", "callbacks.knn_monitor=null",
               "callbacks.knn_report=null", "trainer.enable_progress_bar=false", "--code",
               os.path.join(os.path.dirname(__file__), "data", "stop_after_steps.py"),
               env={"SCE_TEST_STOP_AFTER": "350", "SCE_CACHE_DIR": str(cache)})
    out, _ = proc.communicate(timeout=280)
    assert proc.returncode == 0, out[-3000:]
    with open(tmp_path / "demo_ressl" / "logs" / "metrics.csv", newline="") as f:
        losses = [float(r["pretrain/loss_step"]) for r in csv.DictReader(f)
                  if r.get("pretrain/loss_step") and 300 <= int(r["step"]) < 350]
    assert len(losses) == 10
    assert sum(losses) / len(losses) < math.log(1024) - 0.3, losses


# ---------------------------------------------------------------- configs, sce info, checkpoints
RECIPE_VALUES = {
    "moco": {"temp": 0.1, "sym": True, "shuffle_bn": {"enabled": True},
             "schedules": {"momentum": {"initial": 0.994, "kind": "constant"}}},
    "ressl": {"temp": 0.1, "temp_m": 0.04, "sym": True,
              "schedules": {"momentum": {"initial": 0.99, "kind": "cosine"}}},
    "byol": {"queue": None, "sym": True, "schedules": {"momentum": {"initial": 0.996, "kind": "cosine"}}},
    "simclr": {"temp": 0.1, "queue": None},
}


@pytest.mark.parametrize("method", METHODS)
def test_recipe_is_the_sce_recipe_with_the_model_swapped(method):
    from omegaconf import OmegaConf

    import sce_core
    from sce_core.validate import validate_config

    ours = sce_core.load_config(f"pretrain_r3d18_{method}_kinetics200", ["dir.data=/data/k200"])
    assert validate_config(ours, hooks=False) == []
    ours = OmegaConf.to_container(ours)
    base = OmegaConf.to_container(sce_core.load_config("pretrain_r3d18_sce_kinetics200", ["dir.data=/data/k200"]))
    assert {k: v for k, v in ours.items() if k not in ("model", "dir")} == {
        k: v for k, v in base.items() if k not in ("model", "dir")}
    model = ours["model"]
    assert model["_name_"] == method and "_keep_" not in model and "coeff" not in model
    for key in ("trunk", "projector", "optimizer", "train_transform", "val_transform"):
        assert model[key] == base["model"][key], key
    assert (model.get("predictor") == base["model"]["predictor"]) == (method == "byol")
    assert {k: model.get(k) for k in RECIPE_VALUES[method]} == RECIPE_VALUES[method]


#: What a demo changes besides the model, on purpose (each config's comment says why).
DEMO_CHANGES = {"ressl": {("datamodule", "train", "transform", "transform", "scale"): [0.9, 1.0]}}


@pytest.mark.parametrize("method", METHODS)
def test_demo_config_is_the_demo_with_the_model_swapped(method):
    from omegaconf import OmegaConf

    import sce_core

    ours = OmegaConf.to_container(sce_core.load_config(f"demo_{method}"))
    demo = OmegaConf.to_container(sce_core.load_config("demo"))
    for path, value in DEMO_CHANGES.get(method, {}).items():
        *parents, key = path
        ours_node, demo_node = ours, demo
        for name in parents:
            ours_node, demo_node = ours_node[name], demo_node[name]
        assert ours_node[key] == value and demo_node[key] != value, path
        ours_node[key] = demo_node[key]
    assert {k: v for k, v in ours.items() if k not in ("model", "dir")} == {
        k: v for k, v in demo.items() if k not in ("model", "dir")}
    assert ours["dir"]["exp"] == f"demo_{method}" and ours["model"]["_name_"] == method
    for key in ("trunk", "projector", "optimizer", "train_transform"):
        assert ours["model"][key] == demo["model"][key], key
    assert ours["model"].get("schedules", demo["model"]["schedules"]) == demo["model"]["schedules"]


@pytest.mark.parametrize(("method", "says"), [
    ("moco", "coeff: 1`` computes the same loss"), ("ressl", "no positive column"),
    ("byol", "no queue and no negatives"), ("simclr", "no momentum target"),
])
def test_sce_info_says_what_differs_from_sce(method, says):
    from sce_core.info import describe

    text = describe(method, kind="models")
    assert "Differs from SCE" in " ".join(text.split()) and " ".join(says.split()) in " ".join(text.split())
    assert "trunk: trunks component (required)" in text  # the shared parameters, with their docs:
    assert "Shared parameters (trunk, " in text and "``enabled`` (false): shuffle the target batch" in text


def test_the_sce_info_command_prints_a_method():
    proc = sce("info", "simclr")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert out.startswith("model 'simclr'\n") and "Differs from SCE: no momentum target" in out


def test_sce_checkpoint_keys_are_unchanged():
    model = SCEModel(coeff=0.5, **{**parts(), "predictor": MLPHead(input_dim=8, hidden_dims=[16], output_dim=8,
                                                                   num_layers=2, norm_layer="bn_1D")})
    prefixes = {k.split(".")[0] for k in model.state_dict()}
    assert prefixes == {"trunk", "projector", "predictor", "momentum_trunk", "momentum_projector", "queue"}
    assert {k for k in model.state_dict() if k.startswith("queue")} == {"queue.queue", "queue.ptr"}
    ckpt: dict = {}
    model.set_schedule_horizon(3, 2)
    model.on_save_checkpoint(ckpt)
    assert ckpt["sce_schedule"] == {"coeff": 0.5, "temp_m": 0.05, "momentum": 0.999, "steps_per_epoch": 3,
                                    "max_epochs": 2, "total_steps": 6}


def test_methods_and_their_losses_are_registered_like_any_plugin():
    import sce_core

    assert {"sce", "moco", "ressl", "byol", "simclr"} <= set(sce_core.registry("models").names())
    assert {"sce_loss", "infonce_loss", "ressl_loss", "byol_loss", "ntxent_loss"} <= set(
        sce_core.registry("losses").names())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_value_of_a_recipe_names_its_source(method):
    from sce_core.config import find_config

    lines = find_config(f"pretrain_r3d18_{method}_kinetics200").read_text().splitlines()
    model = lines[lines.index("model:") + 1:]
    values = [line for line in model if ":" in line and line.split(":", 1)[1].split("#")[0].strip()
              and not line.strip().startswith(("_name_", "_keep_", "#"))]
    assert values and all(any(tag in line for tag in ("[ez]", "[ptv]", "[sce]")) for line in values), values


def test_readme_comparison_table_names_each_demo_config_and_its_model():
    import re
    from pathlib import Path

    import sce_core

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| (\S+(?: v2)?) \| `(demo\w*)` \| ([\d.]+)% \| ([\d.]+)% \| ([+-][\d.]+) \|$", readme, re.M)
    assert [r[1] for r in rows] == ["demo", *(f"demo_{m}" for m in METHODS)]
    for _, config, learned, random_init, gain in rows:
        assert sce_core.load_config(config).model._name_ in ("sce", *METHODS)
        assert float(gain) == pytest.approx(float(learned) - float(random_init), abs=0.11)  # each printed value is rounded
    assert "[docs/methods.md](docs/methods.md)" in readme


class Recording(nn.Module):
    """A loss component that records its calls: ``(q, k)`` shapes and the queue's."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def forward(self, q, k, queue=None, k_global=None):
        self.calls.append((tuple(q.shape), tuple(k.shape), None if queue is None else tuple(queue.shape)))
        return (q * k.detach()).sum(1).mean()


@pytest.mark.parametrize(("cls", "change", "calls"), [
    (MoCoModel, {}, [((4, 8), (4, 8), (12, 8))] * 2),
    (ReSSLModel, {}, [((4, 8), (4, 8), (12, 8))] * 2),
    (BYOLModel, {"queue": None, "predictor": nn.Linear(8, 8)}, [((4, 8), (4, 8), None)] * 2),
    (SimCLRModel, {"queue": None}, [((4, 8), (4, 8), None)]),  # loss(a, b): one call per view pair
])
def test_a_loss_component_replaces_the_method_loss(cls, change, calls):
    loss = Recording()
    model = cls(**{**parts(), **change, "loss": loss})
    assert model.loss_fn is loss
    model.step_loss(views())
    assert loss.calls == calls


class Pairs(torch.utils.data.Dataset):
    """8 fixed samples, two float views each."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(5)
        self.views = [torch.rand(8, 3, 2, 8, 8, generator=g) for _ in range(2)]

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        return {"input": [v[i] for v in self.views], "label": 0}


def sgd(model, num_steps_per_epoch, global_batch_size):
    return {"optimizer": torch.optim.SGD(model.learnable_params, lr=0.05, momentum=0.9)}


@pytest.mark.parametrize(("cls", "change"), [(MoCoModel, {}), (SimCLRModel, {"queue": None})])
def test_a_method_resumes_exactly_from_the_shared_checkpoint_hooks(cls, change, tmp_path):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(model, ckpt_path=None):
        saver = ModelCheckpoint(dirpath=tmp_path / "ck", filename="{epoch}", save_top_k=-1)
        pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, callbacks=[saver]).fit(
            model, torch.utils.data.DataLoader(Pairs(), batch_size=4), ckpt_path=ckpt_path)

    method = {**change, "optimizer": sgd, "schedules": {"momentum": {"initial": 0.9, "kind": "cosine"}}}
    whole = cls(**{**parts(), **method})
    fit(whole)
    resumed = cls(**{**parts(seed=9), **method})  # other weights and queue until the checkpoint loads
    fit(resumed, ckpt_path=tmp_path / "ck" / "epoch=0.ckpt")
    assert resumed.momentum == whole.momentum == 1.0
    assert whole.state_dict().keys() == resumed.state_dict().keys()
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
