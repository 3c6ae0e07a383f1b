"""Heads: MLPHead (docs/reference.md §3.4), LinearHead (§3.5), video ResNet head (§3.3), video classifier."""

from __future__ import annotations

import math

import pytest
import torch
from sce_builtins.models.heads.linear import LinearHead
from sce_builtins.models.heads.mlp import MLPHead
from sce_builtins.models.heads.video_classification import VideoClassificationHead
from sce_builtins.models.heads.video_resnet import VideoResNetHead
from torch import nn

from sce_core import build

SEED_PROJECTOR = {
    "_name_": "mlp_head",
    "activation_inplace": True,
    "activation_layer": "relu",
    "affine": True,
    "bias": False,
    "dropout": 0.0,
    "dropout_inplace": True,
    "hidden_dims": [1024, 1024],
    "input_dim": 512,
    "norm_layer": "bn_1D",
    "num_layers": 3,
    "last_bias": False,
    "last_norm": True,
    "last_affine": False,
    "output_dim": 256,
}
SEED_PREDICTOR = {
    **SEED_PROJECTOR,
    "hidden_dims": [1024],
    "input_dim": 256,
    "num_layers": 2,
    "last_norm": False,
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def kinds(module: MLPHead) -> list[str]:
    return [type(m).__name__ for m in module.layers]


# ------------------------------------------------------------------------------ MLPHead
def test_seed_projector_structure_and_count():
    head = build("heads", SEED_PROJECTOR)
    assert n_params(head) == 1_839_104
    assert kinds(head) == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear", "BatchNorm1d"]
    linears = [m for m in head.layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 1024), (1024, 1024),
                                                                  (1024, 256)]
    assert all(m.bias is None for m in linears)
    bns = [m for m in head.layers if isinstance(m, nn.BatchNorm1d)]
    assert [m.affine for m in bns] == [True, True, False]
    assert bns[-1].weight is None and bns[-1].bias is None
    assert all(m.inplace for m in head.layers if isinstance(m, nn.ReLU))
    assert head.num_features == 256 and head.num_layers == 3


def test_seed_projector_last_norm_standardises_in_train_mode():
    torch.manual_seed(0)
    head = build("heads", SEED_PROJECTOR).train()
    out = head(torch.randn(64, 512))
    torch.testing.assert_close(out.mean(0), torch.zeros(256), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(256), atol=1e-3, rtol=0)


def test_seed_predictor_structure_and_count():
    head = build("heads", SEED_PREDICTOR)
    assert n_params(head) == 526_336
    assert kinds(head) == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.layers[3].bias is None  # last_bias false
    assert tuple(head(torch.randn(4, 256)).shape) == (4, 256)


