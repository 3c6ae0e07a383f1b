"""Video dataset on real JPEG frame folders: layout, seeding, evaluation samples, bad data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sce_builtins.data.annotations import load_annotations
from sce_builtins.data.clip_samplers import (
    ConstantClipsPerVideoSampler,
    RandomClipSampler,
    RandomMultiClipSampler,
)
from sce_builtins.data.collate import default_collate_fn, multiple_samples_collate_fn
from sce_builtins.data.dataset import DataLoadingFailed, VideoDataset
from sce_builtins.data.decoders.frame import FrameDecoder

FPS = 10
SIZE = 32


def write_frames(folder: Path, video_id: int, num_frames: int) -> None:
    """JPEG frames whose colour encodes the video (red) and the frame index (green)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num_frames):
        a = np.empty((SIZE, SIZE, 3), np.uint8)
        a[..., 0] = 16 * video_id + 8
        a[..., 1] = 4 * i + 2
        a[..., 2] = 128
        Image.fromarray(a).save(folder / f"{i + 1:08d}.jpg", quality=95)


def make_frame_dataset(
    root: Path, split: str = "train", classes: tuple[str, ...] = ("ant", "bee"),
    per_class: int = 3, num_frames: int = 40,
) -> list[tuple[str, int]]:
    """``<root>/<split>/<class>/<video>/%08d.jpg`` + ``<root>/<split>.csv`` (3 columns).

    Video k (CSV line k) has red level 16 k + 8. Returns (relative path, label) per line.
    """
    lines, out = [], []
    k = 0
    for label, cls in enumerate(sorted(classes)):
        for v in range(per_class):
            rel = f"{cls}/vid {v:02d}"  # a space in every video name
            write_frames(root / split / rel, k, num_frames)
            lines.append(f"{rel} {label} {num_frames}")
            out.append((rel, label))
            k += 1
    (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return out


def make_bad_frame_dataset(root: Path, corrupt: bytes, csv_lines: dict[int, str]) -> None:
    """8 videos of classes a, b (30 frames): ``a/vid 00``'s JPEGs hold ``corrupt``, ``a/vid 01``
    is removed and the given ``train.csv`` lines (0-based) are replaced."""
    make_frame_dataset(root, classes=("a", "b"), per_class=4, num_frames=30)
    for f in (root / "train" / "a" / "vid 00").iterdir():
        f.write_bytes(corrupt)
    shutil.rmtree(root / "train" / "a" / "vid 01")
    lines = (root / "train.csv").read_text().splitlines()
    for index, line in csv_lines.items():
        lines[index] = line
    (root / "train.csv").write_text("\n".join(lines) + "\n")


def video_of(clip: torch.Tensor) -> int:
    """Video id encoded in a (C, T, H, W) clip."""
    return int(clip[0].float().mean().item()) // 16


def frames_of(clip: torch.Tensor) -> list[int]:
    """Frame indices encoded in a (C, T, H, W) clip."""
    return [int(clip[1, t].float().mean().item()) // 4 for t in range(clip.shape[1])]


def frame_decoder() -> FrameDecoder:
    return FrameDecoder(fps=FPS, frame_filter={"subsample_type": "uniform", "num_samples": 4})


def make_dataset(root: Path, sampler=None, transform=None, **kw) -> VideoDataset:
    records = load_annotations(root / "train.csv", str(root / "train"))
    sampler = sampler or RandomMultiClipSampler(1.0, num_clips=2)
    return VideoDataset(records, frame_decoder(), sampler, transform, seed=kw.pop("seed", 5), **kw)


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("frames")
    make_frame_dataset(root)
    return root


def test_multi_clip_sample_layout(frames_root):
    ds = make_dataset(frames_root)
    assert len(ds) == 6
    s = ds[4]
    assert set(s) >= {"input", "label", "idx", "clip_index", "aug_index", "replaced", "bad_data"}
    assert isinstance(s["input"], list) and len(s["input"]) == 2
    for clip in s["input"]:
        assert clip.shape == (3, 4, SIZE, SIZE) and clip.dtype == torch.uint8
        assert video_of(clip) == 4
        f = frames_of(clip)
        # a 1 s window at 10 fps covers 10 frames; uniform 4 of them: offsets 0, 3, 6, 9
        assert [x - f[0] for x in f] == [0, 3, 6, 9]
    assert (s["label"], s["idx"], s["replaced"], s["bad_data"]) == (1, 4, 0, [])
    assert s["clip_index"] == [0, 1]


def test_single_clip_sampler_gives_a_tensor(frames_root):
    s = make_dataset(frames_root, RandomClipSampler(1.0))[0]
    assert isinstance(s["input"], torch.Tensor) and s["input"].shape == (3, 4, SIZE, SIZE)
    assert (s["clip_index"], s["aug_index"]) == (0, 0)


def test_randomness_from_seed_epoch_idx_only(frames_root):
    ds = make_dataset(frames_root)
    a = [frames_of(c) for c in ds[(0, 2)]["input"]]
    assert a == [frames_of(c) for c in ds[(0, 2)]["input"]]
    b = [frames_of(c) for c in ds[(1, 2)]["input"]]
    assert a != b  # another epoch, other windows
    ds.set_epoch(1)
    assert [frames_of(c) for c in ds[2]["input"]] == b
    other = make_dataset(frames_root, seed=6)
    assert [frames_of(c) for c in other[(0, 2)]["input"]] != a


def test_transform_sees_thwc_and_is_seeded_without_touching_global_rng(frames_root):
    seen = []

    def random_pixel(sample):  # stand-in CPU transform drawing from torch's global RNG
        clips = sample["input"]
        seen.append(tuple(clips[0].shape))
        shift = int(torch.randint(0, 1000, ()).item())
        return {**sample, "input": [c[:, :8, :8, :] for c in clips], "shift": shift}

    ds = make_dataset(frames_root, transform=random_pixel)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    s1, s2 = ds[(0, 1)], ds[(0, 1)]
    assert torch.equal(torch.get_rng_state(), state)
    assert seen[0] == (4, SIZE, SIZE, 3)  # transforms get (T, H, W, C)
    assert s1["input"][0].shape == (3, 4, 8, 8)  # dataset hands (C, T, H, W)
    assert s1["shift"] == s2["shift"]
    assert ds[(0, 2)]["shift"] != s1["shift"] or ds[(0, 3)]["shift"] != s1["shift"]


def test_constant_clips_30_samples_and_multiple_samples_collate(frames_root):
    ds = make_dataset(frames_root, ConstantClipsPerVideoSampler(1.0, clips_per_video=10, augs_per_clip=3))
    samples = ds[3]
    assert isinstance(samples, list) and len(samples) == 30
    assert [(s["clip_index"], s["aug_index"]) for s in samples] == [(c, a) for c in range(10) for a in range(3)]
    # 4 s video, 1 s clips: clip c starts at c * 3/9 s -> first frame ceil(10 c / 3)
    assert [frames_of(samples[3 * c]["input"])[0] for c in range(10)] == [-(-10 * c // 3) for c in range(10)]
    assert torch.equal(samples[0]["input"], samples[1]["input"])  # augs share one decoded clip
    assert samples[0]["input"].data_ptr() != samples[1]["input"].data_ptr()
    batch = multiple_samples_collate_fn([ds[1], ds[4]])
    assert batch["input"].shape == (60, 3, 4, SIZE, SIZE)
    assert batch["idx"].tolist() == [1] * 30 + [4] * 30
    assert batch["aug_index"].tolist() == [0, 1, 2] * 20
    assert batch["clip_index"].tolist() == [c for c in range(10) for _ in range(3)] * 2
    assert batch["bad_data"] == []


def test_default_collate_keeps_views_separate(frames_root):
    ds = make_dataset(frames_root)
    batch = default_collate_fn([ds[0], ds[5]])
    assert len(batch["input"]) == 2 and batch["input"][0].shape == (2, 3, 4, SIZE, SIZE)
    assert batch["label"].tolist() == [0, 1] and batch["idx"].tolist() == [0, 5]
    assert [t.tolist() for t in batch["clip_index"]] == [[0, 0], [1, 1]]


@pytest.fixture()
def bad_root(tmp_path) -> Path:
    """8 videos: 0 corrupt JPEGs, 1 missing folder, 2 wrong CSV path, 3 too short, 4-7 fine."""
    make_bad_frame_dataset(tmp_path, b"\xff\xd8 this is not a jpeg", {
        2: "a/no such video 0 30",
        3: "a/vid 03 0 4",  # 0.4 s at 10 fps: shorter than a 1 s clip
    })
    return tmp_path


def test_bad_samples_replaced_and_reported(bad_root):
    ds = make_dataset(bad_root, short_videos="replace")
    expected = {0: "corrupt", 1: "missing", 2: "missing", 3: "short"}
    for idx, reason in expected.items():
        s = ds[(0, idx)]
        assert s["replaced"] >= 1
        first = s["bad_data"][0]
        assert (first.split, first.epoch, first.idx, first.reason) == ("train", 0, idx, reason)
        assert first.path.endswith(load_annotations(bad_root / "train.csv")[idx].name)
        assert s["idx"] >= 4  # the replacement is a readable video ...
        assert video_of(s["input"][0]) == s["idx"]  # ... and the sample really is that video
        assert s["label"] == 1  # label of the replacement (class "b"), not of the bad video
        assert len(s["bad_data"]) == s["replaced"]
        again = ds[(0, idx)]
        assert again["idx"] == s["idx"]  # seeded replacement
    assert ds[(0, 6)]["replaced"] == 0


def test_short_video_kept_by_default(bad_root):
    ds = make_dataset(bad_root, RandomClipSampler(1.0))
    s = ds[(0, 3)]
    assert s["replaced"] == 0 and s["idx"] == 3
    assert frames_of(s["input"]) == [0, 1, 2, 3]  # the 4 frames of the 0.4 s video


def test_all_videos_bad_raises_clear_error(tmp_path):
    make_frame_dataset(tmp_path, classes=("a",), per_class=2)
    shutil.rmtree(tmp_path / "train")
    ds = make_dataset(tmp_path, max_retries=3)
    with pytest.raises(DataLoadingFailed, match="4 consecutive videos failed while loading index 0"):
        ds[0]


def test_real_mp4_through_pyav(tmp_path):
    import av
    from sce_builtins.data.decoders.pyav import PyAVDecoder

    path = tmp_path / "train" / "cls" / "clip one.mp4"
    path.parent.mkdir(parents=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for i in range(30):
            a = np.full((SIZE, SIZE, 3), 4 * i + 2, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    records = load_annotations(tmp_path / "train")
    assert [(r.name, r.label) for r in records] == [("cls/clip one.mp4", 0)]
    decoder = PyAVDecoder(frame_filter={"subsample_type": "uniform", "num_samples": 4})
    s = VideoDataset(records, decoder, RandomMultiClipSampler(1.0, 2), seed=0)[0]
    assert [c.shape for c in s["input"]] == [(3, 4, SIZE, SIZE)] * 2
    f = [int(s["input"][0][1, t].float().mean()) // 4 for t in range(4)]
    assert [x - f[0] for x in f] == [0, 3, 6, 9]
    assert os.path.exists(records[0].path)
