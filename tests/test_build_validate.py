"""Building nodes and validating whole configs: every problem reported at once."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from toy_components import ToyDecoder, ToySampler, ToyScale, toys

import sce_core
from sce_core.building import NodeFactory
from sce_core.errors import ConfigError
from sce_core.testing import build_from_yaml
from sce_core.validate import validate_config


@pytest.fixture(autouse=True)
def _toys():
    with toys():
        yield


MODEL = {
    "_name_": "toy_model",
    "trunk": {"_name_": "toy_trunk", "depth": 10},
    "head": {"_name_": "toy_head", "input_dim": 8},
    "optimizer": {"_name_": "toy_opt", "lr": 0.5},
    "transforms": [{"_name_": "toy_scale", "factor": 3.0}, "toy_scale"],
}


DATA = {"_name_": "toy_data", "datadir": "/d"}


def test_build_nested_slots_and_factory():
    model = sce_core.build("models", MODEL)
    assert model.trunk.depth == 10 and model.head.input_dim == 8
    assert [t.factor for t in model.transforms] == [3.0, 2.0]
    assert isinstance(model.optimizer, NodeFactory)
    assert model.optimizer(params=[1, 2]) == {"params": [1, 2], "lr": 0.5, "momentum": 0.9}


def test_build_from_yaml_and_bare_name():
    trunk = build_from_yaml("_name_: toy_trunk\nwidth: 3", kind="trunks")
    assert (trunk.depth, trunk.width) == (18, 3)
    assert sce_core.build("trunks", "toy_trunk").width == 8


def test_runtime_argument_passed_by_caller_not_yaml():
    assert sce_core.build("optimizers", "toy_opt", params=["w"])["params"] == ["w"]
    with pytest.raises(ConfigError, match="given by the framework"):
        sce_core.build("optimizers", {"_name_": "toy_opt", "params": []}, params=[])


def test_decoder_name_plus_args_slot():
    data = sce_core.build("datamodules", {"_name_": "toy_data", "datadir": "/d", "decoder": "toy_dec",
                                          "decoder_args": {"fps": 25}})
    assert isinstance(data.decoder, ToyDecoder) and data.decoder.fps == 25
    with pytest.raises(ConfigError, match=r"datamodules\.decoder_args\.fpss|decoder.*fpss"):
        sce_core.build("datamodules", {"_name_": "toy_data", "datadir": "/d", "decoder": "toy_dec",
                                       "decoder_args": {"fpss": 25}})


def test_nested_components_in_plain_mapping_found_by_unique_name():
    data = sce_core.build("datamodules", {
        "_name_": "toy_data", "datadir": "/d",
        "train": {"transform": {"_name_": "toy_scale"}, "clip_sampler": {"_name_": "toy_sampler"},
                  "loader": {"num_workers": 2}}})
    assert isinstance(data.train["transform"], ToyScale)
    assert isinstance(data.train["clip_sampler"], ToySampler)
    assert data.train["loader"] == {"num_workers": 2}


def test_typo_in_name_and_argument_get_suggestions():
    with pytest.raises(ConfigError) as info:
        sce_core.build("models", {**MODEL, "trunk": {"_name_": "toy_trnk"}})
    assert "model" in str(info.value) and "did you mean 'toy_trunk'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        sce_core.build("trunks", {"_name_": "toy_trunk", "dpeth": 3})
    msg = str(info.value)
    assert "trunks.dpeth: trunk 'toy_trunk' has no parameter 'dpeth'; did you mean 'depth'?" in msg
    assert "(parameters: depth, width, norm)" in msg


def test_wrong_kind_hint():
    with pytest.raises(ConfigError, match="'toy_head' is a head, not a trunk"):
        sce_core.build("models", {**MODEL, "trunk": "toy_head"})


def test_three_independent_mistakes_reported_at_once():
    cfg = OmegaConf.create({
        "model": {**MODEL, "trunk": {"_name_": "toy_trunk", "depht": 3},
                  "temp": "hot", "head": {"_name_": "toy_hed", "input_dim": 8}},
        "datamodule": DATA,
        "trainer": {"max_epochs": 1, "gpus": -1},
        "seed": {"seed": "???"},
    })
    issues = validate_config(cfg, hooks=False)
    text = [str(i) for i in issues]
    assert len(issues) == 5, text
    assert any(t.startswith("model.trunk.depht:") and "'depth'" in t for t in text)
    assert any(t.startswith("model.temp:") and "expects 'temp' to be float, got 'hot'" in t for t in text)
    assert any(t.startswith("model.head._name_:") and "did you mean 'toy_head'" in t for t in text)
    assert any(t.startswith("trainer.gpus:") and "trainer.devices" in t for t in text)
    assert any(t.startswith("seed.seed:") and "???" in t for t in text)
    assert [i.path for i in issues] == sorted(i.path for i in issues)


def test_missing_required_argument_and_literal():
    with pytest.raises(ConfigError) as info:
        sce_core.build("models", {**MODEL, "head": {"_name_": "toy_head"},
                                  "trunk": {"_name_": "toy_trunk", "norm": "gn"}})
    msg = str(info.value)
    assert "models.head.input_dim: head 'toy_head' needs 'input_dim' (int)" in msg
    assert "models.trunk.norm" in msg and "got 'gn'" in msg


def test_unknown_trainer_key_suggests():
    cfg = {"model": MODEL, "datamodule": DATA, "trainer": {"max_epoch": 3}}
    issues = validate_config(OmegaConf.create(cfg), hooks=False)
    assert len(issues) == 1 and "did you mean 'max_epochs'" in str(issues[0])


def test_unknown_top_level_section():
    cfg = {"model": MODEL, "datamodule": DATA, "modle": {"_name_": "toy_model"}}
    issues = validate_config(OmegaConf.create(cfg), hooks=False)
    assert len(issues) == 1 and "did you mean 'model'" in str(issues[0])


def test_missing_sections_are_named():
    issues = validate_config(OmegaConf.create({}), hooks=False, complete=True)
    assert [i.path for i in issues] == ["datamodule", "model"]
    assert "the config has no 'model' section; a run needs a model node here" in str(issues[1])


def test_constructor_error_is_unchanged_with_note():
    def explode(size: int = 1):
        """Raises."""
        raise RuntimeError("boom")

    sce_core.register("losses", "explode", explode)
    with pytest.raises(RuntimeError, match="boom") as info:
        sce_core.build("losses", {"_name_": "explode"}, path="model.loss")
    assert any("model.loss (loss 'explode')" in n for n in info.value.__notes__)


def test_bad_interpolation_is_an_issue():
    cfg = OmegaConf.create({"model": {**MODEL, "temp": "${nowhere.x}"}, "datamodule": DATA})
    issues = validate_config(cfg, hooks=False)
    assert len(issues) == 1 and "nowhere" in str(issues[0])


def test_builtin_hook_checks_queue_dimension():
    cfg = OmegaConf.create({"model": {**MODEL, "queue": {"size": 8, "feature_dim": 4},
                                      "projector": {"output_dim": 16}}})
    issues = validate_config(cfg)
    assert any("model.queue.feature_dim=16" in str(i) for i in issues)
