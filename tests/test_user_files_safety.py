"""Nothing of the user's is overwritten or deleted: the real `sce` command on real folders.

Each refusal is one line on stderr, exit status 1, naming the path (and ``--force`` where the
command has it); the user's files are byte for byte unchanged afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sce_builtins.tools import synth

SYNTH_TINY = ["--num-classes", "2", "--train-per-class", "1", "--val-per-class", "1",
              "--frames", "3", "--size", "16", "--formats", "frames", "--no-progress"]
SYNTH_PARAMS = dict(num_classes=2, train_per_class=1, val_per_class=1, frames=3, size=16,
                    formats=["frames"])


def sce(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sce_core.cli ARGS`` and return the finished process."""
    return subprocess.run([sys.executable, "-m", "sce_core.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), folders included as ``b"<dir>"``."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))}


def user_frame_dataset(root: Path) -> Path:
    """A user's frame dataset whose top-level names are those of a synthetic set."""
    for split in ("train", "val"):
        video = root / split / "cat" / "clip_001"
        video.mkdir(parents=True)
        (video / "00000001.jpg").write_bytes(b"\xff\xd8 user frame " + split.encode())
        (root / f"{split}.csv").write_text("cat/clip_001 0 1\n")
    return root


def assert_one_line_refusal(proc: subprocess.CompletedProcess[str], path: Path, *words: str):
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


# -- sce data synth and the demo ---------------------------------------------------------------
def test_synth_keeps_a_user_frame_dataset(tmp_path):
    data = user_frame_dataset(tmp_path / "D")
    before = snapshot(data)
    proc = sce("data", "synth", data, *SYNTH_TINY)
    assert_one_line_refusal(proc, data, "--force", synth.OWNER_MARKER)
    assert snapshot(data) == before


def test_demo_keeps_a_user_frame_dataset(tmp_path):
    data = user_frame_dataset(tmp_path / "D")
    before = snapshot(data)
    proc = sce("pretrain", "demo", f"dir.data={data}", f"dir.root={tmp_path / 'runs'}",
               "trainer.max_epochs=1", "datamodule.synthetic.num_classes=2",
               "datamodule.synthetic.train_per_class=1", "datamodule.synthetic.val_per_class=1",
               "datamodule.synthetic.frames=8", "datamodule.synthetic.size=16")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sce: error")]
    assert len(errors) == 1 and str(data) in errors[0] and "delete it yourself" in errors[0]
    assert snapshot(data) == before


def test_synth_force_replaces_only_dataset_like_folders(tmp_path):
    data = user_frame_dataset(tmp_path / "D")
    proc = sce("data", "synth", data, *SYNTH_TINY, "--force")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((data / synth.OWNER_MARKER).read_text())["created_by"] == "sce data synth"
    assert (data / "train.csv").read_text() == "digit_0/video_00000 0 3\ndigit_1/video_00000 1 3\n"
    assert not (data / "train" / "cat").exists()
    # a folder with any other name is refused even with --force
    other = user_frame_dataset(tmp_path / "E")
    (other / "notes.txt").write_text("keep me")
    before = snapshot(other)
    proc = sce("data", "synth", other, *SYNTH_TINY, "--force")
    assert_one_line_refusal(proc, other, "notes.txt")
    assert snapshot(other) == before


def test_synth_regenerates_its_own_folder_only(tmp_path):
    data = tmp_path / "D"
    assert sce("data", "synth", data, *SYNTH_TINY).returncode == 0
    assert (data / "train.csv").read_text().splitlines()[0] == "digit_0/video_00000 0 3"
    # other parameters (4 frames): its own folder (marker) is regenerated
    proc = sce("data", "synth", data, *SYNTH_TINY, "--frames", "4")
    assert proc.returncode == 0, proc.stderr
    assert (data / "train.csv").read_text().splitlines()[0] == "digit_0/video_00000 0 4"
    # the same folder without the marker is no longer trusted
    (data / synth.OWNER_MARKER).unlink()
    before = snapshot(data)
    proc = sce("data", "synth", data, *SYNTH_TINY)
    assert_one_line_refusal(proc, data, "--force")
    assert snapshot(data) == before


def test_synth_reuses_a_finished_cache_of_an_older_version(tmp_path):
    data = synth.make_synthetic_dataset(tmp_path / "D", **SYNTH_PARAMS)
    (data / synth.OWNER_MARKER).unlink()  # what an older sce-core left
    before = snapshot(data)
    assert synth.make_synthetic_dataset(data, **SYNTH_PARAMS) == data
    assert snapshot(data) == before
    with pytest.raises(synth.OutputExistsError, match="delete it yourself"):
        synth.make_synthetic_dataset(data, **{**SYNTH_PARAMS, "frames": 4})
    assert snapshot(data) == before


def test_synth_uses_an_empty_folder_and_keeps_foreign_partials(tmp_path):
    data = tmp_path / "D"
    data.mkdir()
    # a folder named like a dead process's temporary folder, but not made by sce
    foreign = tmp_path / f"{synth._partial_prefix(data)}999999999-x"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    synth.make_synthetic_dataset(data, **SYNTH_PARAMS)
    assert (data / synth.OWNER_MARKER).is_file() and (data / "train.csv").is_file()
    assert (foreign / "mine.txt").read_text() == "keep"
