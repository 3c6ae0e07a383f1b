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

import numpy as np
import pytest
import torch
from sce_builtins.tools import frames as frames_tool
from sce_builtins.tools import synth
from sce_builtins.tools.export import export_trunk

from sce_core.errors import SCEError
from sce_core.run_callbacks import CONFIG_KEY

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
               "trainer.max_epochs=1", "model.optimizer.scheduler.params.warmup_epochs=1",
               "datamodule.synthetic.num_classes=2",
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


# -- sce export ----------------------------------------------------------------------------------
def fake_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint file of the shape ``sce pretrain`` writes: trunk weights + the run config."""
    weights = {"conv.weight": torch.arange(6.0).reshape(2, 3), "conv.bias": torch.tensor([1.5, -2.0])}
    state = {f"trunk.{k}": v for k, v in weights.items()}
    state["head.weight"] = torch.zeros(2)
    config = {"model": {"trunk": {"_name_": "small_3d_cnn", "_provider_": "sce-core==0.1.0"}}}
    torch.save({"state_dict": state, CONFIG_KEY: config}, path)
    return weights


def test_export_refuses_existing_out_and_yaml_unless_force(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    weights = fake_checkpoint(ckpt)
    out, yaml = tmp_path / "trunk.pt", tmp_path / "trunk.yaml"
    out.write_bytes(b"my earlier export")
    proc = sce("export", ckpt, out)
    assert_one_line_refusal(proc, out, "--force")
    assert out.read_bytes() == b"my earlier export" and not yaml.exists()
    out.unlink()
    yaml.write_text("my: config\n")
    with pytest.raises(SCEError, match=f"{yaml} already exists; .* --force"):
        export_trunk(ckpt, out)
    assert yaml.read_text() == "my: config\n" and not out.exists()
    proc = sce("export", ckpt, out, "--force")
    assert proc.returncode == 0, proc.stderr
    got = torch.load(out, weights_only=True)
    assert got.keys() == weights.keys() and all(torch.equal(got[k], weights[k]) for k in got)
    assert "_name_: small_3d_cnn" in yaml.read_text() and f"pretrained: {out}" in yaml.read_text()


def test_export_never_replaces_its_input_or_writes_yaml(tmp_path):
    (tmp_path / "sub").mkdir()
    ckpt = tmp_path / "last.ckpt"
    fake_checkpoint(ckpt)
    before = ckpt.read_bytes()
    proc = sce("export", ckpt, ckpt, "--force")
    assert_one_line_refusal(proc, ckpt, "input checkpoint")
    proc = sce("export", ckpt, tmp_path / "trunk.yaml", "--force")
    assert_one_line_refusal(proc, tmp_path / "trunk.yaml", "trunk.pt")
    assert not (tmp_path / "trunk.yaml").exists()
    # the same file under other names, or as the sibling <stem>.yaml (same check, in-process)
    link = tmp_path / "link.ckpt"
    link.symlink_to(ckpt)
    for out in (tmp_path / "sub" / ".." / "last.ckpt", link):
        with pytest.raises(SCEError, match="is the input checkpoint"):
            export_trunk(ckpt, out, force=True)
    odd = tmp_path / "weights.yaml"
    odd.write_bytes(before)
    with pytest.raises(SCEError, match="weights.yaml' is the input checkpoint"):
        export_trunk(odd, tmp_path / "weights.pt", force=True)
    assert odd.read_bytes() == before and not (tmp_path / "weights.pt").exists()
    with pytest.raises(SCEError, match="ends in .YML"):
        export_trunk(ckpt, tmp_path / "trunk.YML", force=True)
    assert ckpt.read_bytes() == before


# -- sce plot ------------------------------------------------------------------------------------
def test_plot_refuses_existing_pngs_unless_force(tmp_path):
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "metrics.csv").write_text(
        "epoch,step,pretrain/loss,pretrain/lr\n0,1,2.5,0.1\n0,2,2.0,0.2\n")
    (run / "plots").mkdir()
    (run / "plots" / "loss.png").write_bytes(b"my annotated figure")
    proc = sce("plot", run)
    assert_one_line_refusal(proc, run / "plots" / "loss.png", "--force")
    assert (run / "plots" / "loss.png").read_bytes() == b"my annotated figure"
    assert sorted(os.listdir(run / "plots")) == ["loss.png"]  # nothing written before refusing
    proc = sce("plot", run, "--force")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(run / "plots")) == ["loss.png", "lr.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in (run / "plots").iterdir())
    # its own earlier output is kept too: a second plain run refuses
    assert_one_line_refusal(sce("plot", run), run / "plots" / "loss.png", "--force")


# -- sce data index / frames ---------------------------------------------------------------------
def test_index_refuses_existing_csv_unless_force(tmp_path):
    split = tmp_path / "train"
    (split / "cat" / "v1").mkdir(parents=True)
    (split / "cat" / "v1" / "00000001.jpg").write_bytes(b"")
    out = tmp_path / "train.csv"
    out.write_text("my hand-made annotations\n")
    proc = sce("data", "index", split, out)
    assert_one_line_refusal(proc, out, "--force")
    assert out.read_text() == "my hand-made annotations\n"
    assert sce("data", "index", split, out, "--force").returncode == 0
    assert out.read_text() == "cat/v1 0 1\n"


@pytest.fixture
def one_video(tmp_path) -> Path:
    videos = tmp_path / "videos"
    (videos / "cat").mkdir(parents=True)
    frames = np.zeros((4, 16, 16, 3), np.uint8) + np.arange(4, dtype=np.uint8)[:, None, None, None] * 60
    synth.write_mp4(videos / "cat" / "clip.mp4", frames, fps=4)
    return videos


def test_frames_resumes_its_own_folder_and_refuses_others(one_video, tmp_path):
    args = ["--fps", "4", "--short-side", "0", "--workers", "1", "--no-progress"]
    out = tmp_path / "frames"
    proc = sce("data", "frames", one_video, out, *args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / frames_tool.MARKER).read_text())["fps"] == 4.0
    assert sorted(os.listdir(out / "cat" / "clip")) == [f"{i:08d}.jpg" for i in range(1, 5)]
    proc = sce("data", "frames", one_video, out, *args)  # resumes: its own folder
    assert proc.returncode == 0 and "0 video(s), 1 already done" in proc.stdout
    proc = sce("data", "frames", one_video, out, *args[:-1], "--fps", "2", "--no-progress")
    assert_one_line_refusal(proc, out, "--force", "fps=4.0")
    # a user's folder: refused untouched; --force adds frames and keeps what is there
    mine = user_frame_dataset(tmp_path / "mine")
    (mine / "cat" / "clip").mkdir(parents=True)
    (mine / "cat" / "clip" / "00000001.jpg").write_bytes(b"user frame")
    before = snapshot(mine)
    proc = sce("data", "frames", one_video, mine, *args)
    assert_one_line_refusal(proc, mine, "--force", frames_tool.MARKER)
    assert snapshot(mine) == before
    proc = sce("data", "frames", one_video, mine, *args, "--force")
    assert proc.returncode == 0 and "0 video(s), 1 already done" in proc.stdout
    assert snapshot(mine) == before
