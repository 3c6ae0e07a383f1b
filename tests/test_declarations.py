"""Declaration hooks: plugin sections, evaluation protocols, the default config and per-kind
smoke-test contracts, declared by a fake plugin next to the built-ins (which win on a clash)."""

from __future__ import annotations

import json
import textwrap
from types import SimpleNamespace

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf
from sce_builtins.evaluation import protocols as builtin_protocols

from sce_core.cli import default_config, main
from sce_core.contracts import smoke_runtime_args, smoke_test
from sce_core.errors import SCEError
from sce_core.hooks import plugin_manager
from sce_core.runner import evaluation_protocols, find_protocol
from sce_core.schema import SECTIONS, run_sections
from sce_core.testing import check_plugin, fake_distribution, on_sys_path
from sce_core.validate import validate_config

LAB_HOOKS = textwrap.dedent('''
    """Hooks of a fake plugin that reads its own `lab` section."""
    from typing import TypedDict

    from sce_core.contracts import KindContract
    from sce_core.hooks import hookimpl


    class LabOptions(TypedDict, total=False):
        """lab options"""

        tag: str
        repeats: int


    def count(run):
        """Train, then report the step count."""
        run.fit()
        return [{"global_step": run.trainer.global_step, "tag": run.plain["lab"]["tag"]}]


    def record(run):
        """Report a results record without training."""
        return {"metrics": {"top1": 0.25}, "pretrained": None, "dataset": "lab", "split_id": None}


    def not_linear(run):
        """A third party's protocol named like a built-in one."""
        return "not the built-in"


    @hookimpl
    def sce_sections():
        return {"lab": LabOptions, "seed": dict, "evaluation": dict, "shared": int}


    @hookimpl
    def sce_evaluation_protocols():
        return {"lab_count": count, "lab_record": record, "linear": not_linear, "twice": count}


    @hookimpl
    def sce_default_config():
        return "lab_default"


    @hookimpl
    def sce_kind_contracts():
        return {"trunks": KindContract(lambda obj: "lab rejects every trunk"),
                "datasets": KindContract(
                    lambda obj: None if hasattr(obj, "__len__") else "a dataset has a length",
                    {"split": lambda: "train"})}
''')

OTHER_HOOKS = textwrap.dedent('''
    from sce_core.hooks import hookimpl


    @hookimpl
    def sce_sections():
        return {"shared": str}


    @hookimpl
    def sce_evaluation_protocols():
        return {"twice": lambda run: None}


    @hookimpl
    def sce_default_config():
        return "other_default"
''')


@pytest.fixture
def lab(tmp_path):
    root = fake_distribution(tmp_path / "site", "sce-lab", {"sce.hooks": {"lab": "lab_pkg.hooks"}},
                             {"lab_pkg/__init__.py": "", "lab_pkg/hooks.py": LAB_HOOKS})
    with on_sys_path(root):
        yield


@pytest.fixture
def lab_and_other(tmp_path):
    root = fake_distribution(tmp_path / "site", "sce-lab", {"sce.hooks": {"lab": "lab_pkg.hooks"}},
                             {"lab_pkg/__init__.py": "", "lab_pkg/hooks.py": LAB_HOOKS})
    fake_distribution(tmp_path / "site", "sce-other", {"sce.hooks": {"other": "other_pkg.hooks"}},
                      {"other_pkg/__init__.py": "", "other_pkg/hooks.py": OTHER_HOOKS})
    with on_sys_path(root):
        yield


def problems(cfg: dict) -> list[str]:
    return [str(i) for i in validate_config(OmegaConf.create(cfg))]


# -- sections --------------------------------------------------------------------------------
def test_core_sections_are_framework_sections_only():
    assert set(SECTIONS) == {"datamodule", "model", "trainer", "callbacks", "loggers", "seed",
                             "checkpoint", "dir", "resume", "code", "name", "notes"}
    assert set(run_sections()) == set(SECTIONS) | {"evaluation"}  # declared by the built-ins


def test_builtin_evaluation_section_is_typed():
    assert problems({"evaluation": {"test_checkpoint": "last"}}) == []
    assert problems({"evaluation": {"test_checkpoint": "worst", "tset": 1}}) == [
        "evaluation.test_checkpoint: evaluation options (read by `sce evaluate linear` and "
        "`sce evaluate finetune`) expects 'test_checkpoint' to be 'best' | 'last', got 'worst'",
        "evaluation.tset: evaluation options (read by `sce evaluate linear` and `sce evaluate "
        "finetune`) has no key 'tset' (keys: test_checkpoint)"]
    assert problems({"demo": {}, "sce": {}})[0].startswith("demo: unknown top-level section")


