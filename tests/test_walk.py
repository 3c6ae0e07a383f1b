"""The schema-aware walker: what it visits, where it reports, how the three uses differ."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from omegaconf import OmegaConf
from toy_components import ToyScale, toys

import sce_core
from sce_core.building import Builder, NodeFactory
from sce_core.constraints import AtMost, Range, constraint_problem, finite_problem
from sce_core.errors import ConfigError
from sce_core.resolved import resolve_run_config
from sce_core.schema import (
    SECTIONS,
    ComponentSlot,
    ManySlot,
    OptionsSlot,
    ValueSlot,
    run_sections,
    slot_for,
)
from sce_core.slots import Component, ComponentList, Factory
from sce_core.validate import Validator, validate_value
from sce_core.walk import ComponentAt, Visitor, walk_config, walk_node


@pytest.fixture(autouse=True)
def _toys():
    with toys():
        yield


class Recorder(Visitor):
    """Records every component the walk meets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str | None, bool, bool]] = []

    def component(self, at: ComponentAt, args: Any) -> Any:
        self.seen.append((at.path, at.kind, at.name, at.bare, at.lazy, at.in_options))
        return args()


class Split(TypedDict, total=False):
    """toy split options"""

    transform: Component("transforms")  # type: ignore[valid-type]
    size: Annotated[int, Range(ge=1)]


MODEL = {"_name_": "toy_model", "trunk": "toy_trunk", "head": {"_name_": "toy_head", "input_dim": 8},
         "optimizer": {"_name_": "toy_opt", "lr": 0.5},
         "transforms": [{"_name_": "toy_scale", "factor": 3.0}, "toy_scale"]}


def test_slot_for_each_kind_of_declaration():
    assert slot_for(Component("trunks")) == ComponentSlot("trunks")
    assert slot_for(Factory("optimizers", args_param="params")) == ComponentSlot("optimizers", True, "params")
    assert slot_for(ComponentList("transforms")) == ManySlot(ComponentSlot("transforms"))
    options = slot_for(Split | None)
    assert isinstance(options, OptionsSlot) and options.owner == "toy split options"
    assert list(options.fields) == ["transform", "size"] and not options.fields["size"].required
    assert slot_for(int) == ValueSlot(int)


def test_walk_visits_every_component_with_path_kind_and_slot():
    recorder = Recorder()
    walk_node("models", MODEL, "model", recorder)
    assert recorder.seen == [
        ("model", "models", "toy_model", None, False, False),
        ("model.trunk", "trunks", "toy_trunk", "toy_trunk", False, False),
        ("model.head", "heads", "toy_head", None, False, False),
        ("model.optimizer", "optimizers", "toy_opt", None, True, False),
        ("model.transforms[0]", "transforms", "toy_scale", None, False, False),
        ("model.transforms[1]", "transforms", "toy_scale", "toy_scale", False, False),
    ]


def test_bare_name_merged_with_args_param_and_problems_at_the_args_path():
    recorder = Recorder()
    node = {"_name_": "toy_data", "datadir": "/d", "decoder": "toy_dec", "decoder_args": {"fps": 25}}
    walk_node("datamodules", node, "datamodule", recorder)
    assert recorder.seen[1] == ("datamodule.decoder", "decoders", "toy_dec", "toy_dec", False, False)
    validator = Validator()
    walk_node("datamodules", {**node, "decoder_args": {"fpss": 25}}, "datamodule", validator)
    assert [i.path for i in validator.issues] == ["datamodule.decoder_args.fpss"]
    assert "decoder 'toy_dec' has no parameter 'fpss'; did you mean 'fps'?" in validator.issues[0].message


def test_typed_options_checked_and_left_to_their_owner():
    issues = validate_value({"transform": {"_name_": "toy_scale", "factr": 2}, "size": 0, "sise": 1},
                            Split | None, "datamodule.train")
    assert [str(i) for i in issues] == [
        "datamodule.train.transform.factr: transform 'toy_scale' has no parameter 'factr'; did you "
        "mean 'factor'? (parameters: factor)",
        "datamodule.train.size: toy split options: 'size' must be >= 1, got 0",
        "datamodule.train.sise: toy split options has no key 'sise'; did you mean 'size'? "
        "(keys: transform, size)",
    ]
    recorder = Recorder()
    from sce_core.walk import Walker

    walker = Walker(recorder)
    walker.options(slot_for(Split), {"transform": "toy_scale"}, "x")
    assert recorder.seen == [("x.transform", "transforms", "toy_scale", "toy_scale", False, True)]
    built = Walker(Builder()).options(slot_for(Split), {"transform": "toy_scale"}, "x")
    assert built == {"transform": "toy_scale"}  # the owner builds it when it needs it


