"""The frame decoder's ``decode_on: gpu`` path, on the CPU: workers read bytes only, crops are
recorded, and decoding after transfer gives exactly the worker path's batch; ``sce check``
refuses the option on a machine without a CUDA GPU. (Its nvJPEG behaviour needs a GPU.)"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image
from sce_builtins.data.clip_samplers import RandomClipSampler, RandomMultiClipSampler
from sce_builtins.data.collate import default_collate_fn
from sce_builtins.data.dataset import VideoDataset
from sce_builtins.data.decoders.errors import VideoDecodeError
from sce_builtins.data.decoders.frame import FrameDecoder
from sce_builtins.data.decoders.time_difference import difference_image, difference_image_torch
from sce_builtins.data.deferred import DeferredBatch, DeferredClip
from sce_builtins.data.types import ClipWindow, VideoRecord
from sce_builtins.transforms.cpu_video import RandomResizedCrop
from sce_builtins.transforms.presets import scale_center_crop
from sce_builtins.transforms.wrappers import OnlyInputListTransform, OnlyInputTransform

FPS, FRAMES = 10, 30
SIZES = ((48, 64), (52, 40))  # (H, W) of the two videos: one batch mixes frame sizes


def _video(folder, height, width, seed):
    """Textured colour frames (JPEG q90): crops, resizes and differences all change pixels."""
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height + FRAMES, width + FRAMES, 3), dtype=np.uint8)
    for i in range(FRAMES):
        Image.fromarray(base[i : i + height, i : i + width]).save(
            os.path.join(folder, f"{i + 1:08d}.jpg"), quality=90)
    return VideoRecord(str(folder), label=seed, num_frames=FRAMES)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_decode")
    return [_video(root / f"v{k}", h, w, k) for k, (h, w) in enumerate(SIZES * 2)]


def _dataset(records, decode_on, decode_float=False, td=0.5, transform=None):
    decoder = FrameDecoder(fps=FPS, frame_filter={"subsample_type": "uniform", "num_samples": 4},
                           time_difference_prob=td, decode_float=decode_float, decode_on=decode_on)
    crop = RandomResizedCrop(24, 24, scale=(0.3, 1.0))
    return VideoDataset(records, decoder, RandomMultiClipSampler(1.2, num_clips=2),
                        transform or OnlyInputListTransform(crop), seed=7)


@pytest.mark.parametrize("decode_float", [False, True])
def test_batch_decoded_after_transfer_equals_worker_path(records, decode_float):
    """Same seeds: the deferred batch, moved to the CPU, is bit-identical to the worker path's."""
    cpu = default_collate_fn([_dataset(records, "cpu", decode_float)[i] for i in range(4)])
    gpu = default_collate_fn([_dataset(records, "gpu", decode_float)[i] for i in range(4)])
    assert all(isinstance(view, DeferredBatch) for view in gpu["input"])
    assert gpu["label"].tolist() == cpu["label"].tolist() == [0, 1, 2, 3]
    for deferred, expected in zip(gpu["input"], cpu["input"]):
        got = deferred.to("cpu")
        assert got.shape == expected.shape == (4, 3, 4, 24, 24)
        assert got.dtype == expected.dtype == (torch.float32 if decode_float else torch.uint8)
        assert torch.equal(got, expected)


def test_time_difference_clips_are_exact(records):
    """With every clip a time-difference clip, the decoded-after-transfer batch still matches."""
    cpu = default_collate_fn([_dataset(records, "cpu", td=1.0)[i] for i in range(4)])
    gpu = default_collate_fn([_dataset(records, "gpu", td=1.0)[i] for i in range(4)])
    for deferred, expected in zip(gpu["input"], cpu["input"]):
        assert torch.equal(deferred.to("cpu"), expected)
    rng = np.random.default_rng(0)
    expanded = rng.integers(0, 256, (6, 9, 11, 3), dtype=np.uint8)
    keep = np.array([True, False, True, False, False, True])
    assert np.array_equal(difference_image_torch(torch.from_numpy(expanded), keep).numpy(),
                          difference_image(expanded, keep))


def test_scale_center_crop_is_deferred_too(records):
    """The validation preset (short-side scale + centre crop) replays identically."""
    def data(decode_on):
        dec = FrameDecoder(fps=FPS, frame_filter={"subsample_type": "uniform", "num_samples": 4},
                           decode_on=decode_on)
        transform = OnlyInputTransform(scale_center_crop(size=20, crop_size=16))
        ds = VideoDataset(records, dec, RandomClipSampler(1.2), transform, seed=3)
        return default_collate_fn([ds[i] for i in range(4)])

    got, expected = data("gpu")["input"].to("cpu"), data("cpu")["input"]
    assert got.shape == expected.shape == (4, 3, 4, 16, 16) and torch.equal(got, expected)


