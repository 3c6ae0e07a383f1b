"""What docs/plugins.md promises plugin authors, met the way a user meets it: the real `sce`
command in a subprocess, with fake installed distributions on PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sce_core.testing import fake_distribution

SCE = str(Path(sys.executable).with_name("sce"))
TRUNK = '''
class Wide:
    """A stand-in trunk.

    Args:
        width: features.
    """

    def __init__(self, width: int = 8) -> None:
        self.width = width
'''


def sce(*args: str, cache: Path, path: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run the installed `sce` command with its cache in ``cache`` and ``path`` importable."""
    full = {k: v for k, v in os.environ.items() if k != "SCE_STRICT_PLUGINS"}
    full.update({"SCE_CACHE_DIR": str(cache), **(env or {})})
    if path is not None:
        full["PYTHONPATH"] = os.pathsep.join([str(path), full.get("PYTHONPATH", "")])
    return subprocess.run([SCE, *args], capture_output=True, text=True, env=full, timeout=300)


def broken_dist(root: Path, source: str = "import not_a_real_module_xyz\n") -> Path:
    return fake_distribution(
        root, "sce-flaky", {"sce.trunks": {"flaky_trunk": "flaky_pkg.trunks:Wide"}},
        {"flaky_pkg/__init__.py": "", "flaky_pkg/trunks.py": source}, version="0.1")


# -- 1. `sce plugins`: conflicts, current failures, `sce list` status ----------------------
def test_plugins_lists_a_conflict_with_a_builtin_name(tmp_path):
    site = fake_distribution(tmp_path / "site", "sce-evil",
                             {"sce.trunks": {"small_3d_cnn": "evil_pkg.trunks:Wide"}},
                             {"evil_pkg/__init__.py": "", "evil_pkg/trunks.py": TRUNK})
    out = sce("plugins", cache=tmp_path / "c", path=site).stdout
    assert ("conflict: trunks: 'small_3d_cnn' is a built-in name; sce-evil cannot take it "
            "(still reachable as 'sce-evil:small_3d_cnn')") in out
    rows = sce("list", "trunks", "small_3d_cnn", cache=tmp_path / "c", path=site).stdout
    assert "sce-evil 1.0    conflict (use sce-evil:small_3d_cnn)" in rows
    assert "sce-core 0.1.0  ok" in rows


def test_failure_is_forgotten_after_a_fix_and_reinstall(tmp_path):
    site, cache = broken_dist(tmp_path / "site"), tmp_path / "c"
    assert sce("info", "flaky_trunk", cache=cache, path=site).returncode == 1
    listing = sce("list", "trunks", "flaky", cache=cache, path=site)
    assert "flaky_trunk  sce-flaky 0.1  failed" in listing.stdout
    assert "1 plugin component(s) failed to load (sce-flaky)" in listing.stderr
    assert "not_a_real_module_xyz" in sce("plugins", cache=cache, path=site).stdout
    broken_dist(site, TRUNK)  # the fix, then the re-install rewrites the metadata
    out = sce("plugins", cache=cache, path=site)
    assert "no load failures" in out.stdout and "failed to load" not in out.stderr
    assert "flaky_trunk  sce-flaky 0.1  ok" in sce("list", "trunks", "flaky", cache=cache,
                                                    path=site).stdout


def test_failure_of_a_folder_no_longer_on_sys_path_is_not_shown(tmp_path):
    site, cache = broken_dist(tmp_path / "site"), tmp_path / "c"
    sce("info", "flaky_trunk", cache=cache, path=site)
    out = sce("plugins", cache=cache)
    assert "flaky" not in out.stdout and "failed to load" not in out.stderr


# -- 2. strict mode and the one-line notice ------------------------------------------------
HOOKS = '''
from sce_core.hooks import hookimpl


@hookimpl
def sce_validate_config(config):
    return []
'''


def hooked_broken_dist(root: Path) -> Path:
    """A distribution with a working hook module and a trunk module that fails to import."""
    return fake_distribution(
        root, "sce-flaky", {"sce.trunks": {"flaky_trunk": "flaky_pkg.trunks:Wide"},
                            "sce.hooks": {"checks": "flaky_pkg.hooks"}},
        {"flaky_pkg/__init__.py": "", "flaky_pkg/trunks.py": "import not_a_real_module_xyz\n",
         "flaky_pkg/hooks.py": HOOKS}, version="0.1")


