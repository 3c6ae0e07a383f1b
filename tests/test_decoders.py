"""Frame, PyAV and torchcodec decoders on real small data written in tmp dirs.

Every frame ``i`` is a solid gray image of level ``3 * i`` so decoded values identify frames
(JPEG keeps solid gray exact; H.264 is within +-1 here).
"""

from __future__ import annotations

import os
import pickle
from fractions import Fraction
from importlib.metadata import entry_points

import av
import numpy as np
import pytest
import torch
from PIL import Image
from sce_builtins.data.decoders.errors import ClipOutOfRangeError, VideoDecodeError
from sce_builtins.data.decoders.frame import FrameDecoder
from sce_builtins.data.decoders.pyav import PyAVDecoder
from sce_builtins.data.types import ClipWindow, VideoRecord

N = 84  # 2.8 s at 30 fps; gray level 3*i stays <= 249
H, W = 24, 32
UNIFORM8 = {"subsample_type": "uniform", "num_samples": 8}
D256 = Fraction(2.56)  # exact binary value, as the clip samplers use


def _gray(i: int) -> np.ndarray:
    return np.full((H, W, 3), 3 * i, np.uint8)


def _write_frames(folder, n=N, pattern="%08d.jpg", start=1):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        Image.fromarray(_gray(i)).save(os.path.join(folder, pattern % (i + start)), quality=95)
    return str(folder)


def _write_mp4(path, n=N, gop=10):
    with av.open(str(path), "w") as c:
        s = c.add_stream(
            "libx264",
            rate=30,
            options={"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": "0"},
        )
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(_gray(i), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoders")
    return {
        "frames": _write_frames(root / "vid"),
        "mp4": _write_mp4(root / "vid.mp4"),
        "root": root,
    }


def _levels(clip) -> list[int]:
    """Frame index encoded in each frame (asserting the frame is the solid gray it should be)."""
    px = clip.frames[:, H // 2, W // 2, 0].to(torch.float32).numpy() / 3
    idx = np.rint(px).astype(int)
    assert np.abs(px - idx).max() < 0.5
    return idx.tolist()


def _win(start, duration=D256):
    start = Fraction(start)
    return ClipWindow(start, start + duration)


# --------------------------------------------------------------------------------------- frame


def test_spec_example_indices_t77_and_t76(data):
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8)
    rec = VideoRecord(data["frames"], 0, N)
    assert dec.duration(rec) == Fraction(84, 30)
    c77, c76 = dec.decode(rec, [_win(0), _win(Fraction(1, 300))])
    assert c77.frame_indices == (0, 10, 21, 32, 43, 54, 65, 76)
    # start 1/300 s: frames [ceil(0.1), ceil(76.9)) = [1, 77): t = 76 -> offsets 0,10,21,32,42,53,64,75
    assert c76.frame_indices == tuple(1 + o for o in (0, 10, 21, 32, 42, 53, 64, 75))
    assert _levels(c77) == list(c77.frame_indices) and _levels(c76) == list(c76.frame_indices)
    assert c77.frames.shape == (8, H, W, 3) and c77.frames.dtype == torch.uint8
    assert c77.frames.is_contiguous() and not c77.time_difference


def test_window_clamped_at_end_and_without_filter(data):
    dec = FrameDecoder(fps=30)
    rec = VideoRecord(data["frames"], 0, N)
    (clip,) = dec.decode(rec, [ClipWindow(Fraction(80, 30), Fraction(100, 30))])
    assert clip.frame_indices == (80, 81, 82, 83)  # end clamped to duration, every frame kept
    assert _levels(clip) == [80, 81, 82, 83]
    # A window starting exactly at the end yields the last frame.
    (last,) = dec.decode(rec, [ClipWindow(Fraction(84, 30), Fraction(90, 30))])
    assert last.frame_indices == (83,)


def test_window_outside_video_raises(data):
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8)
    rec = VideoRecord(data["frames"], 0, N)
    with pytest.raises(ClipOutOfRangeError):
        dec.decode(rec, [ClipWindow(Fraction(85, 30), Fraction(4))])
    with pytest.raises(VideoDecodeError):
        dec.decode(rec, [ClipWindow(Fraction(-1, 30), Fraction(1))])


