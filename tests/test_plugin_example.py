"""The example third-party plugin (examples/sce-plugin-example) and `sce plugin validate`.

The example is installed with pip into a temporary ``--target`` folder (never into the test
venv), then put on ``sys.path`` / ``PYTHONPATH``: sce-core must find it through its packaging
metadata alone. `check_plugin` is also run on a good and a deliberately bad fake distribution.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_demo import TINY

import sce_core
from sce_core.cli import main
from sce_core.info import describe
from sce_core.registries import registry
from sce_core.testing import check_plugin, fake_distribution, on_sys_path
from sce_core.validate import validate_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sce-plugin-example"
DIST = "sce-plugin-example"
MODULES = ("sce_plugin_example", "sce_plugin_example.trunks", "sce_plugin_example.samplers",
           "sce_plugin_example.losses", "sce_plugin_example.hooks",
           "sce_plugin_example.callbacks")


@pytest.fixture(scope="module")
def example_target(tmp_path_factory) -> Path:
    """The example installed by pip into a private folder (with its dist-info)."""
    target = tmp_path_factory.mktemp("example-target")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    source = tmp_path_factory.mktemp("example-source") / "sce-plugin-example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    assert (target / "sce_plugin_example-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


def sce(target: Path, *args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1",
           "SCE_CACHE_DIR": str(cache)}
    env.pop("SCE_DISABLE_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "sce_core.cli", *args], env=env, text=True,
                          capture_output=True, timeout=300)


# -- the installed example ------------------------------------------------------------------
def test_sce_list_shows_the_example_with_dist_and_version(example_target, tmp_path):
    done = sce(example_target, "list", "--json", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    rows = {(r["kind"], r["name"]): r for r in listed}
    for key, target in [
        (("trunks", "r2plus1d_tiny"), "sce_plugin_example.trunks:R2Plus1DTiny"),
        (("clip_samplers", "strided_pair"), "sce_plugin_example.samplers:StridedPairSampler"),
        (("losses", "byol_cosine_loss"), "sce_plugin_example.losses:BYOLCosineLoss"),
    ]:
        assert rows[key]["provider"] == "sce-plugin-example 0.1.0"
        assert rows[key]["target"] == target
        assert rows[key]["status"] == "ok"  # listed from metadata, not imported
        # one provider only: the example takes no built-in name
        assert [(r["kind"], r["name"]) for r in listed].count(key) == 1
    table = sce(example_target, "list", "trunks", "r2plus1d", cache=tmp_path).stdout.splitlines()
    assert table[1].split() == ["trunks", "r2plus1d_tiny", "sce-plugin-example", "0.1.0", "ok"]
    plugins = sce(example_target, "plugins", "--json", cache=tmp_path)
    dists = {d["name"]: d for d in json.loads(plugins.stdout)["distributions"]}
    assert dists[DIST]["provides"] == {
        "trunks": ["r2plus1d_tiny"], "clip_samplers": ["strided_pair"],
        "losses": ["byol_cosine_loss"], "hooks": ["sce_plugin_example"],
        "configs": ["sce_plugin_example"]}


def test_modules_register_nothing_on_import(example_target, tmp_path, monkeypatch):
    """Without the dist-info (entry points not read), importing every module names nothing."""
    bare = tmp_path / "bare"
    shutil.copytree(example_target / "sce_plugin_example", bare / "sce_plugin_example")
    # also skip the distribution's entry points in case it is installed in this environment
    monkeypatch.setenv("SCE_DISABLE_PLUGINS", DIST)
    with on_sys_path(bare):
        for mod in MODULES:
            importlib.import_module(mod)
        assert "r2plus1d_tiny" not in registry("trunks")
        assert "strided_pair" not in registry("clip_samplers")
        assert "byol_cosine_loss" not in registry("losses")
    monkeypatch.delenv("SCE_DISABLE_PLUGINS")
    with on_sys_path(example_target):
        assert registry("trunks").resolve("r2plus1d_tiny").provider == "sce-plugin-example 0.1.0"


def test_plugin_validate_passes_on_the_example(example_target, capsys):
    with on_sys_path(example_target):
        assert check_plugin(DIST) == []
        assert main(["plugin", "validate", DIST]) == 0
    assert capsys.readouterr().out.strip() == "sce-plugin-example: every entry point passes"


def test_build_trunk_by_name_and_info(example_target):
    with on_sys_path(example_target):
        trunk = sce_core.build("trunks", {"_name_": "r2plus1d_tiny", "widths": [8, 12],
                                          "spatial_strides": [2, 2], "temporal_strides": [1, 2]})
        assert trunk.num_features == 12
        assert trunk.eval()(torch.rand(3, 3, 8, 16, 16)).shape == (3, 12)
        qualified = sce_core.build("trunks", "sce-plugin-example:r2plus1d_tiny")
        assert qualified.num_features == 64
        text = describe("r2plus1d_tiny")
    assert "provider: sce-plugin-example 0.1.0" in text
    assert "Args:" in text and "widths: Sequence[int] = (16, 32, 64)" in text


def test_example_config_and_its_validation_hook(example_target):
    with on_sys_path(example_target):
        cfg = sce_core.load_config("example_r2plus1d_demo")
        assert cfg.model.trunk._name_ == "r2plus1d_tiny"
        assert dict(cfg.datamodule.train.clip_sampler) == {
            "_name_": "strided_pair", "clip_duration": 1.0, "stride": 1.5}
        assert validate_config(cfg) == []
        bad = sce_core.load_config("example_r2plus1d_demo", ["model.projector.input_dim=128"])
        issues = [str(i) for i in validate_config(bad)]
    assert issues == ["model.projector.input_dim: r2plus1d_tiny outputs 64 features but the "
                      "projector expects 128; set model.projector.input_dim=64"]




def test_short_pretraining_with_the_example_trunk_by_name(example_target, tmp_path):
    done = sce(example_target, "pretrain", "example_r2plus1d_demo", *TINY,
               f"dir.root={tmp_path / 'runs'}", cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    # the hook module's callback: 24 training videos, batch 8 -> 3 steps per epoch, 2 epochs
    assert "sce-plugin-example: 6 training steps, 48 samples in" in done.stdout
    run = tmp_path / "runs" / "example_r2plus1d"
    resolved = sce_core.load_config(run / "config.yaml")
    assert resolved.model.trunk._name_ == "r2plus1d_tiny"
    assert resolved.model.trunk._provider_ == "sce-plugin-example==0.1.0"
    assert resolved.datamodule.train.clip_sampler._provider_ == "sce-plugin-example==0.1.0"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 6
    assert ckpt["state_dict"]["trunk.stages.2.4.weight"].shape == (64,)  # last BatchNorm


# -- `sce plugin validate` on fake distributions -----------------------------------------------
GOOD = '''
"""A good plugin."""
import torch
from torch import nn
from sce_builtins.data.clip_samplers import ClipSampler
from sce_builtins.data.types import ClipWindow
from sce_core.hooks import hookimpl


class PoolTrunk(nn.Module):
    """Average pool then a linear layer.

    Args:
        width: number of features.
    """

    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.fc = nn.Linear(3, width)
        self.num_features = width

    def forward(self, x):
        return self.fc(x.flatten(2).mean(-1))


class Proj(nn.Module):
    """A linear head.

    Args:
        input_dim: input width.
        output_dim: output width.
    """

    def __init__(self, input_dim: int = 6, output_dim: int = 4) -> None:
        super().__init__()
        self.fc = nn.Linear(input_dim, output_dim)
        self.input_dim, self.num_features = input_dim, output_dim

    def forward(self, x):
        return self.fc(x)


def mse(scale: float = 1.0):
    """Mean squared error of q and k.

    Args:
        scale: factor.
    """
    return lambda q, k, **_: scale * ((q - k) ** 2).sum(1).mean()


class First(ClipSampler):
    """The first second.

    Args:
        clip_duration: seconds.
    """

    def __init__(self, clip_duration: float = 1.0) -> None:
        super().__init__(clip_duration)

    def __call__(self, duration, rng):
        return [ClipWindow(0, self.clip_duration)]


class NeedsWidth(nn.Module):
    """A trunk without defaults (not built by the check).

    Args:
        width: number of features.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