def test_mlp_hand_computed_forward():
    head = MLPHead(input_dim=2, hidden_dims=2, output_dim=1, num_layers=2, bias=True)
    with torch.no_grad():
        head.layers[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
        head.layers[0].bias.copy_(torch.tensor([0.5, -4.0]))
        head.layers[2].weight.copy_(torch.tensor([[3.0, -2.0]]))
        head.layers[2].bias.copy_(torch.tensor([1.0]))
    x = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    # Row 1: hidden = relu([1.5, 0.5]) -> 3*1.5 - 2*0.5 + 1 = 4.5.
    # Row 2: hidden = relu([-2.5, -2.5]) = 0 -> 1.
    assert torch.equal(head(x), torch.tensor([[4.5], [1.0]]))


def test_mlp_bias_flags():
    plain = MLPHead(input_dim=4, hidden_dims=3, output_dim=2, num_layers=3, bias=True,
                    last_bias=False)
    linears = [m for m in plain.layers if isinstance(m, nn.Linear)]
    assert [m.bias is not None for m in linears] == [True, True, False]
    normed = MLPHead(input_dim=4, hidden_dims=3, output_dim=2, num_layers=3, bias=True,
                     last_bias=True, norm_layer="bn_1D")
    linears = [m for m in normed.layers if isinstance(m, nn.Linear)]
    # A norm after a Linear removes its bias; the last layer has no norm here, so it keeps it.
    assert [m.bias is not None for m in linears] == [False, False, True]
    last_norm = MLPHead(input_dim=4, hidden_dims=3, output_dim=2, num_layers=2, last_bias=True,
                        norm_layer="bn_1D", last_norm=True, last_affine=True)
    assert last_norm.layers[-2].bias is None
    assert last_norm.layers[-1].affine is True
    no_affine = MLPHead(input_dim=4, hidden_dims=3, output_dim=2, num_layers=2,
                        norm_layer="sync_bn", affine=False)
    assert isinstance(no_affine.layers[1], nn.SyncBatchNorm) and no_affine.layers[1].weight is None
    assert kinds(no_affine) == ["Linear", "SyncBatchNorm", "ReLU", "Linear"]


def test_mlp_dropout_options():
    head = MLPHead(input_dim=4, hidden_dims=[5, 6], output_dim=2, num_layers=3,
                   dropout=[0.1, 0.0, 0.3], dropout_inplace=True)
    assert kinds(head) == ["Dropout", "Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear"]
    drops = [m for m in head.layers if isinstance(m, nn.Dropout)]
    assert [d.p for d in drops] == [0.1, 0.3] and all(d.inplace for d in drops)
    every = MLPHead(input_dim=4, hidden_dims=5, output_dim=2, num_layers=2, dropout=0.25)
    assert kinds(every) == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert not every.layers[0].inplace
    with pytest.raises(ValueError, match="mlp_head: dropout needs 3 value"):
        MLPHead(num_layers=3, dropout=[0.1, 0.2])
    with pytest.raises(ValueError, match="mlp_head: hidden_dims needs 2 value"):
        MLPHead(num_layers=3, hidden_dims=[8])


def test_mlp_activation_options():
    gelu = MLPHead(input_dim=4, hidden_dims=5, output_dim=2, num_layers=3, activation_layer="gelu")
    assert kinds(gelu) == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    relu = MLPHead(input_dim=4, hidden_dims=5, output_dim=2, activation_inplace=False)
    assert relu.layers[1].inplace is False
    soft = MLPHead(input_dim=4, hidden_dims=5, output_dim=2, activation_layer="softmax")
    assert isinstance(soft.layers[1], nn.Softmax) and soft.layers[1].dim == 1
    with pytest.raises(ValueError, match="mlp_head: unknown activation 'tanh'"):
        MLPHead(activation_layer="tanh")
    with pytest.raises(ValueError, match="mlp_head: norm_layer 'bn_2D' is not supported"):
        MLPHead(norm_layer="bn_2D")


def test_mlp_last_init_normal():
    torch.manual_seed(0)
    head = MLPHead(input_dim=1024, hidden_dims=8, output_dim=1024, num_layers=2,
                   last_init_normal=True, init_mean=0.5, init_std=0.02, last_bias=True)
    w = head.layers[-1].weight
    assert abs(w.mean().item() - 0.5) < 1e-3
    assert abs(w.std().item() / 0.02 - 1) < 0.01
    assert torch.all(head.layers[-1].bias == 0)
    keep = MLPHead(input_dim=1024, hidden_dims=8, output_dim=16, num_layers=2,
                   last_init_normal=True, zero_bias=False, last_bias=True)
    assert keep.layers[-1].bias.abs().sum() > 0
    default = MLPHead(input_dim=1024, hidden_dims=8, output_dim=16, num_layers=2)
    assert default.layers[-1].weight.abs().max() <= 1 / math.sqrt(8)


def test_mlp_single_layer_and_layer_ids():
    single = MLPHead(input_dim=6, output_dim=3, num_layers=1, hidden_dims=[])
    assert kinds(single) == ["Linear"] and single.layers[0].bias is not None
    projector = build("heads", SEED_PROJECTOR)
    assert projector.layer_id("layers.0.weight") == 0
    assert projector.layer_id("layers.4.bias") == 1
    assert projector.layer_id("layers.6.weight") == 2
    assert {projector.layer_id(n) for n, _ in projector.named_parameters()} == {0, 1, 2}


# ---------------------------------------------------------------------------- LinearHead
def test_linear_head_probe_instance():
    torch.manual_seed(0)
    probe = build("heads", {"_name_": "linear_head", "input_dim": 512, "output_dim": 200})
    assert n_params(probe) == 102_600
    lin = probe.layers[0]
    assert torch.all(lin.bias == 0)
    assert abs(lin.weight.std().item() / 0.01 - 1) < 0.02
    assert tuple(probe(torch.randn(3, 512)).shape) == (3, 200)


def test_linear_head_options():
    normed = LinearHead(input_dim=8, output_dim=4, norm_layer="bn_1D", dropout=0.2,
                        affine=False)
    assert [type(m).__name__ for m in normed.layers] == ["Dropout", "Linear", "BatchNorm1d"]
    assert normed.layers[1].bias is None and normed.layers[2].weight is None
    no_bias = LinearHead(input_dim=8, output_dim=4, bias=False)
    assert no_bias.layers[0].bias is None
    default_init = LinearHead(input_dim=64, output_dim=32, init_normal=False)
    assert default_init.layers[0].weight.abs().max() <= 1 / 8
    with pytest.raises(ValueError, match="linear_head: norm_layer 'bn_2D' is not supported"):
        LinearHead(norm_layer="bn_2D")
    with pytest.raises(ValueError, match="linear_head: dropout must be in"):
        LinearHead(dropout=1.5)


# ----------------------------------------------------------------------- video ResNet head
def test_video_resnet_head_recipe_is_a_global_average():
    head = build("heads", {"_name_": "video_resnet_head", "activation": None, "dropout_rate": 0.0,
                           "in_features": 512, "num_classes": 0, "output_size": [1, 1, 1],
                           "output_with_global_average": True, "pool": None,
                           "pool_kernel_size": [8, 7, 7]})
    assert n_params(head) == 0 and head.num_features == 512
    assert head.pool is None and head.dropout is None and head.proj is None
    x = torch.randn(2, 512, 3, 2, 2)
    assert torch.equal(head(x), x.mean(dim=(2, 3, 4)))


def test_video_resnet_head_projection_and_pools():
    torch.manual_seed(0)
    head = VideoResNetHead(in_features=64, num_classes=10, pool="adaptive_avg_pool_3d",
                           dropout_rate=0.0)
    assert torch.all(head.proj.bias == 0)
    assert abs(head.proj.weight.std().item() / 0.01 - 1) < 0.1
    x = torch.randn(2, 64, 4, 3, 3)
    expected = x.mean(dim=(2, 3, 4)) @ head.proj.weight.T
    torch.testing.assert_close(head(x), expected, rtol=1e-5, atol=1e-7)
    assert head.num_features == 10

    x = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    avg = VideoResNetHead(in_features=1, num_classes=0, pool="avg_pool_3d", dropout_rate=0.0,
                          pool_kernel_size=(1, 2, 2), output_with_global_average=False)
    assert torch.equal(avg(x), torch.tensor([1.5, 5.5]).reshape(1, 1, 2, 1, 1))
    mx = VideoResNetHead(in_features=1, num_classes=0, pool="max_pool_3d", dropout_rate=0.0,
                         pool_kernel_size=(2, 1, 2), output_with_global_average=False)
    assert torch.equal(mx(x), torch.tensor([5.0, 7.0]).reshape(1, 1, 1, 2, 1))
    amax = VideoResNetHead(in_features=1, num_classes=0, pool="adaptive_max_pool_3d",
                           dropout_rate=0.0)
    assert torch.equal(amax(x), torch.tensor([[7.0]]))


def test_video_resnet_head_activation_dropout_and_errors():
    head = VideoResNetHead(in_features=4, num_classes=3, pool=None, activation="softmax",
                           output_with_global_average=False)
    assert isinstance(head.dropout, nn.Dropout) and head.dropout.p == 0.5  # reference default
    out = head.eval()(torch.randn(2, 4, 2, 3, 3))
    assert tuple(out.shape) == (2, 3, 2, 3, 3)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(2, 2, 3, 3))
    with pytest.raises(ValueError, match="video_resnet_head: unknown pool 'sum'"):
        VideoResNetHead(in_features=4, pool="sum")
    with pytest.raises(ValueError, match="video_resnet_head: expects a"):
        head(torch.randn(2, 4))
    with pytest.raises(ValueError, match="pool_kernel_size needs 3 values"):
        VideoResNetHead(in_features=4, pool_kernel_size=[7, 7])


# -------------------------------------------------------------- video classification head
def test_video_classification_head():
    torch.manual_seed(0)
    head = build("heads", {"_name_": "video_classification_head", "in_features": 8,
                           "num_classes": 3})
    assert head.num_features == 3 and head.dropout is None and torch.all(head.proj.bias == 0)
    x = torch.randn(2, 8, 2, 3, 3)
    w = head.proj.weight
    torch.testing.assert_close(head(x), x.mean(dim=(2, 3, 4)) @ w.T)
    torch.testing.assert_close(head(x.mean(dim=(2, 3, 4))), x.mean(dim=(2, 3, 4)) @ w.T)
    maxed = VideoClassificationHead(in_features=8, num_classes=3, pool="max", dropout_rate=0.5)
    assert maxed.dropout.p == 0.5
    torch.testing.assert_close(maxed.eval()(x), x.amax(dim=(2, 3, 4)) @ maxed.proj.weight.T)
    with pytest.raises(ValueError, match="video_classification_head: in_features and num_classes"):
        VideoClassificationHead(in_features=8, num_classes=0)
