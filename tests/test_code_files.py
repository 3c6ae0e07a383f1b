"""`--code file.py`: components registered by a local file are usable by name."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_code_file_registers_component_for_check(tmp_path):
    code = tmp_path / "my_components.py"
    code.write_text(textwrap.dedent('''
        import sce_core


        @sce_core.register("losses", "my_local_loss")
        def my_local_loss(scale: float = 1.0):
            """A local loss."""
            return scale
    '''))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model:\n  _name_: sce\n  trunk: small_3d_cnn\n")
    ok = subprocess.run([sys.executable, "-m", "sce_core.cli", "info", "my_local_loss", "--code", str(code)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "loss 'my_local_loss'" in ok.stdout and "provider: local" in ok.stdout
    assert "scale: float = 1.0" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  _name_: my_local_loss\n")
    proc = subprocess.run([sys.executable, "-m", "sce_core.cli", "check", str(bad), "--code", str(code)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "'my_local_loss' is a loss, not a model" in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "sce_core.cli", "check", str(bad), "--code",
                              str(tmp_path / "nope.py")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "--code file" in missing.stderr and "does not exist" in missing.stderr