def test_workers_send_bytes_only(records):
    """A worker's sample holds the needed frames' JPEG bytes (each frame once), not pixels."""
    sample = _dataset(records, "gpu", td=0.0)[0]
    clips = sample["input"]
    assert all(isinstance(c, DeferredClip) and c.shape == (4, 24, 24, 3) for c in clips)
    frame_files = {open(os.path.join(records[0].path, f), "rb").read()
                   for f in os.listdir(records[0].path)}
    assert all(blob in frame_files for c in clips for blob in c.frames)
    payload = len(pickle.dumps(clips))
    pixels = 2 * 4 * 24 * 24 * 3
    encoded = sum(len(b) for b in {id(b): b for c in clips for b in c.frames}.values())
    assert encoded < payload < encoded + 4000 and payload < 8 * pixels
    batch = DeferredBatch(clips)
    assert batch.num_frames == len({id(b) for c in clips for b in c.frames})


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_bad_frames_are_found_in_the_worker(tmp_path, damage):
    """Corrupt headers and files cut short fail in the worker (bad data), never at transfer."""
    record = _video(tmp_path / "v", 40, 40, 0)
    bad = os.path.join(record.path, f"{5:08d}.jpg")
    data = open(bad, "rb").read()
    with open(bad, "wb") as f:
        f.write(b"not a jpeg" * 20 if damage == "garbage" else data[: len(data) // 2])
    decoder = FrameDecoder(fps=FPS, decode_on="gpu")
    with pytest.raises(VideoDecodeError) as err:
        decoder.decode(record, [ClipWindow(Fraction(0), Fraction(1))])
    assert err.value.path == bad and "corrupt JPEG" in err.value.reason


def test_a_transform_that_needs_pixels_says_so(records):
    """A CPU transform doing pixel math before decoding fails with one line naming the fix."""
    (clip,) = FrameDecoder(fps=FPS, decode_on="gpu").decode(records[0], [ClipWindow(Fraction(0), Fraction(1))])
    with pytest.raises(AttributeError, match=r"^decode_on: gpu: a CPU transform used clip.float, .*"
                                             r"use decode_on: cpu$"):
        clip.frames.float()
    assert pickle.loads(pickle.dumps(clip.frames)).shape == clip.frames.shape


def test_bad_option_value_is_one_line():
    with pytest.raises(ValueError, match=r"^frame decoder: decode_on must be 'cpu' or 'gpu', got 'cuda'$"):
        FrameDecoder(decode_on="cuda")


def test_sce_check_refuses_gpu_decoding_without_a_gpu():
    """`sce check` on a CPU-only machine: exit 1 with one line naming the option and the fix
    (on a machine with a CUDA GPU the same config passes)."""
    cmd = [sys.executable, "-m", "sce_core.cli", "check", "demo",
           "datamodule.decoder_args.decode_on=gpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if torch.cuda.is_available():
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "decode_on" in ln]
    assert len(lines) == 1
    assert "datamodule.decoder_args.decode_on" in lines[0]
    assert "no CUDA GPU" in lines[0] and "decode_on=cpu" in lines[0]


def test_every_place_a_decoder_is_configured_is_checked():
    """The refusal looks at the top-level and per-split decoder, as arguments or as a node."""
    import torch
    from sce_builtins.hooks import _gpu_decoding_issues

    config = {"datamodule": {"decoder_args": {"decode_on": "cpu"},
                             "train": {"decoder": {"_name_": "frame", "decode_on": "gpu"}},
                             "val": {"decoder_args": {"decode_on": "gpu"}}}}
    issues = _gpu_decoding_issues(config)
    expected = [] if torch.cuda.is_available() else [
        "datamodule.train.decoder.decode_on", "datamodule.val.decoder_args.decode_on"]
    assert [issue.path for issue in issues] == expected


def test_loader_workers_and_lightning_transfer(records):
    """Through a DataLoader worker process and Lightning's own batch transfer (the call a run
    makes), the deferred batch arrives decoded and equal to the worker path's batch."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    def first_batch(decode_on):
        loader = torch.utils.data.DataLoader(_dataset(records, decode_on), batch_size=4,
                                             collate_fn=default_collate_fn, num_workers=1)
        return next(iter(loader))

    moved = move_data_to_device(first_batch("gpu"), torch.device("cpu"))
    expected = first_batch("cpu")
    assert all(isinstance(v, torch.Tensor) for v in moved["input"])
    for got, want in zip(moved["input"], expected["input"]):
        assert torch.equal(got, want)
