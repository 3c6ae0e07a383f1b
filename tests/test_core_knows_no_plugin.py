"""The core names no built-in: what the built-ins add (export, plot, protocols, the demo)
comes through the same entry points and hooks a third party uses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import sce_core

CORE = Path(sce_core.__file__).parent
SCE = shutil.which("sce")


def test_core_source_never_names_the_builtins():
    hits = [f"{path.relative_to(CORE.parent)}:{n}" for path in sorted(CORE.rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if "sce_builtins" in line]
    assert hits == []


def test_core_source_has_no_builtin_conventions():
    text = "\n".join(p.read_text() for p in sorted(CORE.rglob("*.py")))
    for word in ('"linear"', '"knn"', '"demo"', '"trunk."', "num_steps_per_epoch"):
        assert word not in text, word


def run(*args: str) -> subprocess.CompletedProcess[str]:
    assert SCE is not None, "the `sce` console script is not installed"
    return subprocess.run([SCE, *args], capture_output=True, text=True, timeout=120)


def test_export_and_plot_are_commands_of_the_builtins():
    proc = run("plugins")
    assert proc.returncode == 0, proc.stderr
    builtins = proc.stdout.split("sce-core 0.1.0  (built-ins)")[1]
    listed = next(line for line in builtins.splitlines() if line.strip().startswith("commands:"))
    assert {"data", "doctor", "export", "extract", "plot", "results"} <= {
        name.strip() for name in listed.split(":", 1)[1].split(",")}
    help_lines = run("--help").stdout
    assert "export    (command from sce-core)" in help_lines and "plot      (command from sce-core)" in help_lines


def test_export_and_plot_keep_their_command_line(tmp_path):
    proc = run("export", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: sce export [-h] [--force] checkpoint output")
    proc = run("plot", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: sce plot [-h] [--force] run_dir")
    proc = run("export", str(tmp_path / "missing.ckpt"), str(tmp_path / "trunk.pt"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"sce: error: checkpoint '{tmp_path / 'missing.ckpt'}' does not exist"]
    proc = run("plot", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(f"sce: error: no metrics.csv under '{tmp_path}'")


def test_any_callback_with_a_dirpath_writes_in_the_run_checkpoint_folder(tmp_path):
    from lightning.pytorch import Callback

    from sce_core.runner import build_callbacks
    from sce_core.testing import isolated_registries, tmp_component

    class Saver(Callback):
        """Writes files into a folder.

        Args:
            dirpath: the folder.
        """

        def __init__(self, dirpath: str | None = None) -> None:
            self.dirpath = dirpath

    class Other(Callback):
        """Takes no folder."""

    with isolated_registries(), tmp_component("callbacks", "saver", Saver), \
            tmp_component("callbacks", "other", Other):
        built = build_callbacks({"callbacks": {"a": "saver", "b": {"_name_": "saver", "dirpath": "best"},
                                               "c": {"_name_": "saver", "dirpath": "/abs"},
                                               "d": "other"}}, tmp_path)
    saver_dirs = [c.dirpath for c in built if isinstance(c, Saver)]
    assert saver_dirs == [str(tmp_path / "checkpoints"), str(tmp_path / "checkpoints" / "best"), "/abs"]
    assert "Other" in [type(c).__name__ for c in built]  # (the built-ins add RunPlots after it)
