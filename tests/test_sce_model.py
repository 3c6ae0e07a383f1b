"""SCE LightningModule: training, EMA, queue, schedules, shuffle-BN, transforms, checkpoints."""

from __future__ import annotations

import copy
import math

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from sce_builtins.losses.sce import SCELoss
from sce_builtins.models.heads.mlp import MLPHead
from sce_builtins.models.sce import SCEModel
from sce_builtins.models.shuffle_bn import (
    SplitBatchNorm1d,
    SplitBatchNorm3d,
    convert_to_split_batchnorm,
    set_num_simulated_devices,
    shuffled_forward,
)
from seed_mapping import grouped_model
from torch import nn
from torch.utils.data import DataLoader, Dataset

torch.set_num_threads(1)

B, D = 4, 8


class TinyTrunk(nn.Module):
    """Test-only trunk: Conv3d + BN3d + ReLU + global pool -> (B, 8)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.num_features = width
        self.net = nn.Sequential(
            nn.Conv3d(3, width, (1, 3, 3), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def heads() -> tuple[MLPHead, MLPHead]:
    proj = MLPHead(input_dim=8, hidden_dims=[16], output_dim=D, num_layers=2, norm_layer="bn_1D",
                   bias=False, last_bias=False, last_norm=True, last_affine=False)
    pred = MLPHead(input_dim=D, hidden_dims=[16], output_dim=D, num_layers=2, norm_layer="bn_1D",
                   bias=False, last_bias=False)
    return proj, pred


FACTORY_CALLS: list[dict] = []


def SGD(model, num_steps_per_epoch, global_batch_size):  # noqa: N802
    """Stand-in for the optimizer factory node: records its runtime arguments."""
    FACTORY_CALLS.append({"num_steps_per_epoch": num_steps_per_epoch, "global_batch_size": global_batch_size})
    return {"optimizer": torch.optim.SGD(model.learnable_params, lr=0.05, momentum=0.9)}


def make_model(seed: int = 0, **kw) -> SCEModel:
    torch.manual_seed(seed)
    proj, pred = heads()
    args = dict(trunk=TinyTrunk(), projector=proj, predictor=pred, optimizer=SGD,
                queue={"size": 20, "feature_dim": D}, sym=True, temp=0.1, temp_m=0.05, coeff=0.5,
                schedules={"momentum": {"initial": 0.9, "kind": "constant"}})
    args.update(kw)
    return SCEModel(**args)


class Views(Dataset):
    """N fixed samples, two uint8 views (3, 2, 8, 8) per sample: noisy copies of one base."""

    def __init__(self, n: int = 8, seed: int = 0, views: int = 2) -> None:
        g = torch.Generator().manual_seed(seed)
        base = torch.randint(40, 200, (n, 3, 2, 8, 8), generator=g)
        self.views = [
            (base + torch.randint(-30, 31, base.shape, generator=g)).clamp(0, 255).to(torch.uint8)
            for _ in range(views)
        ]

    def __len__(self) -> int:
        return self.views[0].shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"input": [v[i] for v in self.views], "label": i % 2, "idx": i}


def loader(n: int = 8, **kw) -> DataLoader:
    return DataLoader(Views(n, **kw), batch_size=B, shuffle=False, drop_last=True)


def trainer(tmp_path, **kw) -> pl.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                num_sanity_val_steps=0)
    args.update(kw)
    return pl.Trainer(**args)


class Recorder(Callback):
    """Records losses, schedule values, expected keys and EMA checks at every step."""

    def __init__(self) -> None:
        self.losses, self.momenta, self.keys, self.ema_errors, self.coeffs = [], [], [], [], []

    def on_train_batch_start(self, trainer, model, batch, batch_idx):
        target_t = copy.deepcopy(model.momentum_trunk)
        target_p = copy.deepcopy(model.momentum_projector)
        with torch.no_grad():
            self.keys.append([F.normalize(target_p(target_t(v)), dim=1) for v in batch["input"]])
        self._old = [p.detach().clone() for p in model._ema_parameters()[0]]

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        # The model's own on_train_batch_start runs after the callbacks': read values here.
        self.losses.append(float(outputs["loss"]))
        self.momenta.append(model.momentum)
        self.coeffs.append(model.coeff)
        m = model.momentum
        targets, onlines = model._ema_parameters()
        self.ema_errors.append(max(
            float((t - (m * t_old + (1 - m) * o.detach())).abs().max())
            for t, t_old, o in zip(targets, self._old, onlines)
        ))


def test_short_training_run_loss_decreases(tmp_path):
    model = make_model()
    rec = Recorder()
    trainer(tmp_path, max_epochs=15, callbacks=[rec]).fit(model, loader(8))
    assert len(rec.losses) == 30  # 2 steps per epoch x 15 epochs
    first, last = sum(rec.losses[:4]) / 4, sum(rec.losses[-4:]) / 4
    assert all(math.isfinite(v) for v in rec.losses)
    assert last < first - 0.1, (first, last)


def test_queue_receives_all_view_keys_in_order_and_wraps(tmp_path):
    model = make_model()
    initial = model.queue.queue.clone()
    rec = Recorder()
    trainer(tmp_path, max_steps=3, max_epochs=3, callbacks=[rec]).fit(model, loader(8))
    # Every step enqueues [z_view0 (B rows); z_view1 (B rows)] = 8 keys into K=20 rows.
    expected = initial.clone()
    ptr = 0
    for z0, z1 in rec.keys:
        for row in torch.cat([z0, z1]):
            expected[ptr] = row
            ptr = (ptr + 1) % 20
    assert ptr == 4 and int(model.queue.ptr) == 4
    torch.testing.assert_close(model.queue.queue, expected, rtol=0, atol=1e-6)
    # Step 3 wrapped around onto rows 0..3; rows 4..7 still hold step 1's view-1 keys.
    torch.testing.assert_close(model.queue.queue[4:8], rec.keys[0][1], rtol=0, atol=1e-6)


def test_ema_after_each_step_with_cosine_momentum(tmp_path):
    model = make_model(schedules={"momentum": {"initial": 0.9, "kind": "cosine"}})
    rec = Recorder()
    trainer(tmp_path, max_epochs=2, callbacks=[rec]).fit(model, loader(8))
    # S = 2 steps per epoch, E = 2: m(t) = 1 - 0.1 * (1 + cos(pi t / 3)) / 2.
    expected = [1 - 0.1 * (1 + math.cos(math.pi * t / 3)) / 2 for t in range(4)]
    assert rec.momenta == pytest.approx(expected, abs=1e-12)
    assert rec.momenta[0] == pytest.approx(0.9) and rec.momenta[-1] == pytest.approx(1.0)
    assert max(rec.ema_errors) < 1e-6
    assert model.steps_per_epoch == 2 and model.total_steps == 4
    assert FACTORY_CALLS[-1] == {"num_steps_per_epoch": 2, "global_batch_size": B}


def test_target_starts_as_copy_and_is_frozen():
    model = make_model()
    for (n, t), (_, o) in zip(model.momentum_trunk.state_dict().items(), model.trunk.state_dict().items()):
        assert torch.equal(t, o), n
    assert not any(p.requires_grad for p in model.momentum_trunk.parameters())
    assert not any(p.requires_grad for p in model.momentum_projector.parameters())
    learn = {id(p) for p in model.learnable_params}
    assert all(id(p) not in learn for p in model.momentum_trunk.parameters())
    assert len(learn) == len(list(model.trunk.parameters())) + len(list(model.projector.parameters())) + len(
        list(model.predictor.parameters()))


def _manual_step(model: SCEModel, views: list[torch.Tensor]) -> torch.Tensor:
    model.set_schedule_horizon(1, 1)
    return model.training_step({"input": views}, 0)["loss"]


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_sym_pairing_with_local_crops_matches_spec_average():
    model = make_model(crops={"num_global": 2, "num_local": 2}, queue={"size": 16, "feature_dim": D})
    torch.manual_seed(1)
    views = [torch.rand(B, 3, 2, 8, 8), torch.rand(B, 3, 2, 8, 8),
             torch.rand(B, 3, 2, 4, 4), torch.rand(B, 3, 2, 4, 4)]
    ref = copy.deepcopy(model)
    loss = _manual_step(model, views)
    sce = SCELoss(coeff=0.5, temp=0.1, temp_m=0.05)
    queue = ref.queue.queue
    z = [ref.momentum_shared_step(v)["z"] for v in views[:2]]
    q = [ref.shared_step(v)["q"] for v in views]
    pairs = [(i, j) for i in range(2) for j in range(4) if j != i]
    expected = sum(sce(q[j], z[i], queue) for i, j in pairs) / 6
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # Keys wait for the optimizer step: [all-gathered z_0; z_1] (2B rows), then enqueued.
    assert len(model._pending_keys) == 1 and model._pending_keys[0].shape == (2 * B, D)
    model.after_optimizer_step()
    torch.testing.assert_close(model.queue.queue[: 2 * B], torch.cat(z), rtol=0, atol=1e-6)
    assert int(model.queue.ptr) == 2 * B


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_asymmetric_mode_uses_view0_as_target_only():
    model = make_model(sym=False, crops={"num_global": 2})
    torch.manual_seed(2)
    views = [torch.rand(B, 3, 2, 8, 8), torch.rand(B, 3, 2, 8, 8)]
    ref = copy.deepcopy(model)
    loss = _manual_step(model, views)
    sce = SCELoss(coeff=0.5, temp=0.1, temp_m=0.05)
    expected = sce(ref.shared_step(views[1])["q"], ref.momentum_shared_step(views[0])["z"], ref.queue.queue)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert model._pending_keys[0].shape == (B, D)


def test_mutual_pass_same_as_separate_in_eval_and_joint_bn_in_train():
    model = make_model(crops={"mutual_pass": True, "num_local": 1})
    sep = make_model(crops={"mutual_pass": False, "num_local": 1})
    sep.load_state_dict(model.state_dict())
    torch.manual_seed(3)
    views = [torch.rand(B, 3, 2, 8, 8), torch.rand(B, 3, 2, 8, 8), torch.rand(B, 3, 2, 4, 4)]
    model.eval(), sep.eval()
    with torch.no_grad():
        for a, b in zip(model.multi_crop_shared_step(views), sep.multi_crop_shared_step(views)):
            for k in ("h", "z", "q"):
                torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
        model.train()
        joint = model.multi_crop_momentum_shared_step(views[:2])
        cat = F.normalize(model._target_raw(torch.cat(views[:2]))["z"], dim=1)
    torch.testing.assert_close(torch.cat([joint[0]["z"], joint[1]["z"]]), cat, rtol=1e-5, atol=1e-6)


def test_schedule_values_follow_spec_1_8():
    model = make_model(coeff=0.5, temp_m=0.05, schedules={
        "coeff": {"warmup_epochs": 1, "warmup_start": 1.0, "warmup_kind": "linear",
                  "kind": "cosine", "final": 0.0},
        "temp_m": {"warmup_epochs": 2, "warmup_start": 0.2, "warmup_kind": "cosine"},
        "momentum": {"initial": 0.99, "kind": "cosine"}})
    model.set_schedule_horizon(steps_per_epoch=10, max_epochs=4)
    v = model.schedule_values(0, 0)
    assert v["coeff"] == pytest.approx(1.0) and v["temp_m"] == pytest.approx(0.2)
    assert v["momentum"] == pytest.approx(0.99)
    # coeff warm-up: 1.0 + 5 * (0.5 - 1.0) / 9 at step 5 (M = 1*10 - 1).
    assert model.schedule_values(5, 0)["coeff"] == pytest.approx(1.0 - 2.5 / 9)
    assert model.schedule_values(9, 0)["coeff"] == pytest.approx(0.5)
    # main cosine schedule after the warm-up: s - 10 over M = 3*10 - 1.
    c = 0.5 * (1 + math.cos(math.pi + math.pi * 14 / 29))
    assert model.schedule_values(24, 2)["coeff"] == pytest.approx(0.5 - c * 0.5)
    assert model.schedule_values(39, 3)["coeff"] == pytest.approx(0.0, abs=1e-12)
    # temp_m cosine warm-up over M = 2*10 - 1, then constant.
    ct = 0.5 * (1 + math.cos(math.pi + math.pi * 7 / 19))
    assert model.schedule_values(7, 0)["temp_m"] == pytest.approx(0.2 + ct * (0.05 - 0.2))
    assert model.schedule_values(25, 2)["temp_m"] == pytest.approx(0.05)
    # momentum: 1 - 0.01 * (1 + cos(pi t / 39)) / 2.
    assert model.schedule_values(13, 1)["momentum"] == pytest.approx(1 - 0.01 * (1 + math.cos(math.pi / 3)) / 2)
    assert model.schedule_values(39, 3)["momentum"] == pytest.approx(1.0)


def test_constant_coeff_without_schedules():
    model = make_model(coeff=0.125)
    model.set_schedule_horizon(5, 3)
    assert model.schedule_values(7, 1) == {"coeff": 0.125, "temp_m": 0.05, "momentum": 0.9}


def test_after_batch_transfer_applies_train_transform_and_converts_uint8():
    calls = []

    def flip_views(views):
        calls.append(len(views))
        return [torch.flip(v, dims=[-1]) for v in views]

    model = make_model(train_transform=flip_views)
    x = torch.arange(2 * 3 * 2 * 2 * 2, dtype=torch.uint8).reshape(2, 3, 2, 2, 2)
    out = model.on_after_batch_transfer({"input": [x, x.clone()], "label": torch.zeros(2)}, 0)
    assert calls == [2]
    assert out["input"][0].dtype == torch.float32
    torch.testing.assert_close(out["input"][0], torch.flip(x, dims=[-1]).float() / 255)
    model.eval()  # no trainer: eval mode uses val_transform (None) -> only the conversion
    out = model.on_after_batch_transfer({"input": x}, 0)
    torch.testing.assert_close(out["input"], x.float() / 255)
    assert calls == [2]


def test_forward_returns_trunk_features():
    model = make_model()
    model.eval()
    x = torch.rand(3, 3, 2, 8, 8)
    assert model(x).shape == (3, model.num_features) == (3, 8)
    torch.testing.assert_close(model(x), model.trunk(x))


@pytest.mark.parametrize(
    "kw",
    [dict(crops={"num_splits": 2}), dict(predictor=nn.Identity(), projector=None), dict(queue={"size": 8}),
     dict(schedules={"momentum": {"kind": "linear"}}), dict(crops={"num_global": 1, "num_local": 0}),
     dict(shuffle_bn={"enabled": True, "simulate_n_devices": 0}), dict(shuffle_bn={"num_devices": 0}),
     dict(schedules={"coeff": {"warmup_kind": "step"}}), dict(schedules={"momentum": {"initail": 0.9}}),
     dict(crops={"num_globals": 2})],
)
def test_bad_arguments_raise_value_error(kw):
    with pytest.raises(ValueError, match="^sce: "):
        make_model(**kw)


def test_checkpoint_resume_continues_exactly(tmp_path):
    model = make_model(schedules={"momentum": {"initial": 0.9, "kind": "cosine"}})
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    rec_a = Recorder()
    trainer(tmp_path, max_epochs=2, callbacks=[rec_a, ckpt], enable_checkpointing=True).fit(model, loader(8))
    state = torch.load(tmp_path / "ck" / "epoch=0.ckpt", weights_only=True)
    assert {"queue.queue", "queue.ptr", "momentum_trunk.net.0.weight"} <= set(state["state_dict"])
    assert state["sce_schedule"]["momentum"] == pytest.approx(rec_a.momenta[1])

    fresh = make_model(seed=123, schedules={"momentum": {"initial": 0.9, "kind": "cosine"}})
    assert not torch.equal(fresh.queue.queue, model.queue.queue)
    rec_b = Recorder()
    trainer(tmp_path, max_epochs=2, callbacks=[rec_b]).fit(fresh, loader(8), ckpt_path=tmp_path / "ck" / "epoch=0.ckpt")
    assert rec_b.losses == rec_a.losses[2:]
    assert rec_b.momenta == rec_a.momenta[2:]
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name


# ---------------------------------------------------------------- shuffle-BN / simulated devices
@pytest.mark.parametrize(
    "bn_cls,shape",
    [(nn.BatchNorm1d, (12, 5)), (nn.BatchNorm1d, (12, 5, 3)), (nn.BatchNorm2d, (12, 5, 3, 2)),
     (nn.BatchNorm3d, (12, 5, 2, 3, 2))],
)
def test_split_batchnorm_equals_separate_bn_per_chunk(bn_cls, shape):
    torch.manual_seed(0)
    bn = bn_cls(5, momentum=0.3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    copies = [copy.deepcopy(bn) for _ in range(3)]
    split = convert_to_split_batchnorm(copy.deepcopy(bn), 3)
    assert split.num_splits == 3
    x = torch.randn(*shape) * 2 + 1
    y = split(x)
    expected = torch.cat([c(chunk) for c, chunk in zip(copies, x.chunk(3))])
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(split.running_mean, torch.stack([c.running_mean for c in copies]).mean(0))
    torch.testing.assert_close(split.running_var, torch.stack([c.running_var for c in copies]).mean(0))
    assert int(split.num_batches_tracked) == 1
    split.eval(), bn.eval()
    bn.load_state_dict(split.state_dict())
    torch.testing.assert_close(split(x), bn(x))


def test_convert_to_split_batchnorm_shares_parameters_and_keys():
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Flatten(), nn.BatchNorm1d(4 * 8))
    keys = list(model.state_dict())
    weight = model[1].weight
    convert_to_split_batchnorm(model, 2)
    assert isinstance(model[1], SplitBatchNorm3d) and isinstance(model[3], SplitBatchNorm1d)
    assert model[1].weight is weight and list(model.state_dict()) == keys
    assert set_num_simulated_devices(model, 4) == 2 and model[3].num_splits == 4
    with pytest.raises(ValueError, match="simulate_n_devices"):
        model.train()(torch.randn(6, 3, 2, 2, 2))


def test_shuffled_forward_restores_order():
    x = torch.arange(10.0).view(10, 1)
    out = shuffled_forward(lambda t: {"h": t * 2, "z": t + 1}, x)
    torch.testing.assert_close(out["h"], x * 2)
    torch.testing.assert_close(out["z"], x + 1)


def test_model_shuffle_bn_simulates_devices_in_target_branch():
    model = make_model(shuffle_bn={"enabled": True, "simulate_n_devices": 2, "num_devices": 1})
    bns = [m for m in model.momentum_trunk.modules() if isinstance(m, SplitBatchNorm3d)]
    assert bns and all(m.num_splits == 2 for m in bns)
    assert all(type(m) is nn.BatchNorm3d for m in model.trunk.modules() if isinstance(m, nn.BatchNorm3d))
    # With one simulated device, BN is permutation invariant: shuffle changes nothing.
    one = make_model(shuffle_bn={"enabled": True, "simulate_n_devices": 1, "num_devices": 1})
    plain = make_model(shuffle_bn={"enabled": False})
    x = torch.rand(B, 3, 2, 8, 8)
    torch.testing.assert_close(one.momentum_shared_step(x)["z"], plain.momentum_shared_step(x)["z"],
                               rtol=1e-5, atol=1e-6)
    # Two simulated devices: equal to running each half of the (shuffled) batch separately.
    torch.manual_seed(5)
    out = model.momentum_shared_step(x)
    torch.manual_seed(5)
    perm = torch.randperm(B)
    ref_t, ref_p = copy.deepcopy(plain.momentum_trunk), copy.deepcopy(plain.momentum_projector)
    halves = [F.normalize(ref_p(ref_t(x[perm][i * 2:(i + 1) * 2])), dim=1) for i in range(2)]
    torch.testing.assert_close(out["z"], torch.cat(halves)[torch.argsort(perm)], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the seed's model section
# As the seed (eztorch) wrote it: flat keys, grouped by `grouped_model` before building.
SEED_MODEL_YAML = """
_name_: sce
trunk: {_name_: sce_test_tiny_trunk}
projector: &seed_head
  _name_: mlp_head
  activation_inplace: true
  activation_layer: relu
  affine: true
  bias: false
  dropout: 0.0
  dropout_inplace: true
  hidden_dims: [16, 16]
  input_dim: 8
  norm_layer: bn_1D
  num_layers: 3
  last_bias: false
  last_norm: true
  last_affine: false
  output_dim: 8
