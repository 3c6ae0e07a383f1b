"""Tests of sce-plugin-example, written as a plugin author would with ``sce_core.testing``.

Run after installing the package (``pip install .`` or ``pip install -e .``): the components are
found through the installed entry points, exactly as users will find them.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from sce_plugin_example.callbacks import FitReport, batch_size_of
from sce_plugin_example.hooks import sce_validate_config
from sce_plugin_example.trunks import mid_channels

from sce_core.hooks import collect_callbacks
from sce_core.testing import assert_config_valid, build_from_yaml, check_plugin, smoke_test


def test_every_entry_point_passes_sce_plugin_validate(sce_registry):
    assert check_plugin("sce-plugin-example") == []


def test_components_are_found_by_name(sce_registry):
    for kind, name in [("trunks", "r2plus1d_tiny"), ("clip_samplers", "strided_pair"),
                       ("losses", "byol_cosine_loss")]:
        assert sce_registry(kind).resolve(name).provider == "sce-plugin-example 0.1.0"


# -- trunk ------------------------------------------------------------------------------------
def test_mid_channels_match_a_full_3d_convolution():
    # floor(3*9*3*16 / (9*3 + 3*16)) = floor(1296 / 75) = 17; floor(13824 / 240) = 57
    assert mid_channels(3, 16) == 17
    assert mid_channels(16, 32) == 57


def test_trunk_from_yaml_maps_clips_to_features():
    trunk = build_from_yaml(
        "_name_: r2plus1d_tiny\nwidths: [8, 16]\nspatial_strides: [2, 2]\ntemporal_strides: [1, 2]",
        kind="trunks",
    )
    assert trunk.num_features == 16
    assert trunk.eval()(torch.rand(2, 3, 8, 16, 16)).shape == (2, 16)
    assert smoke_test("trunks", trunk) is None
    # first stage: 1x3x3 conv 3 -> 12 channels (mid_channels(3, 8) = 648 // 51 = 12), 3x1x1 conv 12 -> 8
    spatial, temporal = trunk.stages[0][0], trunk.stages[0][3]
    assert spatial.weight.shape == (12, 3, 1, 3, 3)
    assert temporal.weight.shape == (8, 12, 3, 1, 1)


def test_trunk_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="r2plus1d_tiny: widths, spatial_strides"):
        build_from_yaml("_name_: r2plus1d_tiny\nwidths: [8]", kind="trunks")
    trunk = build_from_yaml("r2plus1d_tiny", kind="trunks")
    with pytest.raises(ValueError, match=r"expected a clip batch \(B, 3, T, H, W\)"):
        trunk(torch.rand(2, 3, 16, 16))


# -- clip sampler --------------------------------------------------------------------------
def windows(sampler, duration, seed=0):
    return [(w.start, w.end, w.clip_index) for w in sampler(Fraction(duration), np.random.default_rng(seed))]


def test_strided_pair_windows():
    sampler = build_from_yaml("_name_: strided_pair\nclip_duration: 1.0\nstride: 1.5",
                              kind="clip_samplers")
    half = Fraction(1, 2)
    # exactly long enough: the only start is 0
    assert windows(sampler, Fraction(5, 2)) == [(0, 1, 0), (3 * half, 5 * half, 1)]
    # too short for the stride: the second clip ends at the video's end
    assert windows(sampler, 2) == [(0, 1, 0), (1, 2, 1)]
    # shorter than a clip: the same window twice
    assert windows(sampler, half) == [(0, 1, 0), (0, 1, 1)]
    for seed in range(20):
        (s0, e0, _), (s1, e1, _) = windows(sampler, 10, seed)
        assert 0 <= s0 <= 10 - 5 * half and e0 - s0 == 1 and s1 - s0 == 3 * half and e1 <= 10
    assert windows(sampler, 10, 7) == windows(sampler, 10, 7)
    assert sampler.list_input and sampler.group(sampler(Fraction(10), np.random.default_rng(0)))[0][1].clip_index == 1
    assert smoke_test("clip_samplers", sampler) is None


# -- loss -------------------------------------------------------------------------------------
def test_byol_cosine_loss_known_values():
    loss = build_from_yaml("byol_cosine_loss", kind="losses")
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    k = torch.tensor([[3.0, 0.0], [1.0, 0.0]], requires_grad=True)
    value = loss(q, k, queue=torch.zeros(5, 2))  # rows: 2 - 2*1 = 0 and 2 - 2*0 = 2
    assert value.item() == pytest.approx(1.0)
    value.backward()
    assert k.grad is None and q.grad is not None  # stop-gradient on the target
    assert loss(q, -k).item() == pytest.approx(3.0)  # rows: 4 and 2
    half = build_from_yaml("_name_: byol_cosine_loss\nscale: 0.5", kind="losses")
    assert half(q, k).item() == pytest.approx(0.5)
    assert smoke_test("losses", loss) is None


# -- hooks ------------------------------------------------------------------------------------
def test_validation_hook_checks_the_projector_width():
    config = {"model": {"trunk": {"_name_": "sce-plugin-example:r2plus1d_tiny", "widths": [8, 24]},
                        "projector": {"_name_": "mlp_head", "input_dim": 128}}}
    (issue,) = sce_validate_config(config)
    assert issue.path == "model.projector.input_dim"
    assert "set model.projector.input_dim=24" in issue.message
    config["model"]["projector"]["input_dim"] = 24
    assert sce_validate_config(config) == []
    assert sce_validate_config({"model": {"trunk": "small_3d_cnn", "projector": {"input_dim": 1}}}) == []


def test_callbacks_hook_adds_a_fit_report(sce_registry):
    found = collect_callbacks({})  # through the installed `sce.hooks` entry point
    assert [type(c) for c in found].count(FitReport) == 1
    report = FitReport()
    report.steps, report.samples = 6, 48
    assert report.summary(2.0) == "sce-plugin-example: 6 training steps, 48 samples in 2.0 s (24.0 samples/s)"
    assert batch_size_of({"input": [torch.zeros(8, 3, 2, 4, 4)] * 2, "label": torch.zeros(8)}) == 8


def test_shipped_config_is_valid():
    assert_config_valid("example_r2plus1d_demo")