def test_short_window_repeats_frames(data):
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8)
    (clip,) = dec.decode(
        VideoRecord(data["frames"], 0, N), [ClipWindow(Fraction(0), Fraction(3, 30))]
    )
    # floor(linspace(0, 2, 8)) = floor(0, .29, .57, .86, 1.14, 1.43, 1.71, 2)
    assert clip.frame_indices == (0, 0, 0, 0, 1, 1, 1, 2)
    assert _levels(clip) == [0, 0, 0, 0, 1, 1, 1, 2]


def test_reads_only_needed_frames_once(tmp_path):
    """A folder holding only the needed frame files decodes fine; shared frames read once."""
    folder = _write_frames(tmp_path / "v")
    keep = {0, 10, 21, 32, 43, 54, 65, 76}
    for i in range(N):
        if i not in keep:
            os.remove(os.path.join(folder, f"{i + 1:08d}.jpg"))
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8)
    read = []
    original = dec.read_frames
    dec.read_frames = lambda rec, ids: (read.append(ids.tolist()), original(rec, ids))[1]
    a, b = dec.decode(VideoRecord(folder, 0, N), [_win(0), _win(0)])
    assert read == [sorted(keep)]
    assert a.frame_indices == b.frame_indices and torch.equal(a.frames, b.frames)
    assert a.frames.data_ptr() != b.frames.data_ptr()  # independent clips


def test_random_subsample_is_seeded(data):
    dec = FrameDecoder(fps=30, frame_filter={"subsample_type": "random", "num_samples": 8})
    rec = VideoRecord(data["frames"], 0, N)
    w = [_win(0), _win(Fraction(1, 10))]
    first = [c.frame_indices for c in dec.decode(rec, w, np.random.default_rng(7))]
    again = [c.frame_indices for c in dec.decode(rec, w, np.random.default_rng(7))]
    other = [c.frame_indices for c in dec.decode(rec, w, np.random.default_rng(8))]
    assert first == again and first != other
    for ids, lo in zip(first, (0, 3)):
        assert list(ids) == sorted(set(ids)) and len(ids) == 8
        assert lo <= ids[0] and ids[-1] < lo + 77


def test_time_difference_clip(data):
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8, time_difference_prob=1.0)
    rec = VideoRecord(data["frames"], 0, N)
    read = []
    original = dec.read_frames
    dec.read_frames = lambda r, ids: (read.append(ids.tolist()), original(r, ids))[1]
    (clip,) = dec.decode(rec, [_win(0)], np.random.default_rng(0))
    assert clip.time_difference and clip.frame_indices == (0, 10, 21, 32, 43, 54, 65, 76)
    assert read == [[0, 1, 10, 11, 21, 22, 32, 33, 43, 44, 54, 55, 65, 66, 75, 76]]
    # Y(3i) = 3i - 1 (i > 0), Y(0) = 0: frame 0 gives (0 - 2 + 255)/2 = 126.5 -> 126,
    # every other pair (Y - (Y + 3) + 255)/2 = 126; the gray image has 3 equal channels.
    assert clip.frames.shape == (8, H, W, 3) and clip.frames.dtype == torch.uint8
    assert (clip.frames == 126).all()


def test_time_difference_coin_uses_rng(data):
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8, time_difference_prob=0.5)
    rec = VideoRecord(data["frames"], 0, N)
    windows = [_win(Fraction(k, 30)) for k in range(6)]
    flags = [c.time_difference for c in dec.decode(rec, windows, np.random.default_rng(3))]
    again = [c.time_difference for c in dec.decode(rec, windows, np.random.default_rng(3))]
    expected = (
        np.random.default_rng(3).random(6) < 0.5
    ).tolist()  # one draw per clip (uniform filter)
    assert flags == again == expected and True in flags and False in flags


def test_time_difference_one_frame_never_requests_minus_one(tmp_path):
    single = _write_frames(tmp_path / "one", n=1)
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8, time_difference_prob=1.0)
    (clip,) = dec.decode(VideoRecord(single, 0, 1), [_win(0)])
    assert clip.frame_indices == (0,) * 8 and (clip.frames == 128).all()  # no motion
    # A 1-frame window at frame 0 of a longer video: pairs (0, 1) are real, the last is clamped.
    longer = _write_frames(tmp_path / "long", n=5)
    (clip,) = dec.decode(VideoRecord(longer, 0, 5), [ClipWindow(Fraction(0), Fraction(1, 60))])
    assert clip.frame_indices == (0,) * 8
    assert clip.frames[:7].eq(126).all() and clip.frames[7].eq(128).all()


