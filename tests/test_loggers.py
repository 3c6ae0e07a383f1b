"""Loggers by name: a `loggers` list in YAML; csv + tensorboard without one; optional ones
say what to install."""

from __future__ import annotations

import importlib.util

import pytest
from tiny_demo import TINY, sce

import sce_core
from sce_core.errors import SCEError
from sce_core.runner import pretrain


def test_a_run_writes_only_the_loggers_it_names(cache, tmp_path):
    trainer = pretrain("demo", [*TINY, f"dir.root={tmp_path}", "trainer.max_epochs=1", "loggers=[csv]"])
    run = tmp_path / "demo"
    assert [type(lg).__name__ for lg in trainer.loggers] == ["AppendingCSVLogger"]
    assert (run / "logs" / "metrics.csv").is_file() and not (run / "tensorboard").exists()
    assert [node._name_ for node in sce_core.load_config(run / "config.yaml").loggers] == ["csv"]


def test_without_a_loggers_section_a_run_logs_csv_and_tensorboard(cache, tmp_path):
    pretrain("demo", [*TINY, f"dir.root={tmp_path}", "trainer.max_epochs=1"])
    run = tmp_path / "demo"
    assert (run / "logs" / "metrics.csv").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_an_optional_logger_whose_package_is_missing_says_what_to_install(name, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == name else real(m, *a))
    with pytest.raises(SCEError) as info:
        sce_core.build("loggers", name, save_dir=tmp_path, resume_step=None)
    assert str(info.value) == (f"the {name} logger needs the {name} package: pip install {name} "
                               f"(or pip install 'sce-core[{name}]')")


def test_check_names_unknown_loggers_and_arguments():
    proc = sce("check", "demo", "loggers=[csvv, {_name_: wandb, projekt: x}]")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "  - loggers[0]: unknown logger 'csvv'; did you mean 'csv'?" in out
    assert "  - loggers[1].projekt: logger 'wandb' has no parameter 'projekt'; did you mean 'project'?" in out
