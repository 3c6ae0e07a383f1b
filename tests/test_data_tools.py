"""Tests of the dataset preparation tools: ``sce data synth|frames|index`` (real files, tiny sizes)."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from sce_builtins.tools import data_cli, frames, index, synth
from sce_builtins.tools.synth import make_synthetic_dataset, render_video, write_mp4

TINY = dict(num_classes=3, train_per_class=2, val_per_class=1, frames=6, size=16, fps=8, seed=0)


def _jpeg(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


# --------------------------------------------------------------------------------------------
# synth
# --------------------------------------------------------------------------------------------
def test_render_video_places_digit_exactly():
    digit = np.arange(64, dtype=np.float32).reshape(8, 8) / 63.0
    # digit as large as the canvas, centred: canvas pixel centres coincide with the 8x8 pixels
    out = render_video(digit, np.zeros((1, 2)), size=8, digit_size=8)
    assert out.shape == (1, 8, 8)
    np.testing.assert_array_equal(out[0], np.rint(digit * 255).astype(np.uint8))
    # 2x upscale on a 16 canvas: pixel (y=0, x=0) samples the source at (-0.25, -0.25):
    # bilinear between the zero border and digit[0, 0] = 0 -> 0; pixel (1, 1) samples (0.25, 0.25)
    # = 0.75^2 d00 + 0.75*0.25 (d01 + d10) + 0.25^2 d11
    out = render_video(digit, np.zeros((1, 2)), size=16, digit_size=16)
    d = digit * 255
    expected = 0.5625 * d[0, 0] + 0.1875 * (d[0, 1] + d[1, 0]) + 0.0625 * d[1, 1]
    assert out[0, 1, 1] == round(expected)
    # a digit moved fully off-canvas to the right leaves the canvas black
    assert render_video(digit, np.array([[2.5, 0.0]]), size=8, digit_size=8).max() == 0


def test_reflect_bounces_into_range():
    x = np.array([0.0, 0.5, 1.2, -1.3, 2.5, 4.0])
    np.testing.assert_allclose(synth._reflect(x, 1.0), [0.0, 0.5, 0.8, -0.7, -0.5, 0.0], atol=1e-12)


def test_digit_split_is_fixed_and_disjoint():
    pools = synth._digit_pools(10)
    train = np.concatenate(pools["train"])
    val = np.concatenate(pools["val"])
    assert len(train) == 1000 and len(val) == 797
    assert not set(train.tolist()) & set(val.tolist())
    _, targets = synth._load_digits()
    for c in range(10):
        assert (targets[pools["train"][c]] == c).all() and (targets[pools["val"][c]] == c).all()


def test_synth_layout_and_csv(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", **TINY)
    assert root == tmp_path / "ds"
    expected_train = "".join(f"digit_{c}/video_{k:05d} {c} 6\n" for c in range(3) for k in range(2))
    assert (root / "train.csv").read_text() == expected_train
    assert (root / "val.csv").read_text() == "".join(
        f"digit_{c}/video_00000 {c} 6\n" for c in range(3)
    )
    assert (root / "videos" / "train.csv").read_text() == "".join(
        f"digit_{c}/video_{k:05d}.mp4 {c}\n" for c in range(3) for k in range(2)
    )
    assert sorted(os.listdir(root / "train" / "digit_1" / "video_00001")) == [
        f"{i:08d}.jpg" for i in range(1, 7)
    ]
    assert sorted(p.name for p in (root / "videos" / "val" / "digit_2").iterdir()) == [
        "video_00000.mp4"
    ]
    assert _jpeg(root / "val" / "digit_0" / "video_00000" / "00000003.jpg").shape == (16, 16, 3)
    marker = json.loads((root / synth.MARKER).read_text())
    assert (
        marker["seed"] == 0
        and marker["digit_size"] == 11
        and marker["formats"] == ["frames", "mp4"]
    )
    # the sorted class folders give the labels: the index tool agrees with the written CSV
    index.write_frame_index(root / "train", tmp_path / "check.csv")
    assert (tmp_path / "check.csv").read_text() == expected_train
    # no temporary folder left beside the dataset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.csv", "ds"]


def test_synth_video_shows_its_label_digit(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", **{**TINY, "size": 24}, formats=["frames"])
    images, targets = synth._load_digits()
    pools = synth._digit_pools(3)
    for split, c, k in [("train", 2, 1), ("val", 1, 0)]:
        digit_index = pools[split][c][k]
        assert targets[digit_index] == c
        rng = np.random.default_rng([0, synth._SPLIT_CODE[split], c, k])
        centres = synth._trajectory(rng, 6, 16 / 24, 0.15, 0.5)
        expected = render_video(images[digit_index], centres, 24, 16)
        got = np.stack(
            [
                _jpeg(root / split / f"digit_{c}" / f"video_{k:05d}" / f"{i:08d}.jpg")[..., 0]
                for i in range(1, 7)
            ]
        )
        assert np.abs(got.astype(int) - expected).mean() < 2.0  # JPEG q95 error only
        # and it differs clearly from the other classes' first digits drawn at the same places
        other = render_video(images[pools[split][(c + 1) % 3][0]], centres, 24, 16)
        assert np.abs(got.astype(int) - other).mean() > 10


def test_synth_deterministic_from_seed(tmp_path):
    a = _all_files(make_synthetic_dataset(tmp_path / "a", **TINY))
    b = _all_files(make_synthetic_dataset(tmp_path / "b", **TINY))
    c = _all_files(make_synthetic_dataset(tmp_path / "c", **{**TINY, "seed": 1}))
    assert a == b
    assert a.keys() == c.keys()
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert sum(a[k] != c[k] for k in jpgs) > len(jpgs) // 2


def test_synth_trajectory_moves_and_stays_on_canvas():
    rng = np.random.default_rng(5)
    centres = synth._trajectory(rng, 200, 0.5, 0.15, 0.5)
    assert np.abs(centres).max() <= 0.5 + 1e-12
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() <= 0.225 + 1e-9 and np.median(steps) > 0.05  # speed 0.15 x U(0.5, 1.5)
    # far-apart windows are not at the same place: the walk covers the canvas
    assert np.ptp(centres[:, 0]) > 0.5 and np.ptp(centres[:, 1]) > 0.5


def test_synth_mp4_readable_with_pyav(tmp_path):
    root = make_synthetic_dataset(tmp_path / "ds", **TINY)
    mp4 = root / "videos" / "train" / "digit_1" / "video_00000.mp4"
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 8
        decoded = [f for f in container.decode(stream)]
        times = [float(f.time) for f in decoded]
        rgb = [f.to_ndarray(format="rgb24") for f in decoded]
    assert len(decoded) == 6
    assert times == pytest.approx([i / 8 for i in range(6)])
    assert rgb[0].shape == (16, 16, 3)
    jpg = _jpeg(root / "train" / "digit_1" / "video_00000" / "00000004.jpg")
    assert np.abs(rgb[3].astype(int) - jpg.astype(int)).mean() < 6


def test_synth_idempotent_and_redoes_partial(tmp_path):
    out = tmp_path / "ds"
    make_synthetic_dataset(out, **TINY, formats=["frames"])
    probe = out / "train" / "digit_0" / "video_00000" / "00000001.jpg"
    stamp = probe.stat().st_mtime_ns
    make_synthetic_dataset(out, **TINY, formats=["frames"])
    assert probe.stat().st_mtime_ns == stamp  # nothing rewritten
    # an interrupted dataset (no marker, half the files) is regenerated completely
    (out / synth.MARKER).unlink()
    (out / "val.csv").unlink()
    probe.unlink()
    make_synthetic_dataset(out, **TINY, formats=["frames"])
    assert probe.exists() and (out / "val.csv").exists() and (out / synth.MARKER).exists()
    # other parameters: regenerated with them
    make_synthetic_dataset(out, **{**TINY, "frames": 4}, formats=["frames"])
    assert (out / "train.csv").read_text().splitlines()[0] == "digit_0/video_00000 0 4"
    assert len(os.listdir(probe.parent)) == 4
    # a stale temporary folder of a dead process is cleaned up
    stale = tmp_path / f"{synth._partial_prefix(out)}999999999-x"
    stale.mkdir()
    make_synthetic_dataset(out, **TINY, formats=["frames"])
    assert not stale.exists()


def test_synth_refuses_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    with pytest.raises(synth.OutputExistsError, match="not part of a synthetic dataset"):
        make_synthetic_dataset(out, **TINY)
    assert (out / "thesis.tex").read_text() == "keep me"


def test_synth_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be in 1..10"):
        make_synthetic_dataset("/nonexistent/x", **{**TINY, "num_classes": 11})
    with pytest.raises(ValueError, match="size must be even"):
        make_synthetic_dataset("/nonexistent/x", **{**TINY, "size": 15})
    with pytest.raises(ValueError, match="formats"):
        make_synthetic_dataset("/nonexistent/x", **TINY, formats=["gif"])


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------
def _level_video(path: Path, n: int = 30, fps: int = 15, width: int = 40, height: int = 24) -> None:
    """Video whose frame i is uniformly grey at level 8 i (identifiable after compression)."""
    write_mp4(path, np.stack([np.full((height, width, 3), 8 * i, np.uint8) for i in range(n)]), fps)


def _identify(folder: Path, source: list[np.ndarray]) -> list[int]:
    """Index of the source frame each extracted JPEG shows (nearest mean level)."""
    levels = np.array([f.mean() for f in source])
    files = sorted(folder.iterdir())
    return [int(np.abs(levels - _jpeg(f).mean()).argmin()) for f in files]


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / "in"
    (root / "class a").mkdir(parents=True)
    _level_video(root / "class a" / "clip 1.mp4")
    (root / "class a" / "notes.txt").write_text("not a video")
    return root


def test_output_size_short_side_even():
    assert frames.output_size(456, 256, 128) == (228, 128)
    assert frames.output_size(256, 341, 128) == (128, 170)  # 170.5 -> 170 (even)
    assert frames.output_size(40, 24, 12) == (20, 12)
    assert frames.output_size(640, 360, 0) == (640, 360)


def test_quality_mapping_values_and_derivation():
    assert [frames.ffmpeg_q_to_jpeg_quality(q) for q in (1, 2, 5, 31)] == [96, 92, 80, 16]
    with pytest.raises(ValueError, match="1..31"):
        frames.ffmpeg_q_to_jpeg_quality(0)
    # re-derive two entries: ffmpeg's mjpeg luminance table at -q:v q vs libjpeg's scaled table
    std = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])  # fmt: skip
    zigzag = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]  # fmt: skip

    def libjpeg(quality):
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality
        return np.clip((std * scale + 50) // 100, 1, 255)

    for q in (2, 5):
        ctx = av.CodecContext.create("mjpeg", "w")
        ctx.width = ctx.height = 16
        ctx.pix_fmt = "yuvj420p"
        ctx.time_base = Fraction(1, 30)
        ctx.qmin = ctx.qmax = q
        ctx.open()
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        data = b"".join(
            bytes(p) for p in ctx.encode(frame.reformat(format="yuvj420p")) + ctx.encode(None)
        )
        start = data.index(b"\xff\xdb") + 5  # DQT marker, length, table id
        table = np.zeros(64)
        table[zigzag] = np.frombuffer(data[start : start + 64], np.uint8)
        best = min(
            range(1, 101), key=lambda qq: np.sum((np.log(table[1:]) - np.log(libjpeg(qq)[1:])) ** 2)
        )
        assert best == frames.ffmpeg_q_to_jpeg_quality(q)


def test_extract_resamples_by_timestamps(videos, tmp_path):
    source = _decode_all(videos / "class a" / "clip 1.mp4")
    assert len(source) == 30  # 2 s at 15 fps
    report = frames.extract_frames(
        videos, tmp_path / "o30", fps=30, short_side=12, quality=2, workers=1, progress=False
    )
    assert (report.extracted, report.already_done, report.failed) == (1, 0, [])
    out = tmp_path / "o30" / "class a" / "clip 1"
    names = sorted(os.listdir(out))
    assert names == [f"{i:08d}.jpg" for i in range(1, 61)]  # round(2 s * 30)
    assert _identify(out, source) == [k // 2 for k in range(60)]  # ties go to the earlier frame
    assert _jpeg(out / names[0]).shape == (12, 20, 3)  # 40x24 -> short side 12, even width 20
    # down to 10 fps: output k at k/10 s = input 1.5 k; ties (odd k) to the earlier frame
    frames.extract_frames(
        videos, tmp_path / "o10", fps=10, short_side=0, quality=2, workers=1, progress=False
    )
    out = tmp_path / "o10" / "class a" / "clip 1"
    assert _identify(out, source) == [(3 * k) // 2 for k in range(20)]
    assert _jpeg(out / "00000001.jpg").shape == (24, 40, 3)
    # fps 0 keeps every frame
    frames.extract_frames(
        videos, tmp_path / "o0", fps=0, short_side=0, quality=2, workers=1, progress=False
    )
    assert _identify(tmp_path / "o0" / "class a" / "clip 1", source) == list(range(30))


def test_extract_is_resumable(videos, tmp_path):
    _level_video(videos / "class a" / "clip 2.mp4", n=10)
    out = tmp_path / "out"
    kw = dict(fps=15, short_side=0, quality=5, workers=1, progress=False)
    first = frames.extract_frames(videos, out, **kw)
    assert (first.extracted, first.already_done) == (2, 0)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    assert len(stamps) == 40
    second = frames.extract_frames(videos, out, **kw)
    assert (second.extracted, second.already_done, second.failed) == (0, 2, [])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == stamps
    # an interrupted video (partial folder, no final folder) is redone from scratch
    done = out / "class a" / "clip 2"
    partial = out / "class a" / ".clip 2.partial"
    done.rename(partial)
    (partial / "00000003.jpg").unlink()
    (partial / "junk.jpg").write_bytes(b"x")
    third = frames.extract_frames(videos, out, **kw)
    assert (third.extracted, third.already_done) == (1, 1)
    assert not partial.exists()
    assert sorted(os.listdir(done)) == [f"{i:08d}.jpg" for i in range(1, 11)]


def test_extract_reports_unreadable_and_runs_in_parallel(videos, tmp_path, capsys):
    (videos / "class b").mkdir()
    (videos / "class b" / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    _level_video(videos / "class b" / "ok.mp4", n=6)
    out = tmp_path / "out"
    rc = data_cli.main(
        [
            "frames",
            str(videos),
            str(out),
            "--fps",
            "15",
            "--short-side",
            "0",
            "--workers",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "extracted 2 video(s), 0 already done, 1 skipped" in captured.out
    assert "skipped 1 unreadable video(s):" in captured.err
    assert str(videos / "class b" / "broken.mp4") in captured.err
    assert len(os.listdir(out / "class b" / "ok")) == 6
    assert len(os.listdir(out / "class a" / "clip 1")) == 30
    assert sorted(os.listdir(out / "class b")) == ["ok"]  # no partial folder left for the bad one


# --------------------------------------------------------------------------------------------
# index
# --------------------------------------------------------------------------------------------
def _touch_frames(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        (folder / f"{i:08d}.jpg").write_bytes(b"")


def test_index_frames_with_spaces(tmp_path):
    split = tmp_path / "train"
    _touch_frames(split / "playing guitar" / "vid 01", 3)
    _touch_frames(split / "abseiling" / "x_1", 5)
    _touch_frames(split / "abseiling" / "a  two  spaces", 2)
    _touch_frames(split / "abseiling" / ".x_2.partial", 4)  # hidden: ignored
    (split / "abseiling" / "empty").mkdir()  # no frames: left out
    (split / "abseiling" / "x_1" / "list.txt").write_text("not a frame")
    (split / "notes.txt").write_text("not a class")
    n = index.write_frame_index(split, tmp_path / "train.csv", warn=False)
    text = (tmp_path / "train.csv").read_text()
    assert n == 3
    assert text == "abseiling/a  two  spaces 0 2\nabseiling/x_1 0 5\nplaying guitar/vid 01 1 3\n"
    # read back the way the annotation reader does: split from the right at most twice
    parsed = [line.rsplit(maxsplit=2) for line in text.splitlines()]
    assert parsed[0] == ["abseiling/a  two  spaces", "0", "2"]
    assert parsed[2] == ["playing guitar/vid 01", "1", "3"]


def test_index_videos(tmp_path):
    split = tmp_path / "val"
    for rel in [
        "b class/z.mp4",
        "b class/a clip.webm",
        "a/one.MKV",
        "a/readme.txt",
        "a/.hidden.mp4",
    ]:
        (split / rel).parent.mkdir(parents=True, exist_ok=True)
        (split / rel).write_bytes(b"")
    assert index.write_video_index(split, tmp_path / "val.csv") == 3
    assert (
        tmp_path / "val.csv"
    ).read_text() == "a/one.MKV 0\nb class/a clip.webm 1\nb class/z.mp4 1\n"


def test_index_refuses_names_the_csv_cannot_carry(tmp_path):
    _touch_frames(tmp_path / "s" / "cls" / "video ", 2)
    with pytest.raises(ValueError, match="ends with whitespace"):
        index.write_frame_index(tmp_path / "s", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def test_cli_missing_inputs_give_one_line_errors(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert data_cli.main(["frames", str(missing), str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: frames: input folder {missing} does not exist\n"
    assert data_cli.main(["index", str(missing), str(tmp_path / "o.csv")]) == 1
    assert capsys.readouterr().err == f"error: index: split folder {missing} does not exist\n"
    assert data_cli.main(["frames", str(tmp_path), str(tmp_path / "o"), "--quality", "40"]) == 1
    assert "use an integer in 1..31" in capsys.readouterr().err
    assert data_cli.main(["synth"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sce data synth: ") and "out" in err
    assert data_cli.main(["bogus"]) == 1
    assert capsys.readouterr().err.startswith("sce data: ")


def test_cli_synth_and_index(tmp_path, capsys):
    out = tmp_path / "syn"
    rc = data_cli.main(
        [
            "synth",
            str(out),
            "--num-classes",
            "2",
            "--train-per-class",
            "1",
            "--val-per-class",
            "1",
            "--frames",
            "3",
            "--size",
            "16",
            "--formats",
            "frames",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert (out / "train.csv").read_text() == "digit_0/video_00000 0 3\ndigit_1/video_00000 1 3\n"
    assert not (out / "videos").exists()
    assert data_cli.main(["index", str(out / "val"), str(tmp_path / "v.csv")]) == 0
    assert (tmp_path / "v.csv").read_text() == (out / "val.csv").read_text()
    assert "wrote 2 line(s)" in capsys.readouterr().out