def test_decode_float(data):
    rec = VideoRecord(data["frames"], 0, N)
    u8 = FrameDecoder(fps=30, frame_filter=UNIFORM8).decode(rec, [_win(0)])[0].frames
    f32 = (
        FrameDecoder(fps=30, frame_filter=UNIFORM8, decode_float=True)
        .decode(rec, [_win(0)])[0]
        .frames
    )
    assert f32.dtype == torch.float32 and torch.equal(f32, u8.float()) and f32.max() == 228.0


def test_pattern_start_index_and_listing(tmp_path):
    folder = _write_frames(tmp_path / "v", n=12, pattern="frame_%05d.jpg", start=0)
    open(os.path.join(folder, "notes.txt"), "w").close()
    dec = FrameDecoder(fps=30, filename_pattern="frame_{:05d}.jpg", frame_start_index=0)
    rec = VideoRecord(folder)  # no frame count: the folder is listed once
    assert dec.num_frames(rec) == 12 and dec.duration(rec) == Fraction(12, 30)
    (clip,) = dec.decode(rec, [ClipWindow(Fraction(0), Fraction(1))])
    assert _levels(clip) == list(range(12))


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_jpeg_backends_agree(data, backend):
    """simplejpeg (the default: a dependency) gives exactly the pixels of torchvision and PIL."""
    rec = VideoRecord(data["frames"], 0, N)
    auto = FrameDecoder(frame_filter=UNIFORM8)
    other = FrameDecoder(frame_filter=UNIFORM8, jpeg_backend=backend)
    assert auto.backend_name == "simplejpeg" and other.backend_name == backend
    assert torch.equal(auto.decode(rec, [_win(0)])[0].frames, other.decode(rec, [_win(0)])[0].frames)


def test_simplejpeg_is_a_dependency():
    """A default install (no extras) brings simplejpeg, so ``auto`` takes the fast path."""
    from importlib.metadata import requires

    assert any(r.startswith("simplejpeg") and "extra" not in r for r in requires("sce-core"))