def test_plugin_section_is_validated_with_paths_and_did_you_mean(lab):
    assert problems({"lab": {"tag": "a", "repeats": 3}}) == []
    assert problems({"lab": {"tagg": "x", "repeats": "many"}, "labb": 1}) == [
        "lab.repeats: lab options expects 'repeats' to be int, got 'many'",
        "lab.tagg: lab options has no key 'tagg'; did you mean 'tag'? (keys: tag, repeats)",
        "labb: unknown top-level section; did you mean 'lab'? (sections: callbacks, checkpoint, "
        "code, datamodule, dir, evaluation, lab, loggers, model, name, notes, resume, seed, "
        "shared, trainer)"]


def test_plugin_cannot_redeclare_core_or_builtin_sections(lab):
    # seed stays the core's typed section, evaluation the built-ins' one
    assert problems({"seed": {"sed": 1}, "evaluation": {"test_checkpoint": 1}}) == [
        "evaluation.test_checkpoint: evaluation options (read by `sce evaluate linear` and "
        "`sce evaluate finetune`) expects 'test_checkpoint' to be 'best' | 'last', got 1",
        "seed.sed: seed_everything has no key 'sed'; did you mean 'seed'? (keys: seed, workers)"]
    assert check_plugin("sce-lab") == [
        "hooks/lab (lab_pkg.hooks): sce_sections declares 'seed', a section of the core; choose "
        "another name"]


def test_section_of_two_plugins_is_a_problem_only_where_used(lab_and_other):
    assert problems({"lab": {"tag": "a"}}) == []
    assert problems({"shared": 1}) == [
        "shared: top-level section 'shared' is declared by sce-lab:lab and sce-other:other; "
        "disable one (SCE_DISABLE_PLUGINS=dist)"]


# -- evaluation protocols --------------------------------------------------------------------
def test_builtin_protocols_win_and_plugins_add_theirs(lab_and_other):
    protocols = evaluation_protocols()
    assert {"linear", "knn", "lab_count"} <= set(protocols)
    assert find_protocol("linear") is builtin_protocols.linear
    assert find_protocol("lab_count").__doc__ == "Train, then report the step count."
    with pytest.raises(SCEError, match="^evaluation protocol 'twice' is declared by sce-lab:lab "
                                       "and sce-other:other; disable one"):
        find_protocol("twice")


