"""The `sce` command: lazy listing (no torch, no plugin module), errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_plugins import make_plugins

PROBE = """
import sys, json
from sce_core.cli import main
code = main(sys.argv[1:])
heavy = [m for m in ("torch", "lightning", "acme_pkg.trunks", "broken_pkg.trunks", "sce_builtins.models")
         if m in sys.modules]
print("PROBE" + json.dumps({"code": code, "heavy": heavy}))
"""


def run_sce(args, tmp_path, extra_path=None, env=None):
    full_env = {**os.environ, "SCE_CACHE_DIR": str(tmp_path / "cache"), **(env or {})}
    if extra_path:
        full_env["PYTHONPATH"] = os.pathsep.join([str(extra_path), full_env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env=full_env, timeout=120)
    probe = [line for line in proc.stdout.splitlines() if line.startswith("PROBE")]
    result = json.loads(probe[-1][5:]) if probe else {"code": None, "heavy": None}
    return proc, result


@pytest.mark.parametrize("args", [["--help"], ["list"], ["plugins"], ["list", "trunks", "wide*"]])
def test_light_commands_import_neither_torch_nor_plugins(args, tmp_path):
    site = make_plugins(tmp_path / "site")
    if args == ["--help"]:
        proc = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom sce_core.cli import main\ntry:\n main(['--help'])\n"
             "except SystemExit: pass\nprint('torch' in sys.modules, 'acme_pkg' in sys.modules)"],
            capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip().endswith("False False"), proc.stdout + proc.stderr
        assert "pretrain" in proc.stdout
        return
    proc, result = run_sce(args, tmp_path, site)
    assert result["code"] == 0, proc.stderr
    assert result["heavy"] == [], result
    if args[0] == "list":
        assert "wide_trunk" in proc.stdout and "sce-acme 0.3.1" in proc.stdout


def test_list_json_shows_provider_and_version(tmp_path):
    proc, _ = run_sce(["list", "losses", "--json"], tmp_path, make_plugins(tmp_path / "site"))
    rows = json.loads(proc.stdout.split("PROBE")[0])
    assert {"kind": "losses", "name": "mse_loss", "provider": "sce-acme 0.3.1",
            "target": "acme_pkg.trunks:mse_loss", "status": "ok"} in rows


def test_broken_plugin_reported_once_then_detailed_in_plugins(tmp_path):
    site = make_plugins(tmp_path / "site")
    proc, result = run_sce(["info", "sce-broken:broken_trunk"], tmp_path, site)
    assert result["code"] == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("sce: error: could not import trunk 'broken_trunk' from sce-broken 0.0.1")
    assert sum("failed to load" in line for line in lines) == 1
    assert "Traceback" not in proc.stderr
    proc, result = run_sce(["plugins"], tmp_path, site)
    assert result["code"] == 0
    assert "trunks/broken_trunk from sce-broken 0.0.1" in proc.stdout
    assert "No module named 'not_a_real_module_xyz'" in proc.stdout
    assert "conflict" not in proc.stdout  # ambiguity is not a built-in conflict


def test_plugins_check_exit_code(tmp_path):
    proc, result = run_sce(["plugins", "--check"], tmp_path, make_plugins(tmp_path / "site"))
    assert result["code"] == 1 and "ModuleNotFoundError" in proc.stdout


def test_strict_mode_from_environment(tmp_path):
    proc, result = run_sce(["info", "sce-broken:broken_trunk"], tmp_path,
                           make_plugins(tmp_path / "site"), env={"SCE_STRICT_PLUGINS": "1"})
    assert result["code"] == 1 and "SCE_STRICT_PLUGINS=1 makes this fatal" in proc.stderr


def test_info_documents_a_component(tmp_path):
    proc, result = run_sce(["info", "sce-acme:wide_trunk"], tmp_path, make_plugins(tmp_path / "site"))
    assert result["code"] == 0, proc.stderr
    out = proc.stdout
    assert "trunk 'wide_trunk'" in out and "provider: sce-acme 0.3.1" in out
    assert "width: int = 8" in out and "A stand-in trunk" in out
    assert "_name_: wide_trunk" in out


def test_check_reports_problems_and_debug_shows_traceback(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("trainer:\n  gpus: -1\nmodle: {}\n")
    proc, result = run_sce(["check", str(cfg)], tmp_path)
    assert result["code"] == 1
    assert "trainer.gpus: unknown Trainer argument 'gpus': Lightning 2 uses `devices`" in proc.stderr
    assert "modle: unknown top-level section; did you mean 'model'?" in proc.stderr
    proc, result = run_sce(["--debug", "check", str(tmp_path / "missing.yaml")], tmp_path)
    assert "Traceback" in proc.stderr and "ConfigNotFoundError" in proc.stderr


def test_missing_config_is_one_line(tmp_path):
    proc, result = run_sce(["config", "show", "no_such_config"], tmp_path)
    assert result["code"] == 1
    assert proc.stderr.strip().splitlines() == [
        "sce: error: config 'no_such_config' is neither a file nor a shipped config "
        "(shipped configs: `sce config list`)"]


def test_an_error_every_rank_agreed_on_is_printed_once_and_others_name_their_rank(capsys):
    from sce_builtins.data.health import BadDataLimitError

    from sce_core.cli import _print_error

    agreed = BadDataLimitError("data: 4 bad samples over all ranks exceed max_bad_samples=3")
    for rank in (0, 1, 2):
        _print_error(agreed, rank)
    assert capsys.readouterr().err == f"sce: error: {agreed}\n"
    _print_error(ValueError("CUDA out of memory"), 1)
    assert capsys.readouterr().err == ("sce: error on rank 1: ValueError: CUDA out of memory\n"
                                       "sce: (run with --debug for the traceback)\n")
