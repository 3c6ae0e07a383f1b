"""Trunks: the recipe's R3D-18 (docs/reference.md §3.2), the video head wrapper (§3.1), torchvision wrappers."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
from sce_builtins.models.trunks.resnet3d import ResNet3DBasic
from sce_builtins.models.trunks.video_head import VideoHeadModel
from torch import nn

from sce_core import build

SEED_TRUNK = {
    "_name_": "video_head_model",
    "model": {"_name_": "resnet3d_basic", "head": None, "model_depth": 18},
    "head": {
        "_name_": "video_resnet_head",
        "activation": None,
        "dropout_rate": 0.0,
        "in_features": 512,
        "num_classes": 0,
        "output_size": [1, 1, 1],
        "output_with_global_average": True,
        "pool": None,
        "pool_kernel_size": [8, 7, 7],
    },
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic non-trivial values (zero-init would hide bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05 + (1.0 if p.ndim == 1 else 0.0))
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module


@pytest.fixture(scope="module")
def r3d18() -> ResNet3DBasic:
    torch.manual_seed(0)
    return ResNet3DBasic(model_depth=18)


# --------------------------------------------------------------------------- R3D-18 (docs/reference.md §3.2)
def test_r3d18_parameter_count_and_stages(r3d18):
    assert n_params(r3d18) == 20_023_872
    assert [n_params(b) for b in r3d18.blocks] == [9_536, 147_968, 525_568, 3_869_184, 15_471_616]
    convs = [m for m in r3d18.modules() if isinstance(m, nn.Conv3d)]
    bns = [m for m in r3d18.modules() if isinstance(m, nn.BatchNorm3d)]
    assert len(convs) == 20 and len(bns) == 20
    assert all(c.bias is None for c in convs)
    assert all(b.eps == 1e-5 and b.momentum == 0.1 for b in bns)
    assert r3d18.num_features == 512


@pytest.mark.parametrize(("depth", "count"), [(10, 7_854_912), (34, 39_569_216)])
def test_other_depths_parameter_counts(depth, count):
    # Hand-computed from the block sizes: stage blocks 73,984 | 230,144 + 295,424 |
    # 1,508,864 + 2,360,320 | 6,032,384 + 9,439,232, stem 9,536.
    model = ResNet3DBasic(model_depth=depth)
    assert n_params(model) == count
    depths = {10: [1, 1, 1, 1], 34: [3, 4, 6, 3]}[depth]
    assert [len(stage.res_blocks) for stage in model.blocks[1:]] == depths


def test_r3d18_layers_and_strides(r3d18):
    stem = r3d18.blocks[0]
    assert stem.conv.kernel_size == (1, 7, 7) and stem.conv.stride == (1, 2, 2)
    assert stem.conv.padding == (0, 3, 3)
    assert stem.pool.kernel_size == (1, 3, 3) and stem.pool.stride == (1, 2, 2)
    assert stem.pool.padding == (0, 1, 1)
    for s, stage in enumerate(r3d18.blocks[1:], start=1):
        for b, block in enumerate(stage.res_blocks):
            br = block.branch2
            kt = 1 if s <= 2 else 3
            assert br.conv_a.kernel_size == (kt, 3, 3)
            assert br.conv_a.padding == (kt // 2, 1, 1)
            stride = 2 if (s > 1 and b == 0) else 1
            assert br.conv_a.stride == (1, stride, stride)
            assert br.conv_b.kernel_size == (1, 3, 3) and br.conv_b.stride == (1, 1, 1)
            has_shortcut = s > 1 and b == 0
            assert (block.branch1_conv is not None) == has_shortcut
            if has_shortcut:
                assert block.branch1_conv.kernel_size == (1, 1, 1)
                assert block.branch1_conv.stride == (1, 2, 2)
                assert isinstance(block.branch1_norm, nn.BatchNorm3d)
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        assert tuple(r3d18.eval().forward_features(x).shape) == (1, 512, 8, 2, 2)


def test_r3d18_zero_init_residual_and_kaiming(r3d18):
    final_bns = {id(m.branch2.norm_b) for st in r3d18.blocks[1:] for m in st.res_blocks}
    assert len(final_bns) == 8
    for m in r3d18.modules():
        if isinstance(m, nn.BatchNorm3d):
            expected = 0.0 if id(m) in final_bns else 1.0
            assert torch.all(m.weight == expected)
            assert torch.all(m.bias == 0)
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (C_out * kT * kH * kW)).
    w = r3d18.blocks[4].res_blocks[1].branch2.conv_a.weight  # 512 x 512 x 3 x 3 x 3
    expected_std = math.sqrt(2.0 / (512 * 27))
    assert abs(w.std().item() / expected_std - 1) < 0.01
    assert abs(w.mean().item()) < 0.01 * expected_std * 10


def test_zero_init_makes_identity_blocks(r3d18):
    # With the branch-final BN at 0, an identity-shortcut block returns relu(x) = x for x >= 0.
    stage1 = r3d18.blocks[1].train()
    x = torch.rand(2, 64, 2, 8, 8)
    with torch.no_grad():
        assert torch.equal(stage1(x), x)


def test_r3d18_output_and_input_check(r3d18):
    x = torch.randn(2, 3, 4, 32, 32)
    r3d18.eval()
    with torch.no_grad():
        out = r3d18(x)
        assert tuple(out.shape) == (2, 512)
        torch.testing.assert_close(out, r3d18.forward_features(x).mean(dim=(2, 3, 4)))
    with pytest.raises(ValueError, match="resnet3d_basic: expects a clip batch"):
        r3d18(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="model_depth 50 is not supported"):
        ResNet3DBasic(model_depth=50)


def test_r3d18_layer_ids(r3d18):
    assert r3d18.num_layers == 5
    assert r3d18.layer_id("blocks.0.conv.weight") == 0
    assert r3d18.layer_id("blocks.3.res_blocks.0.branch1_norm.bias") == 3
    assert r3d18.layer_id("blocks.4.res_blocks.1.branch2.norm_b.weight") == 4
    ids = {r3d18.layer_id(n) for n, _ in r3d18.named_parameters()}
    assert ids == {0, 1, 2, 3, 4}


# --------------------------------------------------------------------- seed node (docs/reference.md §3.1/§3.3)
def test_seed_trunk_node_builds_key_for_key():
    trunk = build("trunks", SEED_TRUNK)
    assert isinstance(trunk, VideoHeadModel)
    assert n_params(trunk) == 20_023_872
    assert trunk.num_features == 512 and trunk.num_layers == 5
    keys = set(trunk.state_dict())
    # Reference (pytorchvideo) names under the `model.` prefix: trunk.model.* inside SCE.
    assert "model.blocks.0.conv.weight" in keys
    assert "model.blocks.1.res_blocks.0.branch2.conv_a.weight" in keys
    assert "model.blocks.2.res_blocks.0.branch1_conv.weight" in keys
    assert "model.blocks.4.res_blocks.1.branch2.norm_b.running_var" in keys
    assert all(k.startswith("model.") for k in keys)
    trunk.eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        out = trunk(x)
        assert tuple(out.shape) == (2, 512)
        torch.testing.assert_close(out, trunk.model.forward_features(x).mean(dim=(2, 3, 4)))


def test_video_head_model_deepcopy_is_independent():
    # The SCE target branch is a deep copy of the online trunk.
    import copy

    node = {**SEED_TRUNK, "model": {**SEED_TRUNK["model"], "model_depth": 10}}
    online = randomize_(build("trunks", node)).eval()
    target = copy.deepcopy(online).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(target(x), online(x))
        target.model.blocks[0].conv.weight.add_(1.0)
        assert not torch.equal(target(x), online(x))
    assert online.model.blocks[0].conv.weight.data_ptr() != target.model.blocks[0].conv.weight.data_ptr()


def test_video_head_model_with_linear_eval_head():
    trunk = build(
        "trunks",
        {
            "_name_": "video_head_model",
            "model": {"_name_": "resnet3d_basic", "head": None, "model_depth": 10},
            "head": {"_name_": "video_resnet_head", "in_features": 512, "num_classes": 7,
                     "pool": "adaptive_avg_pool_3d", "dropout_rate": 0.0},
        },
    ).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        out = trunk(x)
        feats = trunk.model(x)
    assert tuple(out.shape) == (2, 7) and trunk.num_features == 7
    torch.testing.assert_close(out, feats @ trunk.head.proj.weight.T + trunk.head.proj.bias)
    assert trunk.num_layers == 6
    assert trunk.layer_id("model.blocks.2.res_blocks.0.branch2.conv_a.weight") == 2
    assert trunk.layer_id("head.proj.weight") == 5


def test_video_head_model_rejects_model_with_head():
    with pytest.raises(ValueError, match="video_head_model: the model node already has a head"):
        build(
            "trunks",
            {
                "_name_": "video_head_model",
                "model": {"_name_": "resnet3d_basic", "model_depth": 10,
                          "head": {"_name_": "video_resnet_head", "in_features": 512}},
                "head": {"_name_": "video_resnet_head", "in_features": 512, "num_classes": 0},
            },
        )


def test_resnet3d_with_head_node():
    trunk = build(
        "trunks",
        {"_name_": "resnet3d_basic", "model_depth": 10,
         "head": {"_name_": "video_classification_head", "in_features": 512, "num_classes": 5}},
    ).eval()
    assert trunk.num_features == 5 and trunk.num_layers == 6
    assert trunk.layer_id("head.proj.weight") == 5
    with torch.no_grad():
        assert tuple(trunk(torch.randn(2, 3, 4, 32, 32)).shape) == (2, 5)


# ----------------------------------------------------------------------- torchvision wrappers
TORCHVISION_TRUNKS = [
    # name, features, parameters (torchvision's count minus its classifier)
    ("tv_r3d_18", 512, 33_166_272),
    ("tv_mc3_18", 512, 11_490_240),
    ("tv_r2plus1d_18", 512, 31_300_125),
    ("tv_s3d", 1024, 7_910_048),
    ("resnet18", 512, 11_176_512),
    ("resnet34", 512, 21_284_672),
    ("resnet50", 2048, 23_508_032),
    ("tv_resnet", 512, 11_176_512),
]


@pytest.mark.parametrize(("name", "dim", "count"), TORCHVISION_TRUNKS)
def test_torchvision_trunks_shapes_and_counts(name, dim, count):
    torch.manual_seed(0)
    trunk = build("trunks", name).eval()
    assert trunk.num_features == dim
    assert n_params(trunk) == count
    with torch.no_grad():
        out = trunk(torch.randn(2, 3, 4, 32, 32))
    assert tuple(out.shape) == (2, dim) and torch.isfinite(out).all()
    ids = [trunk.layer_id(n) for n, _ in trunk.named_parameters()]
    assert min(ids) == 0 and max(ids) == trunk.num_layers - 1


def test_2d_resnet_on_images_and_small_input():
    trunk = build("trunks", {"_name_": "tv_resnet", "arch": "resnet18", "small_input": True}).eval()
    assert trunk.conv1.kernel_size == (3, 3) and trunk.conv1.stride == (1, 1)
    assert isinstance(trunk.maxpool, nn.Identity)
    images = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert tuple(trunk.forward_features(images).shape) == (3, 512, 2, 2)
        out = trunk(images)
        # A clip is processed frame by frame and averaged over time.
        clip = torch.stack([images, images.flip(0)], dim=2)  # (3, 3, 2, 16, 16)
        torch.testing.assert_close(trunk(clip), (out + out.flip(0)) / 2, rtol=1e-5, atol=1e-6)
    assert trunk.layer_id("conv1.weight") == 0 and trunk.layer_id("layer3.0.conv1.weight") == 3
    default = build("trunks", "resnet18")
    assert default.conv1.kernel_size == (7, 7) and isinstance(default.maxpool, nn.MaxPool2d)


def test_s3d_matches_torchvision_for_even_sizes():
    import torchvision

    torch.manual_seed(0)
    ours = build("trunks", "tv_s3d").eval()
    reference = torchvision.models.video.s3d().eval()
    reference.load_state_dict({**ours.state_dict(), **{k: v for k, v in reference.state_dict()
                                                       .items() if k.startswith("classifier")}})
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.forward_features(x), reference.features(x))


def test_torchvision_weights_never_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    with pytest.raises(ValueError, match="tv_r3d_18: weights 'DEFAULT' need a download"):
        build("trunks", {"_name_": "tv_r3d_18", "weights": "DEFAULT"})
    with pytest.raises(ValueError, match="resnet18: unknown weights 'NOPE'"):
        build("trunks", {"_name_": "resnet18", "weights": "NOPE"})


def test_torchvision_weights_from_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    torch.manual_seed(3)
    source = torchvision.models.resnet18()
    (tmp_path / "checkpoints").mkdir()
    planted = tmp_path / "checkpoints" / "planted.pth"
    torch.save(source.state_dict(), planted)
    # the file name carries the SHA-256 prefix (torchvision's convention), checked on every load
    sha = hashlib.sha256(planted.read_bytes()).hexdigest()[:8]
    planted.rename(tmp_path / "checkpoints" / f"resnet18-{sha}.pth")
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    monkeypatch.setattr(weights.value, "url", f"https://download.pytorch.org/models/resnet18-{sha}.pth")
    trunk = build("trunks", {"_name_": "resnet18", "weights": "IMAGENET1K_V1"})
    assert torch.equal(trunk.conv1.weight, source.conv1.weight)
    assert torch.equal(trunk.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)


# ------------------------------------------------------------------------ pretrained argument
def test_pretrained_round_trip_resnet3d(tmp_path):
    torch.manual_seed(1)
    source = randomize_(ResNet3DBasic(model_depth=18)).eval()
    path = tmp_path / "trunk.pt"
    torch.save(source.state_dict(), path)
    loaded = build("trunks", {"_name_": "resnet3d_basic", "pretrained": str(path)}).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = source(x)
        assert torch.equal(loaded(x), expected)
        assert expected.abs().sum() > 0


def test_pretrained_video_head_model_export_loads_into_both(tmp_path):
    torch.manual_seed(2)
    node = {**SEED_TRUNK, "model": {**SEED_TRUNK["model"], "model_depth": 10}}
    source = randomize_(build("trunks", node)).eval()
    path = tmp_path / "export.pt"
    torch.save(source.state_dict(), path)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = source(x)
        same = build("trunks", {**node, "pretrained": str(path)}).eval()
        assert torch.equal(same(x), expected)
        # The `model.` prefix of a parameter-free head wrapper is stripped for the bare trunk.
        bare = build(
            "trunks", {"_name_": "resnet3d_basic", "model_depth": 10, "pretrained": str(path)}
        ).eval()
        assert torch.equal(bare(x), expected)


def test_pretrained_round_trip_torchvision(tmp_path):
    torch.manual_seed(4)
    source = randomize_(build("trunks", "tv_mc3_18")).eval()
    path = tmp_path / "mc3.pt"
    torch.save(source.state_dict(), path)
    loaded = build("trunks", {"_name_": "tv_mc3_18", "pretrained": str(path)}).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_pretrained_errors(tmp_path):
    small = ResNet3DBasic(model_depth=10)
    state = small.state_dict()
    missing = {k: v for k, v in state.items() if not k.startswith("blocks.4.")}
    missing["extra.weight"] = torch.zeros(1)
    torch.save(missing, tmp_path / "bad.pt")
    with pytest.raises(ValueError) as err:
        ResNet3DBasic(model_depth=10, pretrained=str(tmp_path / "bad.pt"))
    text = str(err.value)
    assert "resnet3d_basic" in text and "missing keys [blocks.4.res_blocks.0" in text
    assert "unexpected keys [extra.weight] (1)" in text and "\n" not in text

    with pytest.raises(ValueError, match="does not exist"):
        ResNet3DBasic(model_depth=10, pretrained=str(tmp_path / "nope.pt"))

    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="training checkpoint; extract the trunk with `sce export"):
        ResNet3DBasic(model_depth=10, pretrained=str(tmp_path / "ckpt.pt"))

    torch.save(ResNet3DBasic(model_depth=10, input_channel=1).state_dict(), tmp_path / "c1.pt")
    with pytest.raises(ValueError, match="has wrong shapes"):
        ResNet3DBasic(model_depth=10, pretrained=str(tmp_path / "c1.pt"))