def test_unknown_protocol_is_one_line_with_the_closest_names(capsys):
    assert main(["evaluate", "linaer", "demo"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sce: error: unknown evaluation protocol 'linaer'; did you mean 'linear'? "
                   "(protocols: finetune, knn, linear, retrieval)"]


def test_evaluate_help_lists_the_declared_protocols(lab, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    listed = out[out.index("protocols:"):].splitlines()[1:]
    assert [line.split()[0] for line in listed] == ["finetune", "knn", "lab_count", "lab_record", "linear",
                                                    "retrieval", "twice"]
    assert "  linear       Train the classifier on the frozen trunk, then test it." in listed


def test_plugin_protocol_runs_on_the_prepared_run(lab, tmp_path, capsys):
    from tiny_demo import TINY

    from sce_core.runner import evaluate

    results = evaluate("lab_count", "demo", [*TINY, f"dir.root={tmp_path}", "trainer.max_epochs=1",
                                             "+lab.tag=first"])
    assert results == [{"global_step": 3, "tag": "first"}]  # 24 videos, batches of 8, one epoch
    assert (tmp_path / "demo" / "config.yaml").is_file()
    assert "sce: lab_count evaluation results [{'global_step': 3" in capsys.readouterr().out
    assert not (tmp_path / "demo" / "results.json").exists()  # not a record: printed only


def test_a_protocol_record_is_written_to_results_json(lab, tmp_path, capsys):
    from tiny_demo import TINY

    from sce_core.runner import evaluate

    evaluate("lab_record", "demo", [*TINY, f"dir.root={tmp_path}"])
    assert json.loads((tmp_path / "demo" / "results.json").read_text()) == {
        "protocol": "lab_record", "metrics": {"top1": 0.25}, "pretrained": None, "dataset": "lab",
        "split_id": None}
    assert f"sce: lab_record results: top1 0.2500 (saved to {tmp_path / 'demo' / 'results.json'})" \
        in capsys.readouterr().out


class _Tested:
    """A Trainer stand-in recording what ``test`` was asked to load."""

    def __init__(self, callbacks: list) -> None:
        self.checkpoint_callbacks = callbacks
        self.calls: list = []

    def test(self, model, datamodule, ckpt_path=None, weights_only=False):
        self.calls.append(("test", ckpt_path, weights_only))
        return [{"test/acc_1": 0.5, "test/knn_top1": 0.25}]


def _linear_run(evaluation: dict | None, monitor: str | None):
    best = ModelCheckpoint(monitor=monitor)
    best.best_model_path = "/run/checkpoints/epoch=3.ckpt"
    trainer = _Tested([best])
    run = SimpleNamespace(plain={"evaluation": evaluation} if evaluation is not None else {},
                          trainer=trainer, model="model", datamodule="data",
                          fit=lambda: trainer.calls.append(("fit",)),
                          test=lambda **kw: trainer.test("model", "data", weights_only=True, **kw))
    return run, trainer


@pytest.mark.parametrize(("evaluation", "monitor", "tested"), [
    (None, "val/acc_1", "/run/checkpoints/epoch=3.ckpt"),
    ({"test_checkpoint": "best"}, "val/acc_1", "/run/checkpoints/epoch=3.ckpt"),
    ({"test_checkpoint": "last"}, "val/acc_1", None),
    (None, None, None),  # nothing monitored: the final weights
])
def test_linear_protocol_fits_then_tests_the_chosen_checkpoint(evaluation, monitor, tested):
    run, trainer = _linear_run(evaluation, monitor)
    assert builtin_protocols.linear(run) == {"metrics": {"top1": 0.5}, "pretrained": None,
                                             "dataset": None, "split_id": None}
    assert trainer.calls == [("fit",), ("test", tested, True)]


def test_knn_protocol_only_tests():
    run, trainer = _linear_run(None, "val/acc_1")
    assert builtin_protocols.knn(run)["metrics"] == {"top1": 0.25}
    assert trainer.calls == [("test", None, True)]


def test_a_protocol_that_scored_no_video_is_an_error():
    run, trainer = _linear_run(None, "val/acc_1")
    trainer.test = lambda *args, **kwargs: [{}]  # an empty test split logs nothing
    with pytest.raises(SCEError, match="^evaluation: no test video was scored .*check datamodule.test"):
        builtin_protocols.retrieval(run)


# -- default config ----------------------------------------------------------------------------
def test_default_config_is_the_builtins_then_a_plugins_then_an_error(lab):
    assert default_config() == "demo"  # the built-ins' answer wins
    pm = plugin_manager()
    pm.unregister(name="sce-core:sce_builtins")
    assert default_config() == "lab_default"
    pm.unregister(name="sce-lab:lab")
    with pytest.raises(SCEError, match="^missing CONFIG: .* no installed plugin declares a default"):
        default_config()


def test_pretrain_without_config_runs_the_declared_default(capsys, monkeypatch):
    import sce_core.runner

    seen = []
    monkeypatch.setattr(sce_core.runner, "pretrain",
                        lambda config, overrides, code_files: seen.append((config, overrides)))
    assert main(["pretrain"]) == 0 and main(["pretrain", "trainer.max_epochs=1"]) == 0
    assert seen == [("demo", []), ("demo", ["trainer.max_epochs=1"])]
    assert main(["pretrain", "my.yaml", "seed.seed=3"]) == 0
    assert seen[-1] == ("my.yaml", ["seed.seed=3"])


def test_two_plugins_with_different_defaults_need_a_config(lab_and_other):
    assert default_config() == "demo"
    plugin_manager().unregister(name="sce-core:sce_builtins")
    with pytest.raises(SCEError, match=r"^missing CONFIG: plugins declare different default configs "
                                       r"\(lab_default by sce-lab:lab, other_default by "
                                       r"sce-other:other\); give CONFIG$"):
        default_config()


# -- kind contracts ----------------------------------------------------------------------------
def test_smoke_contracts_come_from_the_plugins(lab):
    import torch

    trunk = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
    trunk.num_features = 3
    assert smoke_test("trunks", trunk) is None  # the built-ins' trunk contract, not the lab's
    trunk.num_features = 5
    assert smoke_test("trunks", trunk) == ("trunk maps (2, 3, 4, 32, 32) to (2, 3), expected "
                                           "(2, 5) = (B, num_features)")
    assert smoke_test("datasets", object()) == "a dataset has a length"  # the lab's own kind
    assert smoke_test("datasets", [1]) is None
    assert smoke_test("models", object()) is None  # no contract declared: passes
    runtime = smoke_runtime_args("schedulers", ["optimizer", "num_steps_per_epoch"])
    assert isinstance(runtime["optimizer"], torch.optim.SGD) and runtime["num_steps_per_epoch"] == 10
    assert smoke_runtime_args("datasets", ["split"]) == {"split": "train"}
    assert smoke_runtime_args("trunks", ["params"]) is None
