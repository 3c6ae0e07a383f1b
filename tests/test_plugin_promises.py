"""What docs/plugins.md promises plugin authors, met the way a user meets it: the real `sce`
command in a subprocess, with fake installed distributions on PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
