"""Config loading: composition, overrides, interpolation, ``???``, the resolved config."""

from __future__ import annotations

import textwrap

import pytest
from omegaconf import OmegaConf
from toy_components import toys

import sce_core
from sce_core.config import find_config, save_config, shipped_configs
from sce_core.errors import ConfigError, ConfigNotFoundError
from sce_core.resolved import resolved_config


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def recipe(tmp_path):
    write(tmp_path / "trainer" / "cpu.yaml", """
        max_epochs: 3
        accelerator: cpu
    """)
    write(tmp_path / "base.yaml", """
        dir:
          data: ???
          root: /out
          exp: pretrain
          run: ${.root}/${.exp}
        seed:
          seed: 1
    """)
    return write(tmp_path / "run.yaml", """
        defaults:
          - base
          - trainer: cpu
          - _self_
        seed:
          seed: 42
        datamodule: {_name_: toy_data, datadir: /d}
        model:
          _name_: toy_model
          trunk: {_name_: toy_trunk, depth: 10}
          head: {_name_: toy_head, input_dim: 8}
          temp: 0.2
        trainer:
          max_epochs: 5
    """)


def test_defaults_are_composed_in_order(recipe):
    cfg = sce_core.load_config(recipe)
    assert cfg.seed.seed == 42  # own content after base
    assert cfg.trainer.max_epochs == 5 and cfg.trainer.accelerator == "cpu"
    assert OmegaConf.is_missing(cfg.dir, "data")
    assert cfg.dir.run == "/out/pretrain"


def test_overrides_and_interpolation(recipe):
    cfg = sce_core.load_config(recipe, ["dir.data=/data/k200", "dir.exp=run1", "model.temp=0.5",
                                        "+trainer.devices=2", "model.trunk.width=[1,2]"])
    assert cfg.dir.run == "/out/run1" and cfg.dir.data == "/data/k200"
    assert cfg.model.temp == 0.5 and cfg.trainer.devices == 2
    assert list(cfg.model.trunk.width) == [1, 2]


def test_malformed_override(recipe):
    with pytest.raises(ConfigError, match="not of the form key=value"):
        sce_core.load_config(recipe, ["dir.data"])


def test_missing_value_detected(recipe):
    with toys():
        issues = sce_core.validate_config(sce_core.load_config(recipe), hooks=False)
    assert [str(i) for i in issues] == [
        "dir.data: mandatory value '???' is not set; pass it as an override (dir.data=...)"]


def test_unknown_config_name_suggests(tmp_path):
    assert isinstance(shipped_configs(), dict)
    with pytest.raises(ConfigNotFoundError, match="neither a file nor a shipped config"):
        find_config(tmp_path / "nope.yaml")


def test_cycle_in_defaults(tmp_path):
    write(tmp_path / "a.yaml", "defaults: [b]\nx: 1\n")
    write(tmp_path / "b.yaml", "defaults: [a]\ny: 1\n")
    with pytest.raises(ConfigError, match="cycle"):
        sce_core.load_config(tmp_path / "a.yaml")


def test_resolved_config_fills_defaults_and_round_trips(recipe, tmp_path):
    with toys():
        cfg = sce_core.load_config(recipe, ["dir.data=/d"])
        resolved = resolved_config(cfg)
        assert resolved.model.trunk.width == 8  # default filled
        assert resolved.model.trunk.norm == "bn"
        assert resolved.model.trunk._provider_ == "local"
        assert resolved.dir.run == "/out/pretrain"  # interpolation resolved
        path = save_config(resolved, tmp_path / "resolved.yaml")
        again = resolved_config(sce_core.load_config(path))
        assert OmegaConf.to_container(again) == OmegaConf.to_container(resolved)
        assert sce_core.validate_config(sce_core.load_config(path), hooks=False) == []


def test_component_with_another_name_replaces_the_earlier_node(tmp_path):
    write(tmp_path / "base.yaml", """
        model:
          trunk: {_name_: big_trunk, depth: 50, width: 4}
          head: {_name_: mlp, input_dim: 8}
    """)
    cfg_path = write(tmp_path / "child.yaml", """
        defaults: [base]
        model:
          trunk: {_name_: small_trunk, channels: 3}
          head: {input_dim: 16}
    """)
    cfg = OmegaConf.to_container(sce_core.load_config(cfg_path))
    assert cfg["model"]["trunk"] == {"_name_": "small_trunk", "channels": 3}
    assert cfg["model"]["head"] == {"_name_": "mlp", "input_dim": 16}


def test_a_renamed_node_keeps_the_earlier_keys_it_lists_in_keep(tmp_path):
    write(tmp_path / "base.yaml", """
        model:
          _name_: method_a
          trunk: {_name_: big_trunk, depth: 50}
          head: {_name_: mlp, input_dim: 8}
          coeff: 0.5
    """)
    cfg_path = write(tmp_path / "child.yaml", """
        defaults: [base]
        model:
          _name_: method_b
          _keep_: [trunk, head]
          head: {input_dim: 16}
          temp: 0.2
    """)
    cfg = OmegaConf.to_container(sce_core.load_config(cfg_path))
    assert cfg["model"] == {"_name_": "method_b", "trunk": {"_name_": "big_trunk", "depth": 50},
                            "head": {"_name_": "mlp", "input_dim": 16}, "temp": 0.2}
    write(tmp_path / "bad.yaml", """
        defaults: [base]
        model: {_name_: method_b, _keep_: [trunk, heads]}
    """)
    with pytest.raises(ConfigError, match=r"model\._keep_: cannot keep heads: the replaced node has no such key"):
        sce_core.load_config(tmp_path / "bad.yaml")


def test_overrides_resolve_in_the_composed_config(recipe):
    cfg = sce_core.load_config(recipe, ["dir.data=/d", "dir.exp=${dir.root}_x", "~seed", "~trainer.accelerator="])
    assert cfg.dir.exp == "/out_x" and cfg.dir.run == "/out//out_x"
    assert "seed" not in cfg and "accelerator" not in cfg.trainer
    with pytest.raises(ConfigError, match=r"^seed.seed: override 'seed.seed=\?\?\?' sets the mandatory"):
        sce_core.load_config(recipe, ["seed.seed=???"])
    with pytest.raises(ConfigError, match="cannot delete 'model.tmp'.*did you mean 'model.temp'"):
        sce_core.load_config(recipe, ["~model.tmp"])
    with toys():
        cfg = sce_core.load_config(recipe, ["dir.data=${dir.exp}", "dir.exp=${dir.data}"])
        issues = sce_core.validate_config(cfg, hooks=False)
    assert len(issues) == 1 and issues[0].path.startswith("dir.") and "interpolation cycle" in issues[0].message
