"""Synthetic labelled video dataset: "moving digits" written in the real on-disk layouts.

Design (from the demo pilot, ``shared/research/demo_pilot.md``):
  * each video shows one of scikit-learn's bundled 8x8 digits (``load_digits``, no download),
    upscaled to ``digit_size`` pixels on a black ``size`` x ``size`` canvas; the class is the digit;
  * the digits are split by sample with a fixed permutation (seed 1234): the first 1000 samples
    feed the train split, the other 797 the val split, so val videos show unseen handwriting;
  * the digit moves along a *bouncing random walk*: constant speed per video (``speed`` x
    U(0.5, 1.5) canvas half-widths per frame), heading diffusing by ``turn`` rad per frame, so two
    temporal windows far apart share neither position nor motion (no position/trajectory shortcut);
  * everything is drawn from ``numpy.random.default_rng([seed, split, digit, index])``: a video
    depends only on its own key, so the output is identical for a given seed.

Layouts written under ``out_dir``:
  * frames: ``train/<class>/<video>/00000001.jpg ...`` + ``train.csv`` (``<class>/<video> <label>
    <num_frames>``), same for ``val``;
  * mp4: ``videos/train/<class>/<video>.mp4`` (PyAV, libx264) + ``videos/train.csv``
    (``<class>/<video>.mp4 <label>``), same for ``val``.

Class folders are ``digit_0`` ... ``digit_<N-1>``: sorted folder order equals the digit, so
label == digit.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sce_core.outputs import OutputExistsError, read_marker, write_marker

__all__ = [
    "DEFAULTS",
    "DEMO_SETTINGS",
    "MARKER",
    "OWNER_MARKER",
    "make_synthetic_dataset",
    "render_video",
    "write_mp4",
]

MARKER = ".sce_synth_complete.json"
"""File written last in a finished dataset; it records the generation parameters."""

OWNER_MARKER = ".sce-synthetic"
"""File written first into a folder this tool creates: only such a folder is ever deleted."""

SPLITS = ("train", "val")
_SPLIT_CODE = {"train": 0, "val": 1}
_DIGIT_SPLIT_SEED = 1234
_NUM_PRETRAIN_DIGITS = 1000
_FORMAT_VERSION = 1
# entries a synthetic dataset folder may contain (anything else: refuse to overwrite)
_OWN_ENTRIES = {"train", "val", "videos", "train.csv", "val.csv", MARKER}

DEFAULTS: dict[str, Any] = dict(
    num_classes=10,
    train_per_class=20,
    val_per_class=10,
    frames=64,
    size=32,
    fps=8,
    seed=0,
    formats=("frames", "mp4"),
)
"""Defaults of ``sce data synth``: 300 videos, generated in a few seconds."""

DEMO_SETTINGS: dict[str, Any] = {
    **{key: value for key, value in DEFAULTS.items() if key != "formats"},
    "train_per_class": 100,
    "val_per_class": 50,
}
"""Suggested sizes for the CPU demo: 1000 train videos (one per pretraining digit, ~100 per
class), 500 held-out val videos (kNN queries; train videos are the kNN bank), 64 frames = 8 s at
8 fps each. With ``random_multi_clip`` (``num_clips: 2``, ``clip_duration: 1.0``) and a decoder
at 8 fps with ``frame_filter: {subsample_type: uniform, num_samples: 8}`` a clip is 8 consecutive
frames (the pilot's view) and two independent clips are disjoint in time with probability
(1 - 1/7)^2 = 0.73 (starts uniform in [0, 7] s, disjoint when more than 1 s apart).
Pass ``formats=("mp4",)`` (decoder ``pyav``; about 12 MB) or ``formats=("frames",)`` (decoder
``frame`` with ``fps: 8``; 96k small JPEG files, about 390 MB of disk blocks)."""


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: images ``(1797, 8, 8)`` in 0..1 and labels (read-only)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images, targets = (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)
    images.flags.writeable = targets.flags.writeable = False
    return images, targets


def _digit_pools(num_classes: int) -> dict[str, list[np.ndarray]]:
    """Per split and class, the sample indices of the digits that split may show (fixed order)."""
    images, targets = _load_digits()
    perm = np.random.default_rng(_DIGIT_SPLIT_SEED).permutation(len(images))
    parts = {"train": perm[:_NUM_PRETRAIN_DIGITS], "val": perm[_NUM_PRETRAIN_DIGITS:]}
    return {
        split: [idx[targets[idx] == c] for c in range(num_classes)] for split, idx in parts.items()
    }


def _reflect(x: np.ndarray, limit: float) -> np.ndarray:
    """Bounce values into ``[-limit, limit]`` (mirror at the borders)."""
    if limit <= 0:
        return np.zeros_like(x)
    u = np.remainder(x + limit, 4 * limit)
    return np.where(u < 2 * limit, u, 4 * limit - u) - limit


def _trajectory(
    rng: np.random.Generator, frames: int, half_extent: float, speed: float, turn: float
) -> np.ndarray:
    """Bouncing random walk of the digit centre, ``(frames, 2)`` in normalised canvas units."""
    limit = 1.0 - half_extent
    start = (rng.random(2) * 2 - 1) * limit
    heading = rng.random() * 2 * np.pi + np.cumsum(turn * rng.standard_normal(frames))
    step = speed * (0.5 + rng.random())
    vel = np.stack([np.cos(heading), np.sin(heading)], -1) * step
    return _reflect(start + np.cumsum(vel, 0) - vel[:1], limit)


def render_video(digit: np.ndarray, centres: np.ndarray, size: int, digit_size: int) -> np.ndarray:
    """Draw an 8x8 digit (values 0..1) at each centre: ``(frames, size, size)`` uint8.

    Bilinear sampling with zero padding, pixel centres at ``(2 i + 1) / size - 1`` (the
    ``align_corners=False`` convention of ``grid_sample``, as in the pilot).
    """
    half = digit_size / size
    grid = (2 * np.arange(size) + 1) / size - 1  # pixel centres in [-1, 1]
    # digit coordinates in [-1, 1] -> source pixel coordinates in the 8x8 image
    u = (grid[None, :] - centres[:, 0:1]) / half  # (F, W) along x
    v = (grid[None, :] - centres[:, 1:2]) / half  # (F, H) along y
    sx = ((u + 1) * 8 - 1) / 2
    sy = ((v + 1) * 8 - 1) / 2
    padded = np.zeros((10, 10), np.float32)
    padded[1:9, 1:9] = digit
    x0 = np.floor(sx)
    y0 = np.floor(sy)
    wx = (sx - x0).astype(np.float32)
    wy = (sy - y0).astype(np.float32)
    # +1 for the zero border; anything further out reads the border (zero)
    ix0 = np.clip(x0 + 1, 0, 9).astype(np.intp)
    ix1 = np.clip(x0 + 2, 0, 9).astype(np.intp)
    iy0 = np.clip(y0 + 1, 0, 9).astype(np.intp)
    iy1 = np.clip(y0 + 2, 0, 9).astype(np.intp)

    def at(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        return padded[iy[:, :, None], ix[:, None, :]]  # (F, H, W)

    out = (
        at(iy0, ix0) * ((1 - wy)[:, :, None] * (1 - wx)[:, None, :])
        + at(iy0, ix1) * ((1 - wy)[:, :, None] * wx[:, None, :])
        + at(iy1, ix0) * (wy[:, :, None] * (1 - wx)[:, None, :])
        + at(iy1, ix1) * (wy[:, :, None] * wx[:, None, :])
    )
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------
def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from sce_builtins.tools.frames import encode_jpeg

    return encode_jpeg(rgb, quality)


def write_mp4(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: int | float | Fraction = 30,
    gop: int = 250,
    crf: int = 12,
    preset: str = "medium",
) -> None:
    """Encode ``(T, H, W, 3)`` (or ``(T, H, W)`` grey) uint8 frames as H.264 mp4 with PyAV.

    Frame ``i`` gets the timestamp ``i / fps``; ``gop`` is the keyframe interval (``-g``),
    ``crf`` the x264 constant rate factor, ``preset`` the x264 preset. Height and width must be even (yuv420p).
    """
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    num, height, width = frames.shape[:3]
    if height % 2 or width % 2:
        raise ValueError(f"write_mp4: frame size {width}x{height} must be even for yuv420p")
    rate = Fraction(fps).limit_denominator(1001)
    container = av.open(str(path), mode="w")
    try:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "crf": str(crf),
            "g": str(gop),
            "keyint_min": str(min(gop, 25)),
            "preset": preset,
        }
        stream.thread_count = 1
        for i in range(num):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _write_frames(folder: Path, video: np.ndarray, quality: int) -> None:
    folder.mkdir(parents=True)
    for i, gray in enumerate(video):
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        (folder / f"{i + 1:08d}.jpg").write_bytes(_encode_jpeg(rgb, quality))


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------
def _check(params: dict[str, Any]) -> None:
    def fail(msg: str) -> None:
        raise ValueError(f"make_synthetic_dataset: {msg}")

    if not 1 <= params["num_classes"] <= 10:
        fail(f"num_classes must be in 1..10 (digits), got {params['num_classes']}")
    for key in ("train_per_class", "val_per_class"):
        if params[key] < 0:
            fail(f"{key} must be >= 0, got {params[key]}")
    if params["frames"] < 1:
        fail(f"frames must be >= 1, got {params['frames']}")
    if params["size"] < 8 or params["size"] % 2:
        fail(f"size must be even and >= 8 (mp4 needs even sides), got {params['size']}")
    if not 1 <= params["digit_size"] <= params["size"]:
        fail(f"digit_size must be in 1..size, got {params['digit_size']}")
    if params["fps"] <= 0:
        fail(f"fps must be > 0, got {params['fps']}")
    bad = set(params["formats"]) - {"frames", "mp4"}
    if bad or not params["formats"]:
        fail(f"formats must be a non-empty subset of frames,mp4, got {list(params['formats'])}")
    if not 1 <= params["jpeg_quality"] <= 100:
        fail(f"jpeg_quality must be in 1..100, got {params['jpeg_quality']}")


def _generate(root: Path, params: dict[str, Any], progress: bool) -> None:
    pools = _digit_pools(params["num_classes"])
    images, _ = _load_digits()
    n = params["num_classes"]
    half = params["digit_size"] / params["size"]
    jobs = [
        (split, c, k)
        for split, per_class in (
            ("train", params["train_per_class"]),
            ("val", params["val_per_class"]),
        )
        for c in range(n)
        for k in range(per_class)
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="video", desc="synth", disable=None)  # none in a log file
    lines: dict[str, list[str]] = {s: [] for s in SPLITS}
    vlines: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split, c, k in jobs:
        cls, name = f"digit_{c}", f"video_{k:05d}"
        pool = pools[split][c]
        digit = images[pool[k % len(pool)]]
        rng = np.random.default_rng([params["seed"], _SPLIT_CODE[split], c, k])
        centres = _trajectory(rng, params["frames"], half, params["speed"], params["turn"])
        video = render_video(digit, centres, params["size"], params["digit_size"])
        if "frames" in params["formats"]:
            _write_frames(root / split / cls / name, video, params["jpeg_quality"])
            lines[split].append(f"{cls}/{name} {c} {params['frames']}")
        if "mp4" in params["formats"]:
            folder = root / "videos" / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            write_mp4(folder / f"{name}.mp4", video, params["fps"], params["gop"], params["crf"])
            vlines[split].append(f"{cls}/{name}.mp4 {c}")
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    for split in SPLITS:
        if "frames" in params["formats"]:
            (root / split).mkdir(exist_ok=True)
            (root / f"{split}.csv").write_text("".join(x + "\n" for x in lines[split]))
        if "mp4" in params["formats"]:
            (root / "videos" / split).mkdir(parents=True, exist_ok=True)
            (root / "videos" / f"{split}.csv").write_text("".join(x + "\n" for x in vlines[split]))
    (root / MARKER).write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")


def _read_marker(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _ownership(root: Path) -> str:
    """``"missing"``, ``"empty"``, ``"ours"`` (owner marker) or ``"unmarked"``; refuse the rest.

    A folder holding anything a synthetic dataset never writes is refused, marker or not.
    """
    if not root.exists() and not root.is_symlink():
        return "missing"
    if root.is_symlink() or not root.is_dir():
        raise OutputExistsError(
            f"sce data synth: {root} exists and is not a folder; choose an empty or new folder"
        )
    names = {p.name for p in root.iterdir()}
    foreign = sorted(names - _OWN_ENTRIES - {OWNER_MARKER})
    if foreign:
        raise OutputExistsError(
            f"sce data synth: {root} holds {foreign[:3]}, which are not part of a synthetic "
            "dataset; choose an empty or new folder"
        )
    if not names:
        return "empty"
    return "ours" if read_marker(root, OWNER_MARKER) is not None else "unmarked"


def _refuse_unmarked(root: Path) -> OutputExistsError:
    return OutputExistsError(
        f"sce data synth: {root} is not empty and has no {OWNER_MARKER} marker (your own data or "
        "a dataset of an older sce-core); delete it yourself or choose another folder "
        "(`sce data synth --force` replaces it)"
    )


def _clear(root: Path, force: bool) -> None:
    """Remove ``root`` before the new dataset is renamed into place, if it may be removed."""
    state = _ownership(root)
    if state == "unmarked" and not force:
        raise _refuse_unmarked(root)
    if state == "empty":
        root.rmdir()
    elif state != "missing":
        shutil.rmtree(root)


def _partial_prefix(root: Path) -> str:
    return f".{root.name}.partial-{socket.gethostname()}-"


def _remove_stale_partials(root: Path) -> None:
    """Delete temporary folders left by killed runs on this host (their process is gone)."""
    prefix = _partial_prefix(root)
    for path in root.parent.glob(glob.escape(prefix) + "*"):
        if not path.is_dir() or path.is_symlink():
            continue
        if any(path.iterdir()) and read_marker(path, OWNER_MARKER) is None:
            continue  # not a folder this tool created
        try:
            pid = int(path.name[len(prefix) :].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def make_synthetic_dataset(
    out_dir: str | os.PathLike[str],
    *,
    num_classes: int = DEFAULTS["num_classes"],
    train_per_class: int = DEFAULTS["train_per_class"],
    val_per_class: int = DEFAULTS["val_per_class"],
    frames: int = DEFAULTS["frames"],
    size: int = DEFAULTS["size"],
    fps: float = DEFAULTS["fps"],
    seed: int = DEFAULTS["seed"],
    formats: Sequence[str] = DEFAULTS["formats"],
    digit_size: int | None = None,
    speed: float = 0.15,
    turn: float = 0.5,
    jpeg_quality: int = 95,
    crf: int = 12,
    gop: int = 250,
    progress: bool = False,
    force: bool = False,
) -> Path:
    """Create the moving-digits dataset in ``out_dir`` unless it is already there; return its path.

    Idempotent: a finished dataset has a marker file (``MARKER``) holding its parameters; calling
    again with the same parameters returns at once. The data is written to a temporary sibling
    folder and renamed into place, so concurrent callers (e.g. several DDP ranks) are safe.

    Only a folder this function created (it holds the ``OWNER_MARKER`` file, written first) is
    ever deleted and regenerated (interrupted, or other parameters). An empty folder is used; any
    other non-empty folder raises ``OutputExistsError`` and is left as it is. ``force`` replaces
    an unmarked folder whose entries all have synthetic-dataset names (e.g. a dataset written by
    an older sce-core); a folder holding other names is refused even with ``force``. An unmarked
    finished dataset of an older sce-core with the same parameters is reused as it is.

    Args:
        out_dir: Dataset root (created).
        num_classes: Number of digit classes, 1..10 (``digit_0`` ... ``digit_<N-1>``).
        train_per_class: Videos per class in ``train`` (digits of the 1000 pretraining samples,
            reused with new trajectories when a class has fewer samples).
        val_per_class: Videos per class in ``val`` (the 797 held-out samples).
        frames: Frames per video.
        size: Canvas side in pixels (even).
        fps: Frame rate written into the mp4 files (frame folders carry no rate).
        seed: Seed of every trajectory.
        formats: Subset of ``("frames", "mp4")``.
        digit_size: Digit side in pixels; default ``round(2 * size / 3)`` (16 px on 24 in the pilot).
        speed: Mean speed in canvas half-widths per frame (per-video factor U(0.5, 1.5)).
        turn: Standard deviation of the heading change per frame, radians.
        jpeg_quality: JPEG quality (1..100) of the frame files.
        crf: x264 constant rate factor of the mp4 files.
        gop: Keyframe interval of the mp4 files.
        progress: Show a progress bar.
        force: Replace an unmarked folder that holds only synthetic-dataset names.
    """
    root = Path(out_dir)
    params: dict[str, Any] = dict(
        version=_FORMAT_VERSION,
        num_classes=int(num_classes),
        train_per_class=int(train_per_class),
        val_per_class=int(val_per_class),
        frames=int(frames),
        size=int(size),
        fps=float(fps),
        seed=int(seed),
        formats=sorted(set(formats)),
        digit_size=int(round(2 * size / 3)) if digit_size is None else int(digit_size),
        speed=float(speed),
        turn=float(turn),
        jpeg_quality=int(jpeg_quality),
        crf=int(crf),
        gop=int(gop),
    )
    _check(params)
    state = _ownership(root)
    if state in ("ours", "unmarked") and _read_marker(root) == params:
        return root
    if state == "unmarked" and not force:
        raise _refuse_unmarked(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root)
    tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(root) + f"{os.getpid()}-", dir=root.parent))
    try:
        write_marker(tmp, OWNER_MARKER, {"created_by": "sce data synth", "version": _FORMAT_VERSION})
        _generate(tmp, params, progress)
        if _read_marker(root) == params and _ownership(root) == "ours":  # another process won
            return root
        _clear(root, force)
        try:
            os.rename(tmp, root)
        except OSError:
            if _read_marker(root) != params:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