predictor:  # the projector's keys but these three
  <<: *seed_head
  hidden_dims: [16]
  num_layers: 2
  last_norm: false
coeff: 0.5
final_scheduler_coeff: 0.0
initial_momentum: 0.99
mutual_pass: false
normalize_outputs: true
num_devices: -1
num_global_crops: 2
num_local_crops: 0
num_splits: 0
num_splits_per_combination: 2
queue: {size: 24, feature_dim: 8}
scheduler_coeff: null
scheduler_momentum: cosine
simulate_n_devices: 8
shuffle_bn: false
start_warmup_coeff: 1.0
sym: true
temp: 0.1
temp_m: 0.05
use_keys: false
warmup_epoch_coeff: 0
warmup_epoch_temp_m: 0
warmup_scheduler_coeff: linear
warmup_scheduler_temp_m: cosine
optimizer:
  _name_: optimizer_factory
  exclude_wd_norm: false
  exclude_wd_bias: false
  name: lars
  params: {momentum: 0.9, trust_coefficient: 0.001, weight_decay: 1.0e-06}
  batch_size: 512
  initial_lr: 2.4
  layer_decay_lr: null
  scaler: linear
  scheduler:
    _name_: scheduler_factory
    name: linear_warmup_cosine_annealing_lr
    params: {max_epochs: 2, warmup_epochs: 1, warmup_start_lr: 0.0, eta_min: 0.0}
    interval: step