'''

GOOD_HOOKS = '''
"""Hooks."""
from sce_core.hooks import hookimpl


@hookimpl
def sce_callbacks(config):
    return []
'''

BAD = '''
"""A plugin with one mistake per component."""
import torch
from torch import nn
import sce_core


class NoDoc(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.num_features = width

    def forward(self, x):
        return torch.zeros(x.shape[0], 4)


class WrongShape(nn.Module):
    """Returns five features but says four.

    Args:
        width: number of features.
    """

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.num_features = width

    def forward(self, x):
        return torch.zeros(x.shape[0], 5)


class NoFeatures(nn.Module):
    """Has no num_features.

    Args:
        width: number of features.
    """

    def __init__(self, width: int = 4) -> None:
        super().__init__()

    def forward(self, x):
        return torch.zeros(x.shape[0], 4)


class Reserved(nn.Module):
    """Uses a reserved name.

    Args:
        _scale_: a scale.
    """

    def __init__(self, _scale_: float = 1.0) -> None:
        super().__init__()


def vector_loss(scale: float = 1.0):
    """A loss without a reduction.

    Args:
        scale: factor.
    """
    return lambda q, k: scale * (q - k).sum(1)


class BareSampler:
    """Not a ClipSampler subclass.

    Args:
        clip_duration: seconds.
    """

    def __init__(self, clip_duration: float = 1.0) -> None:
        self.clip_duration = clip_duration

    def __call__(self, duration, rng):
        return []


class Undocumented(nn.Module):
    """A head whose docstring has no Args section."""

    def __init__(self, input_dim: int = 3) -> None:
        super().__init__()


class Sneaky(nn.Module):
    """Registers itself at import.

    Args:
        width: number of features.
    """

    def __init__(self, width: int = 4) -> None:
        super().__init__()


sce_core.register("heads", "sneaky_head", Sneaky)
'''

BAD_HOOKS = '''
"""A hook module whose function lacks @hookimpl."""


def sce_callbacks(config):
    return []
'''


def make_good(root: Path) -> None:
    fake_distribution(root, "sce-good", {
        "sce.trunks": {"pool_trunk": "good_pkg.mod:PoolTrunk", "needs_width": "good_pkg.mod:NeedsWidth"},
        "sce.heads": {"good_proj": "good_pkg.mod:Proj"},
        "sce.losses": {"good_mse": "good_pkg.mod:mse"},
        "sce.clip_samplers": {"first_second": "good_pkg.mod:First"},
        "sce.hooks": {"good": "good_pkg.hooks"},
    }, {"good_pkg/__init__.py": "", "good_pkg/mod.py": GOOD, "good_pkg/hooks.py": GOOD_HOOKS},
        version="2.0")


def make_bad(root: Path) -> None:
    fake_distribution(root, "sce-bad", {
        "sce.trunks": {"no_doc": "bad_pkg.mod:NoDoc", "wrong_shape": "bad_pkg.mod:WrongShape",
                       "no_features": "bad_pkg.mod:NoFeatures", "reserved": "bad_pkg.mod:Reserved",
                       "small_3d_cnn": "bad_pkg.mod:WrongShape", "missing": "bad_pkg.gone:X"},
        "sce.losses": {"vector_loss": "bad_pkg.mod:vector_loss"},
        "sce.clip_samplers": {"bare_sampler": "bad_pkg.mod:BareSampler"},
        "sce.heads": {"undocumented": "bad_pkg.mod:Undocumented"},
        "sce.hooks": {"bad": "bad_pkg.hooks"},
    }, {"bad_pkg/__init__.py": "", "bad_pkg/mod.py": BAD, "bad_pkg/hooks.py": BAD_HOOKS},
        version="0.1")


def test_check_plugin_passes_a_good_distribution(tmp_path, capsys):
    make_good(tmp_path)
    with on_sys_path(tmp_path):
        assert check_plugin("sce-good") == []
        assert check_plugin("SCE_Good") == []  # any spelling of the distribution name
        assert main(["plugin", "validate", "sce-good"]) == 0
    assert "sce-good: every entry point passes" in capsys.readouterr().out


def test_check_plugin_lists_every_problem_of_a_bad_distribution(tmp_path, capsys):
    make_bad(tmp_path)
    with on_sys_path(tmp_path):
        problems = check_plugin("sce-bad")
    with on_sys_path(tmp_path):  # fresh registries and modules: the CLI sees the same
        code = main(["plugin", "validate", "sce-bad"])
    by_name = {}
    for p in problems[:-1]:  # the last one is about the whole distribution
        by_name.setdefault(p.split(" ", 1)[0], []).append(p.split(": ", 1)[1])
    assert by_name["trunks/no_doc"] == ["no docstring (`sce info` shows it to users)"]
    assert by_name["trunks/wrong_shape"] == [
        "trunk maps (2, 3, 4, 32, 32) to (2, 5), expected (2, 4) = (B, num_features)"]
    assert by_name["trunks/no_features"] == [
        "trunk has no positive integer `num_features` attribute (the feature size D)"]
    assert by_name["trunks/reserved"] == [
        "reserved parameter names ['_scale_'] (the `_x_` form is kept for config keys)"]
    assert by_name["trunks/small_3d_cnn"][0] == (
        "'small_3d_cnn' is a built-in trunk name; the plugin's one is reachable only as "
        "'sce-bad:small_3d_cnn' (rename it)")
    assert by_name["trunks/missing"][0].startswith("could not import trunk 'missing' from sce-bad 0.1")
    assert by_name["losses/vector_loss"] == ["loss(q, k) must return a finite scalar tensor"]
    assert by_name["clip_samplers/bare_sampler"] == [
        "clip sampler lacks ['list_input', 'multi_sample', 'group'], which video_dataset reads; "
        "subclass sce_builtins.data.clip_samplers.ClipSampler"]
    assert by_name["heads/undocumented"] == [
        "docstring has no `Args:` section for its parameters ['input_dim']"]
    assert by_name["hooks/bad"] == [
        "sce_callbacks is not decorated with @sce_core.hooks.hookimpl (pluggy ignores it)"]
    assert problems[-1] == ("importing the distribution registered heads/sneaky_head in-process "
                            "(sce_core.register at import time); declare entry points instead")
    assert len(problems) == 12
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("sce-bad: 12 problem(s):\n  - ")


def test_check_plugin_on_a_missing_or_disabled_distribution(tmp_path, monkeypatch):
    make_good(tmp_path)
    with on_sys_path(tmp_path):
        assert check_plugin("sce-nothing") == [
            "distribution 'sce-nothing' provides no sce entry points (is it installed? "
            "re-install after editing entry points)"]
    monkeypatch.setenv("SCE_DISABLE_PLUGINS", "sce-good")
    with on_sys_path(tmp_path):
        assert check_plugin("sce-good") == [
            "distribution 'sce-good' is disabled by SCE_DISABLE_PLUGINS; unset it to validate"]