def test_builder_builds_innermost_first_and_defers_factories():
    model = walk_node("models", MODEL, "model", Builder())
    assert [t.factor for t in model.transforms] == [3.0, 2.0] and isinstance(model.transforms[0], ToyScale)
    assert isinstance(model.optimizer, NodeFactory) and model.optimizer.path == "model.optimizer"
    assert model.optimizer(params=[1]) == {"params": [1], "lr": 0.5, "momentum": 0.9}


def test_default_visitor_stops_at_first_problem_with_its_path():
    with pytest.raises(ConfigError, match=r"^model.trunk.depht: trunk 'toy_trunk' has no parameter"):
        walk_node("models", {**MODEL, "trunk": {"_name_": "toy_trunk", "depht": 1}}, "model", Visitor())


def test_sections_table_dispatches_every_top_level_key():
    cfg = {"model": MODEL, "datamodule": {"_name_": "toy_data", "datadir": "/d"},
           "callbacks": {"a": None}, "seed": {"seed": 1}, "ckpt_path": "x", "dir": {"root": "r"}}
    validator = Validator()
    out = walk_config(cfg, validator)
    assert [str(i) for i in validator.issues] == [
        "ckpt_path: unknown top-level section (sections: " + ", ".join(sorted(run_sections())) + ")"]
    assert set(out) == set(cfg) - {"ckpt_path"}
    assert SECTIONS["model"].required and SECTIONS["datamodule"].required
    assert not SECTIONS["trainer"].required
    # the core declares framework sections only; the built-ins add the one they read
    assert "evaluation" not in SECTIONS and set(run_sections()) - set(SECTIONS) == {"evaluation"}


def test_trainer_values_checked_against_lightning_annotations():
    validator = Validator()
    walk_config({"trainer": {"max_epochs": "abc", "log_every_n_steps": 0, "devices": 2,
                             "strategy": {"_name_": "ddp", "static_graph": "no"}}}, validator)
    assert [(i.path, i.message) for i in validator.issues] == [
        ("trainer.max_epochs", "lightning.Trainer expects 'max_epochs' to be int | None (>= -1), got 'abc'"),
        ("trainer.log_every_n_steps", "lightning.Trainer: 'log_every_n_steps' must be >= 1, got 0"),
        ("trainer.strategy.static_graph",
         "strategy 'ddp' expects 'static_graph' to be bool, got 'no'"),
    ]


def test_constraints_and_finite_numbers():
    assert Range(0, 1).problem(1.5) == "must be in [0, 1], got 1.5"
    assert Range(gt=0).problem(0) == "must be > 0, got 0"
    assert Range(ge=1).problem(1) is None and Range(ge=1).problem("x") is None
    assert constraint_problem(0, Annotated[int, Range(ge=1)] | None) == "must be >= 1, got 0"
    assert constraint_problem(None, Annotated[int, Range(ge=1)] | None) is None
    assert finite_problem(1e308) and finite_problem(float("nan")) and finite_problem(3.0) is None


def test_a_constraint_between_arguments_sees_the_siblings():
    warmup = Annotated[float, Range(ge=0), AtMost("total")]
    assert constraint_problem(5, warmup, {"total": 3}) == "must be at most 'total' (3), got 5"
    assert constraint_problem(3, warmup, {"total": 3}) is None
    assert constraint_problem(-1, warmup, {"total": 3}) == "must be >= 0, got -1"  # bounds first
    assert constraint_problem(5, warmup, {}) is None  # no sibling given: nothing to compare
    assert constraint_problem(5, warmup, {"total": "???"}) is None  # the other key's own problem
    assert constraint_problem(5, warmup) is None  # a value checked on its own


def test_resolved_config_keeps_environment_values_out(monkeypatch):
    monkeypatch.setenv("SCE_TEST_TOKEN", "s3cret")
    cfg = OmegaConf.create({"model": MODEL, "dir": {"token": "${oc.env:SCE_TEST_TOKEN}",
                                                    "copy": "${.token}/x", "root": "r"}})
    saved, plain = resolve_run_config(cfg)
    assert plain["dir"] == {"token": "s3cret", "copy": "s3cret/x", "root": "r"}
    text = OmegaConf.to_yaml(saved)
    assert "s3cret" not in text and "${oc.env:SCE_TEST_TOKEN}" in text and "${.token}/x" in text
    assert saved.model.trunk._provider_ == "local" and saved.model.trunk.width == 8
    assert OmegaConf.to_container(saved, resolve=True)["dir"]["copy"] == "s3cret/x"
    assert "s3cret" not in str(OmegaConf.to_container(saved))


def test_public_build_uses_the_same_walk():
    assert sce_core.build("trunks", "toy_trunk").width == 8