train_transform:
  _name_: apply_transforms_on_list
  transforms:
  - &seed_wrapper
    _name_: batch_video_wrapper
    same_on_frames: true
    video_format: CTHW
    inplace: true
    transforms:
    - {_name_: div_255, inplace: true}
    - {_name_: batch_random_horizontal_flip, p: 0.5, inplace: true}
    - {_name_: normalize, mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225], inplace: true}
  - <<: *seed_wrapper  # the same wrapper with solarize instead of flip
    transforms:
    - {_name_: div_255, inplace: true}
    - {_name_: batch_random_solarize, p: 0.2, threshold: 0.5, inplace: true}
    - {_name_: normalize, mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225], inplace: true}
"""


def test_seed_model_section_builds_and_trains(tmp_path):
    from sce_core import registry
    from sce_core.testing import build_from_yaml, tmp_component

    assert {"sce", "sce_model"} <= set(registry("models").names())
    with tmp_component("trunks", "sce_test_tiny_trunk", TinyTrunk):
        # The seed's flat keys moved into our option groups (tests/seed_mapping.py).
        model = build_from_yaml(yaml.safe_dump(grouped_model(yaml.safe_load(SEED_MODEL_YAML))),
                                kind="models")
    assert isinstance(model, SCEModel) and model.sym and model.queue.size == 24
    rec = Recorder()
    trainer(tmp_path, max_epochs=2, callbacks=[rec]).fit(model, loader(8))
    assert len(rec.losses) == 4 and all(math.isfinite(v) for v in rec.losses)
    # LARS lr = 2.4 * 512 / 256 with a 1-epoch (2-step) linear warm-up from 0: step 0 uses lr 0.
    assert rec.momenta[0] == pytest.approx(0.99) and rec.momenta[-1] == pytest.approx(1.0)
    assert int(model.queue.ptr) == (4 * 2 * B) % 24


def test_strategy_and_callback_nodes_from_the_seed():
    from lightning.pytorch.strategies import DDPStrategy

    from sce_core import build
    from sce_core.testing import build_from_yaml

    strategy = build_from_yaml("{_name_: ddp, find_unused_parameters: false, static_graph: false}",
                               kind="strategies")
    assert isinstance(strategy, DDPStrategy)
    assert strategy._ddp_kwargs["find_unused_parameters"] is False
    assert strategy._ddp_kwargs["static_graph"] is False
    ckpt = build_from_yaml(
        "{_name_: model_checkpoint, dirpath: pretrain_checkpoints, filename: '{epoch}', "
        "save_last: false, save_top_k: -1, mode: min, every_n_epochs: 100}", kind="callbacks")
    assert isinstance(ckpt, ModelCheckpoint) and ckpt.save_top_k == -1 and ckpt._every_n_epochs == 100
    assert build("strategies", "auto") == "auto"


@pytest.mark.filterwarnings("ignore:You are trying to")
def test_loss_is_float32_under_bf16_autocast():
    model = make_model()
    views = [torch.rand(B, 3, 2, 8, 8), torch.rand(B, 3, 2, 8, 8)]
    ref = copy.deepcopy(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = _manual_step(model, views)
        q = model.shared_step(views[1])["q"]
    assert q.dtype == torch.bfloat16 and loss.dtype == torch.float32
    full = _manual_step(ref, views)
    assert abs(float(loss) - float(full)) < 0.05 * abs(float(full))


def test_loss_component_replaces_the_builtin_sce_loss():
    from sce_builtins.losses.infonce import InfoNCELoss

    import sce_core
    from sce_core.testing import isolated_registries, tmp_component

    class TinyTrunk(torch.nn.Module):
        """A test trunk."""

        num_features = 4

        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x):
            return self.fc(x.mean(dim=(2, 3, 4)))

    with isolated_registries(), tmp_component("trunks", "tiny_loss_trunk", TinyTrunk):
        model = sce_core.build("models", {"_name_": "sce", "trunk": "tiny_loss_trunk",
                                          "loss": {"_name_": "infonce_loss", "temp": 0.2}})
        assert isinstance(model.loss_fn, InfoNCELoss) and model.loss_fn.temp == 0.2
        default = sce_core.build("models", {"_name_": "sce", "trunk": "tiny_loss_trunk"})
        assert type(default.loss_fn).__name__ == "SCELoss"


# ---------------------------------------------------------------- option groups
def test_partial_option_groups_keep_the_other_defaults():
    model = make_model(schedules={"coeff": {"kind": "linear"}}, crops={"num_local": 1},
                       shuffle_bn={"simulate_n_devices": 4})
    assert model.schedules == {
        "coeff": {"warmup_epochs": 0, "warmup_start": 1.0, "warmup_kind": "linear", "kind": "linear",
                  "final": 0.0},
        "temp_m": {"warmup_epochs": 0, "warmup_start": 0.05, "warmup_kind": "cosine"},
        "momentum": {"initial": 0.999, "kind": "constant"},
    }
    assert (model.num_global_crops, model.num_local_crops, model.mutual_pass) == (2, 1, False)
    assert (model.shuffle_bn, model.simulate_n_devices, model.num_devices) == (False, 4, -1)
    # The main coeff schedule with no warm-up runs over the whole run: 0.5 -> 0.0 over S*E - 1.
    model.set_schedule_horizon(steps_per_epoch=5, max_epochs=2)
    assert [model.schedule_values(s, s // 5)["coeff"] for s in (0, 3, 9)] == pytest.approx(
        [0.5, 0.5 - 0.5 * 3 / 9, 0.0])


def test_default_option_groups_are_not_shared_between_models():
    from sce_builtins.models.sce_options import DEFAULT_SCHEDULES

    model = make_model()
    model.schedules["coeff"]["final"] = 0.7
    assert DEFAULT_SCHEDULES["coeff"]["final"] == 0.0 and make_model().schedules["coeff"]["final"] == 0.0


@pytest.mark.parametrize(("key", "value", "message"), [
    ("model.schedules.momentum.initail", 0.9,
     "momentum schedule has no key 'initail'; did you mean 'initial'?"),
    ("model.schedules.coeff.warmup_kind", "step", "'warmup_kind' to be 'linear' | 'cosine' | None"),
    ("model.schedules.momentum.initial", 1.5, "'initial' must be in [0, 1], got 1.5"),
    ("model.schedules.temp_m.warmup_start", 0.0, "'warmup_start' must be > 0, got 0.0"),
    ("model.crops.num_globl", 2, "crop options has no key 'num_globl'; did you mean 'num_global'?"),
    ("model.shuffle_bn.simulate_n_devices", 0, "'simulate_n_devices' must be >= 1, got 0"),
    ("model.schedule", {}, "has no parameter 'schedule'; did you mean 'schedules'?"),
])
def test_option_group_mistakes_are_config_problems_with_their_path(key, value, message):
    import sce_core
    from sce_core.validate import validate_config

    cfg = sce_core.load_config("demo", [f"{key}={json_value(value)}"])
    issues = validate_config(cfg)
    assert [i.path for i in issues] == [key]
    assert message in issues[0].message


def json_value(value) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else value


def test_info_lists_every_option_group_key_with_its_default():
    from sce_core.info import describe

    text = describe("sce", kind="models")
    snippet = yaml.safe_load(describe("sce", kind="models", as_yaml=True))
    assert snippet["schedules"] == {
        "coeff": {"warmup_epochs": 0, "warmup_start": 1.0, "warmup_kind": "linear", "kind": None,
                  "final": 0.0},
        "temp_m": {"warmup_epochs": 0, "warmup_start": 0.05, "warmup_kind": "cosine"},
        "momentum": {"initial": 0.999, "kind": "constant"},
    }
    assert snippet["crops"]["num_global"] == 2 and snippet["shuffle_bn"]["enabled"] is False
    assert "``momentum.kind`` (constant)" in text
    assert "  schedules: {coeff, temp_m, momentum} = (defaults in the YAML below)" in text.splitlines()