def test_strict_mode_fails_on_a_broken_module_of_a_plugin_the_command_touched(tmp_path):
    site, cache = hooked_broken_dist(tmp_path / "site"), tmp_path / "c"
    lenient = sce("check", "demo", cache=cache, path=site)
    assert lenient.returncode == 0, lenient.stderr
    strict = sce("check", "demo", cache=cache, path=site, env={"SCE_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1
    assert strict.stderr.startswith(
        "sce: error: could not import trunk 'flaky_trunk' from sce-flaky 0.1 "
        "(flaky_pkg.trunks:Wide): ModuleNotFoundError: No module named 'not_a_real_module_xyz' "
        "(SCE_STRICT_PLUGINS=1 makes this fatal; unset it or set SCE_DISABLE_PLUGINS=sce-flaky")
    assert "Traceback" not in strict.stderr


def test_every_command_prints_the_notice_once_a_failure_is_known(tmp_path):
    site, cache = hooked_broken_dist(tmp_path / "site"), tmp_path / "c"
    sce("info", "flaky_trunk", cache=cache, path=site)
    notice = "sce: 1 plugin component(s) failed to load (sce-flaky); run `sce plugins` for details"
    for args in (["check", "demo"], ["config", "list"], ["plugins"], ["list", "losses"]):
        proc = sce(*args, cache=cache, path=site)
        assert proc.returncode == 0 and proc.stderr.strip().splitlines() == [notice], (args, proc)


# -- 3. `sce plugin validate` and the contract checks at the start of a run --------------
COMPONENTS = '''
import torch


class Untyped(torch.nn.Module):
    """A trunk whose parameter has no type hint.

    Args:
        mlp_ratio: width multiplier.
    """

    def __init__(self, mlp_ratio=4.0) -> None:
        super().__init__()
        self.num_features = 8
        self.mlp_ratio = float(mlp_ratio)

    def forward(self, x):
        return x.flatten(1)[:, :8]


class NeedsWidth(torch.nn.Module):
    """A trunk that needs its width.

    Args:
        width: features.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.num_features = width

    def forward(self, x):
        return x.flatten(1)[:, :self.num_features]


class NeedsMissingModule(torch.nn.Module):
    """A trunk whose constructor imports a module that is not installed."""

    def __init__(self) -> None:
        super().__init__()
        import swin_backbone_xyz  # noqa: F401


class WrongShape(torch.nn.Module):
    """A trunk whose output is not (B, num_features)."""

    def __init__(self) -> None:
        super().__init__()
        self.num_features = 16

    def forward(self, x):
        return x.flatten(1)[:, :7]


class WrongFeatures(torch.nn.Module):
    """A trunk that says it has 64 features and gives 32."""

    def __init__(self) -> None:
        super().__init__()
        self.num_features = 64
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.scale * x.mean(dim=tuple(range(2, x.ndim))).repeat(1, 11)[:, :32]


def vector_loss():
    """A loss that forgets to reduce: it returns one value per row."""
    return lambda q, k, queue=None, k_global=None: (q * k).sum(1)
'''


def contract_dist(root: Path) -> Path:
    return fake_distribution(
        root, "sce-contracts",
        {"sce.trunks": {"untyped_trunk": "contract_pkg.parts:Untyped",
                        "needs_width": "contract_pkg.parts:NeedsWidth",
                        "needs_missing": "contract_pkg.parts:NeedsMissingModule",
                        "wrong_shape": "contract_pkg.parts:WrongShape",
                        "wrong_features": "contract_pkg.parts:WrongFeatures"},
         "sce.losses": {"vector_loss": "contract_pkg.parts:vector_loss"}},
        {"contract_pkg/__init__.py": "", "contract_pkg/parts.py": COMPONENTS}, version="0.2")


def test_validate_requires_type_hints_says_what_was_not_smoke_tested_and_names_missing_modules(
        tmp_path):
    site = contract_dist(tmp_path / "site")
    proc = sce("plugin", "validate", "sce-contracts", cache=tmp_path / "c", path=site)
    assert proc.returncode == 1
    assert ("trunks/untyped_trunk (contract_pkg.parts:Untyped): parameters without a type hint "
            "['mlp_ratio']") in proc.stderr
    assert ("note: trunks/needs_width (contract_pkg.parts:NeedsWidth): not built nor smoke-tested: "
            "['width'] have no default") in proc.stdout
    assert ("trunks/needs_missing (contract_pkg.parts:NeedsMissingModule): building with defaults "
            "failed: ModuleNotFoundError: No module named 'swin_backbone_xyz'") in proc.stderr
    assert "wrong_shape" in proc.stderr and "wrong_features" in proc.stderr
    assert "losses/vector_loss" in proc.stderr and "every entry point passes" not in proc.stdout


def run_with(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    from tiny_demo import TINY

    site = contract_dist(tmp_path / "site")
    return sce("pretrain", "demo", *TINY, f"dir.root={tmp_path / 'runs'}", *overrides,
               cache=Path(os.environ["SCE_CACHE_DIR"]), path=site)


def test_a_run_checks_the_trunk_and_loss_contracts_before_its_folder_exists(cache, tmp_path):
    for override, message in [
        ("model.trunk._name_=wrong_shape", "model.trunk: trunk 'wrong_shape' from sce-contracts "
         "0.2 breaks the trunks contract: trunk maps (2, 3, 4, 32, 32) to (2, 7), expected "
         "(2, 16) = (B, num_features)"),
        ("model.trunk._name_=wrong_features", "model.trunk: trunk 'wrong_features' from "
         "sce-contracts 0.2 breaks the trunks contract: trunk maps (2, 3, 4, 32, 32) to (2, 32), "
         "expected (2, 64)"),
        ("model.loss=vector_loss", "model.loss: loss 'vector_loss' from sce-contracts 0.2 breaks "
         "the losses contract: loss(q, k) must return a finite scalar tensor"),
        ("model.trunk._name_=needs_missing", "model.trunk: building trunk 'needs_missing' from "
         "sce-contracts 0.2 failed: ModuleNotFoundError: No module named 'swin_backbone_xyz'; "
         "install it (a dependency of sce-contracts)"),
    ]:
        proc = run_with(tmp_path, override)
        assert proc.returncode == 1, (override, proc.stderr[-2000:])
        errors = [line for line in proc.stderr.splitlines() if line.startswith("sce: error:")]
        assert errors[0].startswith(f"sce: error: {message}"), (override, proc.stderr[-2000:])
        assert not (tmp_path / "runs").exists(), override


# -- 4. a hook that raises is isolated and named ------------------------------------------
RAISING_HOOKS = '''
from sce_core.hooks import hookimpl


@hookimpl
def sce_validate_config(config):
    return [] if config["modle"] else []
'''


def test_a_raising_hook_is_named_and_fatal_only_in_strict_mode(tmp_path):
    site = fake_distribution(tmp_path / "site", "sce-foo", {"sce.hooks": {"hooks": "foo_pkg.hooks"}},
                             {"foo_pkg/__init__.py": "", "foo_pkg/hooks.py": RAISING_HOOKS})
    what = "hook sce_validate_config of sce-foo:hooks raised KeyError: 'modle'"
    lenient = sce("check", "demo", cache=tmp_path / "c", path=site)
    assert lenient.returncode == 0 and "config OK" in lenient.stdout
    assert lenient.stderr.splitlines() == [
        f"sce: warning: {what}; ignored (fix the hook, or set SCE_STRICT_PLUGINS=1 to make it "
        f"fatal)"]
    strict = sce("check", "demo", cache=tmp_path / "c", path=site, env={"SCE_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1
    assert strict.stderr.splitlines()[0] == (
        f"sce: error: {what} (SCE_STRICT_PLUGINS=1 makes this fatal; fix the hook or set "
        f"SCE_DISABLE_PLUGINS=sce-foo)")


# -- 5. shipped config names: collisions reported, `dist:name`, nested folders packaged -----
def config_dist(root: Path, dist: str, package: str, configs: dict[str, str]) -> Path:
    modules = {f"{package}/__init__.py": "", f"{package}/configs/__init__.py":
               "raise RuntimeError('listing configs must not import this package')\n"}
    modules.update({f"{package}/configs/{name}.yaml": text for name, text in configs.items()})
    return fake_distribution(root, dist, {"sce.configs": {package: f"{package}.configs"}}, modules)


def test_config_name_collisions_are_reported_and_dist_name_picks_one(tmp_path):
    site = tmp_path / "site"
    config_dist(site, "sce-aaa", "aaa_pkg", {"acme_demo": "notes: from aaa\n"})
    config_dist(site, "sce-bbb", "bbb_pkg", {"acme_demo": "notes: from bbb\n",
                                              "demo": "notes: not the built-in demo\n"})
    cache = tmp_path / "c"
    listing = sce("config", "list", cache=cache, path=site).stdout
    assert "  conflict: also shipped by sce-bbb" in listing and "write 'sce-bbb:demo'" in listing
    plugins = sce("plugins", cache=cache, path=site)
    assert ("conflict: configs: 'acme_demo' is shipped by sce-aaa and sce-bbb; the bare name is "
            "ambiguous; write 'sce-aaa:acme_demo' or 'sce-bbb:acme_demo'") in plugins.stdout
    assert ("conflict: configs: 'demo' is shipped by sce-core and sce-bbb; the bare name means "
            "sce-core's; write 'sce-bbb:demo'") in plugins.stdout
    ambiguous = sce("config", "show", "acme_demo", cache=cache, path=site)
    assert ambiguous.returncode == 1 and ambiguous.stderr.startswith(
        "sce: error: config 'acme_demo' is shipped by several distributions; write "
        "'sce-aaa:acme_demo' and 'sce-bbb:acme_demo'"[:70])
    assert sce("config", "show", "sce-bbb:acme_demo", cache=cache, path=site).stdout == \
        "notes: from bbb\n"
    assert "datamodule" in sce("config", "show", "demo", cache=cache, path=site).stdout


def test_the_docs_packaging_snippet_ships_nested_config_folders(tmp_path):
    import re
    import zipfile

    guide = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    toml = re.search(r"```toml\n(\[project\]\nname = \"sce-acme\".*?)```", guide, re.S).group(1)
    project = tmp_path / "sce-acme"
    (project / "sce_acme" / "configs" / "parts").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n\n'
        + toml)
    for rel in ("__init__.py", "trunks.py", "configs/__init__.py"):
        (project / "sce_acme" / rel).write_text("")
    (project / "sce_acme" / "configs" / "acme_demo.yaml").write_text("defaults:\n  - parts/x\n")
    (project / "sce_acme" / "configs" / "parts" / "x.yaml").write_text("notes: part\n")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(project)], check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sce_acme/configs/acme_demo.yaml" in names
    assert "sce_acme/configs/parts/x.yaml" in names


# -- 7. the helper types plugin authors need; `sce info X | head` ---------------------------
API_PAGE = Path(__file__).parents[1] / "docs" / "api.md"


def test_the_api_page_lists_importable_names_each_from_one_module():
    import dataclasses
    import importlib
    import inspect
    import re

    text = API_PAGE.read_text()
    rows = re.findall(r"^\| `from ([\w.]+) import ([^`]+)` \|", text, re.M)
    assert len(rows) >= 7
    for module_name, names in rows:
        module = importlib.import_module(module_name)
        for name in [n.strip() for n in names.split(",") if n.strip() != "..."]:
            assert name in module.__all__, (module_name, name)
    from sce_builtins.data import types
    from sce_builtins.data.clip_samplers import ClipSampler

    for cls in (types.VideoRecord, types.ClipWindow, types.DecodedClip):
        for f in dataclasses.fields(cls):
            assert re.search(rf"^    {f.name}: ", text, re.M), (cls.__name__, f.name)
    for method in ("duration", "decode"):
        params = list(inspect.signature(getattr(types.VideoDecoder, method)).parameters)
        assert f"def {method}(self, {params[1]}: " in text
    assert list(inspect.signature(ClipSampler.__init__).parameters) == ["self", "clip_duration"]
    assert "def __init__(self, clip_duration: float) -> None" in text


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    env = {**os.environ, "SCE_CACHE_DIR": str(tmp_path / "c")}
    proc = subprocess.run(f"'{SCE}' info sce | head -1", shell=True, capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.stdout.startswith("model 'sce'")
    assert proc.stderr == ""


# -- 6. logged values come from the component they belong to -------------------------------
class CosineLoss:
    """A plugin loss with nothing of the SCE loss's coeff, temp or temp_m."""

    def __call__(self, q, k, queue=None, k_global=None):
        return 2 - 2 * (q * k).sum(1).mean()


def test_the_sce_loss_logs_its_own_values_and_a_plugin_loss_none_of_them(tmp_path):
    from test_sce_model import loader, make_model, trainer

    logged = {}
    for name, loss in (("sce", None), ("plugin", CosineLoss())):
        fit = trainer(tmp_path / name, max_epochs=1)
        fit.fit(make_model(loss=loss, coeff=0.4, temp=0.2), loader(8))
        logged[name] = {k: float(v) for k, v in fit.callback_metrics.items()}
    assert logged["sce"]["pretrain/coeff"] == pytest.approx(0.4)
    assert logged["sce"]["pretrain/temp"] == pytest.approx(0.2)
    assert "pretrain/temp_m" in logged["sce"]
    assert "pretrain/loss" in logged["plugin"]
    assert not {"pretrain/coeff", "pretrain/temp", "pretrain/temp_m"} & set(logged["plugin"])


# -- 8. a second example plugin: a loss, a sampler and a hook, through the real command -----
SECOND = Path(__file__).parent / "data" / "sce_second_plugin"


def second_plugin(root: Path) -> Path:
    """tests/data/sce_second_plugin as an installed distribution named sce-second."""
    modules = {p.relative_to(SECOND).as_posix(): p.read_text()
               for p in SECOND.glob("sce_second/*.py")}
    return fake_distribution(
        root, "sce-second", {"sce.losses": {"cosine_pair_loss": "sce_second.losses:CosinePairLoss"},
                             "sce.clip_samplers": {"near_pair": "sce_second.samplers:NearPairSampler"},
                             "sce.hooks": {"hooks": "sce_second.hooks"}},
        modules, version="0.3")


def test_a_second_plugin_validates_checks_configs_and_trains(cache, tmp_path):
    from tiny_demo import TINY

    site, report = second_plugin(tmp_path / "site"), tmp_path / "report.json"
    validate = sce("plugin", "validate", "sce-second", cache=cache, path=site,
                   env={"SCE_STRICT_PLUGINS": "1"})
    assert validate.returncode == 0, validate.stderr
    assert "sce-second: every entry point passes" in validate.stdout
    sampler = "datamodule.train.clip_sampler={_name_: near_pair, clip_duration: 1.0, max_gap: %s}"
    too_far = sce("check", "demo", *TINY, sampler % 5.0, cache=cache, path=site)
    assert too_far.returncode == 1
    assert ("datamodule.train.clip_sampler.max_gap: a clip and the gap need 6.0 s but the "
            "synthetic videos last 3.0 s") in too_far.stderr
    run = sce("pretrain", "demo", *TINY, sampler % 0.5, "model.loss=cosine_pair_loss",
              "trainer.max_epochs=1", f"dir.root={tmp_path / 'runs'}", cache=cache, path=site,
              env={"SCE_STRICT_PLUGINS": "1", "SCE_SECOND_REPORT": str(report)})
    assert run.returncode == 0, run.stderr[-3000:]
    used = json.loads(report.read_text())
    assert used["loss_type"] == "CosinePairLoss" and used["loss_calls"] > 0
    assert used["sampler_calls"] >= 24  # every training video of the tiny demo, once
    assert "pretrain/loss" in used["logged"]
    assert not {"pretrain/coeff", "pretrain/temp", "pretrain/temp_m"} & set(used["logged"])