@pytest.mark.parametrize("backend", ["simplejpeg", "torchvision", "pil"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_jpeg_raises_decode_error(tmp_path, backend, damage):
    folder = _write_frames(tmp_path / "v", n=20)
    bad = os.path.join(folder, f"{11:08d}.jpg")  # frame 10
    data = open(bad, "rb").read()
    with open(bad, "wb") as f:
        f.write(b"not a jpeg at all" * 10 if damage == "garbage" else data[: len(data) // 2])
    dec = FrameDecoder(fps=30, jpeg_backend=backend)
    with pytest.raises(VideoDecodeError) as err:
        dec.decode(VideoRecord(folder, 0, 20), [ClipWindow(Fraction(0), Fraction(20, 30))])
    assert err.value.path == bad and "corrupt JPEG" in err.value.reason


def test_missing_folder_and_missing_frame(tmp_path):
    dec = FrameDecoder(fps=30, frame_filter=UNIFORM8)
    with pytest.raises(VideoDecodeError, match="frame folder not found"):
        dec.decode(VideoRecord(str(tmp_path / "nope"), 0, 30), [_win(0, Fraction(1))])
    with pytest.raises(VideoDecodeError, match="frame folder not found"):
        dec.duration(VideoRecord(str(tmp_path / "nope")))
    folder = _write_frames(tmp_path / "v", n=10)
    with pytest.raises(VideoDecodeError, match="frame file not found") as err:
        dec.decode(VideoRecord(folder, 0, 30), [_win(0, Fraction(1))])  # CSV says 30 frames
    err_copy = pickle.loads(pickle.dumps(err.value))
    assert (err_copy.path, err_copy.reason) == (err.value.path, err.value.reason)


def test_thread_pool_is_persistent_and_fork_safe(data, monkeypatch):
    rec = VideoRecord(data["frames"], 0, N)
    inline = FrameDecoder(frame_filter=UNIFORM8)
    threaded = FrameDecoder(frame_filter=UNIFORM8, num_threads_io=4, num_threads_decode=4)
    for k in range(3):
        w = [_win(Fraction(k, 30)), _win(Fraction(k, 10))]
        for a, b in zip(inline.decode(rec, w), threaded.decode(rec, w)):
            assert torch.equal(a.frames, b.frames)
    assert threaded._pool.created == 1 and inline._pool.created == 0
    monkeypatch.setattr(os, "getpid", lambda: -12345)  # as seen in a forked worker
    threaded.decode(rec, [_win(0)])
    assert threaded._pool.created == 2
    clone = pickle.loads(pickle.dumps(threaded))  # spawned workers get a pool-less copy
    assert torch.equal(
        clone.decode(rec, [_win(0)])[0].frames, inline.decode(rec, [_win(0)])[0].frames
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": 0},
        {"frame_filter": {"subsample_type": "middle", "num_samples": 8}},
        {"frame_filter": {"subsample_type": "uniform", "num_samples": 0}},
        {"frame_filter": {"subsample_type": "uniform", "samples": 8}},
        {"time_difference_prob": 1.5},
        {"num_threads_io": -1},
        {"filename_pattern": "frame.jpg"},
        {"jpeg_backend": "turbo"},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="frame"):
        FrameDecoder(**kwargs)


def test_unavailable_cv2_backend_is_a_clear_error():
    try:
        import cv2  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="cv2"):
            FrameDecoder(jpeg_backend="cv2")
    else:
        assert FrameDecoder(jpeg_backend="cv2").backend_name == "cv2"


# ---------------------------------------------------------------------------------------- pyav


def test_pyav_index_duration_and_cache(data, tmp_path):
    path = _write_mp4(tmp_path / "v.mp4", n=30)
    dec = PyAVDecoder()
    rec = VideoRecord(path)
    index = dec.index(rec)
    assert index.keyframes.tolist() == [0, 10, 20] and index.num_frames == 30
    assert dec.duration(rec) == Fraction(1) and index.time_base == Fraction(1, 15360)
    dec.duration(rec)
    assert dec.index_builds == 1
    os.utime(path, ns=(1, 1))  # changed mtime -> rebuilt
    dec.duration(rec)
    assert dec.index_builds == 2


def test_pyav_agrees_with_frame_decoder(data):
    kwargs = {"frame_filter": UNIFORM8}
    frame = FrameDecoder(fps=30, **kwargs)
    video = PyAVDecoder(**kwargs)
    frec, vrec = VideoRecord(data["frames"], 0, N), VideoRecord(data["mp4"])
    assert frame.duration(frec) == video.duration(vrec)
    rng = np.random.default_rng(0)
    for _ in range(4):
        starts = rng.uniform(0, float(frame.duration(frec) - D256), size=2)
        windows = [_win(Fraction(float(s))) for s in starts]
        for fc, vc in zip(frame.decode(frec, windows), video.decode(vrec, windows)):
            assert fc.frame_indices == vc.frame_indices
            assert _levels(vc) == list(vc.frame_indices)
            assert vc.frames.shape == fc.frames.shape and vc.frames.dtype == torch.uint8
    assert video.open_count == video.close_count


def test_pyav_time_difference_agrees(data):
    kwargs = {"frame_filter": UNIFORM8, "time_difference_prob": 1.0}
    f = FrameDecoder(fps=30, **kwargs).decode(
        VideoRecord(data["frames"], 0, N), [_win(Fraction(1, 300))]
    )
    v = PyAVDecoder(**kwargs).decode(VideoRecord(data["mp4"]), [_win(Fraction(1, 300))])
    assert v[0].time_difference and f[0].frame_indices == v[0].frame_indices
    assert (v[0].frames.int() - f[0].frames.int()).abs().max() <= 1


def test_pyav_seeks_only_when_a_keyframe_is_ahead(data):
    dec = PyAVDecoder()
    rec = VideoRecord(data["mp4"])
    # Frames 2..8 and 3..9: one GOP starting at keyframe 0 -> decode forward, no seek.
    clips = dec.decode(
        rec,
        [
            ClipWindow(Fraction(2, 30), Fraction(9, 30)),
            ClipWindow(Fraction(3, 30), Fraction(10, 30)),
        ],
    )
    assert [c.frame_indices for c in clips] == [tuple(range(2, 9)), tuple(range(3, 10))]
    assert dec.seek_count == 0 and dec.decoded_frames == 10 and dec.converted_frames == 8
    # Frames 12..14 then 15..17: one seek to keyframe 10, then forward.
    dec.decode(
        rec,
        [
            ClipWindow(Fraction(12, 30), Fraction(15, 30)),
            ClipWindow(Fraction(15, 30), Fraction(18, 30)),
        ],
    )
    assert dec.seek_count == 1 and dec.decoded_frames == 10 + 8 and dec.converted_frames == 8 + 6
    # The spec's two windows (unique frames 0,1,10,11,21,22,32,33,43,54,65,76): a seek at each
    # of the keyframes 10..70 that lies between two needed frames, none for frame 0.
    assert dec.open_count == dec.close_count == 3  # index pass + two decodes, all closed
    uniform = PyAVDecoder(frame_filter=UNIFORM8)
    clips = uniform.decode(rec, [_win(0), _win(Fraction(1, 300))])
    assert [list(c.frame_indices) for c in clips] == [
        [0, 10, 21, 32, 43, 54, 65, 76],
        [1, 11, 22, 33, 43, 54, 65, 76],
    ]
    assert uniform.seek_count == 7 and uniform.converted_frames == 12
    # decoded: 0-1, 10-11, 20-22, 30-33, 40-43, 50-54, 60-65, 70-76 (keyframe to needed frame)
    assert uniform.decoded_frames == 2 + 2 + 3 + 4 + 4 + 5 + 6 + 7


def test_pyav_resampled_fps(data):
    dec = PyAVDecoder(fps=15)
    (clip,) = dec.decode(VideoRecord(data["mp4"]), [ClipWindow(Fraction(0), Fraction(1))])
    assert clip.frame_indices == tuple(range(0, 30, 2))  # grid k/15 shows source frame 2k
    assert _levels(clip) == list(range(0, 30, 2))


def test_pyav_bad_files_raise_decode_error(data, tmp_path):
    dec = PyAVDecoder(frame_filter=UNIFORM8)
    with pytest.raises(VideoDecodeError, match="not found"):
        dec.duration(VideoRecord(str(tmp_path / "missing.mp4")))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(VideoDecodeError):
        dec.decode(VideoRecord(str(garbage)), [_win(0)])
    truncated = tmp_path / "truncated.mp4"
    raw = open(data["mp4"], "rb").read()
    truncated.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(VideoDecodeError) as err:
        dec.decode(VideoRecord(str(truncated)), [_win(0)])
    assert err.value.path == str(truncated)
    assert dec.open_count == dec.close_count


def test_pyav_truncated_after_indexing_raises(data, tmp_path):
    """Index built on the full file, then the data vanishes: the decoder reports, and closes."""
    path = tmp_path / "v.mp4"
    raw = open(data["mp4"], "rb").read()
    path.write_bytes(raw)
    dec = PyAVDecoder(frame_filter=UNIFORM8)
    rec = VideoRecord(str(path))
    index = dec.index(rec)
    with pytest.raises(VideoDecodeError):
        dec.read_frames(str(path), index, np.arange(N + 5, N + 8))  # frames past the end
    assert dec.open_count == dec.close_count


def test_pyav_bad_arguments():
    for kwargs in ({"fps": -1}, {"thread_count": -1}, {"time_difference_prob": -0.1}):
        with pytest.raises(ValueError, match="pyav decoder"):
            PyAVDecoder(**kwargs)


# ---------------------------------------------------------------------------------- torchcodec


def test_torchcodec_unavailable_message():
    from sce_builtins.data.decoders.torchcodec import TorchCodecDecoder

    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:
        with pytest.raises(ImportError) as err:
            TorchCodecDecoder()
        message = str(err.value)
        assert "\n" not in message
        assert "pip install 'sce-core[torchcodec]'" in message and "FFmpeg 4-7" in message
    else:  # installed: constructing works
        assert TorchCodecDecoder().seek_mode == "exact"


def test_entry_points_registered():
    eps = {e.name: e for e in entry_points(group="sce.decoders")}
    assert eps["frame"].load() is FrameDecoder and eps["pyav"].load() is PyAVDecoder
    assert eps["torchcodec"].value == "sce_builtins.data.decoders.torchcodec:TorchCodecDecoder"
