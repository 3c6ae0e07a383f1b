"""The ``frame`` decoder: videos stored as folders of JPEG frames (``00000001.jpg``, ...)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from sce_builtins.data.decoders.clips import (
    ClipPlan,
    ClipPlanner,
    Timeline,
    as_generator,
    assemble,
    union_ids,
)
from sce_builtins.data.decoders.errors import VideoDecodeError
from sce_builtins.data.decoders.frame_filter import FrameFilterOptions
from sce_builtins.data.decoders.jpeg import JpegBackend, header_shape, make_backend
from sce_builtins.data.decoders.pool import LazyThreadPool
from sce_builtins.data.decoders.timing import rate_fraction
from sce_builtins.data.deferred import DeferredClip
from sce_builtins.data.types import ClipWindow, DecodedClip, VideoRecord

DECODE_ON = ("cpu", "gpu")
_END_OF_IMAGE = b"\xff\xd9"


class FrameDecoder:
    """Decode clips from a folder of JPEG frames, reading only the frames the clips need.

    Timing (docs/reference.md §5.6): ``duration = Fraction(num_frames, fps)``; a window ``[start, end)`` covers
    frames ``[ceil(fps*start), ceil(fps*min(end, duration)))``, which ``frame_filter`` subsamples.
    Frame ``i`` (0-based) is the file ``filename_pattern % (i + frame_start_index)`` inside
    ``record.path``. The frame count comes from ``record.num_frames`` (the CSV); only when it is
    ``None`` is the folder listed once (files ending with the pattern's extension, cached per
    path). See :mod:`sce_builtins.data.decoders.clips` for windows, randomness and the
    time-difference rules, and :mod:`~sce_builtins.data.decoders.time_difference` for its edge
    cases (1-frame clips never request frame -1).

    Args:
        fps: frame rate the frames were extracted at (not read from the data).
        frame_filter: ``{subsample_type: uniform|random, num_samples: int}``; ``None`` keeps every
            frame of the window.
        time_difference_prob: probability that a clip is replaced by its time-difference image
            (drawn per clip with the ``rng`` passed to :meth:`decode`).
        num_threads_io: threads reading frame files. Frames are read and decoded by one
            persistent pool of ``max(num_threads_io, num_threads_decode)`` threads created lazily
            once per process (recreated after fork); ``<= 1`` means inline in the calling thread,
            the fastest setting on a core with a warm page cache. Threads help on network storage.
        num_threads_decode: threads decoding JPEGs (same pool, see ``num_threads_io``).
        decode_float: return float32 clips (values still 0..255, as the reference) instead of
            uint8. This only changes the dtype: 4x the memory and transfer, and the CPU crop then
            runs in float. Keep ``False`` unless a config relies on float clips.
        filename_pattern: printf-style (``%08d.jpg``) or ``str.format``-style (``{:05d}.jpg``)
            frame file name.
        frame_start_index: number of the first frame file (1 for ffmpeg's ``%08d.jpg`` output).
        jpeg_backend: ``auto`` (simplejpeg, a dependency, then OpenCV, torchvision, PIL), or one
            of them explicitly; all give the same pixels.
        decode_on: ``cpu`` (decode in the loader's workers) or ``gpu``: workers only read the
            needed frames' bytes (checking each header) and the batch is decoded with nvJPEG
            after transfer, then cropped there with the same crop parameters
            (:mod:`sce_builtins.data.deferred`). ``sce check`` refuses ``gpu`` on a machine
            without a CUDA GPU.
    """

    def __init__(
        self,
        fps: float = 30,
        frame_filter: FrameFilterOptions | None = None,
        time_difference_prob: float = 0.0,
        num_threads_io: int = 0,
        num_threads_decode: int = 0,
        decode_float: bool = False,
        filename_pattern: str = "%08d.jpg",
        frame_start_index: int = 1,
        jpeg_backend: Literal["auto", "simplejpeg", "cv2", "torchvision", "pil"] = "auto",
        decode_on: Literal["cpu", "gpu"] = "cpu",
    ) -> None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
            raise ValueError(f"frame decoder: fps must be a positive number, got {fps!r}")
        for name, value in (
            ("num_threads_io", num_threads_io),
            ("num_threads_decode", num_threads_decode),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"frame decoder: {name} must be an integer >= 0, got {value!r}")
        if (
            isinstance(frame_start_index, bool)
            or not isinstance(frame_start_index, int)
            or frame_start_index < 0
        ):
            raise ValueError(
                f"frame decoder: frame_start_index must be an integer >= 0, got {frame_start_index!r}"
            )
        if decode_on not in DECODE_ON:
            raise ValueError(f"frame decoder: decode_on must be 'cpu' or 'gpu', got {decode_on!r}")
        self.decode_on = decode_on
        self.fps = rate_fraction(fps)
        self.planner = ClipPlanner(frame_filter, time_difference_prob, "frame decoder")
        self.num_threads_io = num_threads_io
        self.num_threads_decode = num_threads_decode
        self.decode_float = bool(decode_float)
        self.filename_pattern = filename_pattern
        self.frame_start_index = frame_start_index
        self._format = _make_formatter(filename_pattern)
        self._extension = os.path.splitext(self._format(frame_start_index))[1]
        self.jpeg_backend = jpeg_backend
        self._backend: JpegBackend | None = None
        self.backend_name = self._get_backend().name  # fail early on a bad backend name
        self._pool = LazyThreadPool(max(num_threads_io, num_threads_decode))
        self._listed_counts: dict[str, int] = {}

    # -- public API -----------------------------------------------------------------------

    def num_frames(self, record: VideoRecord) -> int:
        """Frame count: ``record.num_frames``, else the (cached) number of frame files."""
        if record.num_frames is not None:
            return int(record.num_frames)
        count = self._listed_counts.get(record.path)
        if count is None:
            try:
                names = os.listdir(record.path)
            except FileNotFoundError:
                raise VideoDecodeError(record.path, "frame folder not found") from None
            except OSError as exc:
                raise VideoDecodeError(record.path, f"cannot list frame folder ({exc})") from None
            count = sum(1 for n in names if n.endswith(self._extension))
            self._listed_counts[record.path] = count
        return count

    def duration(self, record: VideoRecord) -> Fraction:
        """Exact duration ``Fraction(num_frames, fps)``."""
        return Fraction(self.num_frames(record)) / self.fps

    def frame_path(self, record: VideoRecord, index: int) -> str:
        """File of 0-based frame ``index``."""
        return os.path.join(record.path, self._format(index + self.frame_start_index))

    def decode(
        self, record: VideoRecord, windows: Sequence[ClipWindow], rng: Any = None
    ) -> list[DecodedClip]:
        """Decode every window of one video; each needed frame file is read and decoded once."""
        if not windows:
            return []
        timeline = Timeline(self.num_frames(record), self.fps)
        plans = self.planner.plan(record.path, windows, timeline, as_generator(rng))
        unique, positions = union_ids(plans)
        if self.decode_on == "gpu":
            return self._deferred(record, unique, plans, positions)
        frames = self.read_frames(record, unique)
        return assemble(frames, plans, positions, self.decode_float)

    def read_encoded(self, record: VideoRecord, ids: np.ndarray) -> tuple[list[bytes], int, int]:
        """Bytes of frames ``ids`` and their common ``(H, W)``, headers checked, nothing decoded.

        Raises :class:`VideoDecodeError` for a missing file, an unreadable header, a frame of
        another size or a file cut short (no end-of-image marker).
        """
        backend = self._get_backend()
        paths = [self.frame_path(record, int(i)) for i in ids]
        blobs = self._pool.map(lambda p: self._read_bytes(record, p), paths)
        size = None
        for path, data in zip(paths, blobs):
            try:
                hw = backend.shape(data) if backend.name != "torchvision" else header_shape(data)
            except ValueError as exc:
                raise VideoDecodeError(path, f"corrupt JPEG ({exc})") from None
            if size is not None and hw != size:
                raise VideoDecodeError(path, f"corrupt JPEG (frame size {hw} differs from {size})")
            if not data.rstrip(b"\0").endswith(_END_OF_IMAGE):
                raise VideoDecodeError(path, "corrupt JPEG (cut short: no end-of-image marker)")
            size = hw
        return list(blobs), size[0], size[1]

    def _deferred(self, record: VideoRecord, unique: np.ndarray, plans: Sequence[ClipPlan],
                  positions: Sequence[np.ndarray]) -> list[DecodedClip]:
        """One :class:`DeferredClip` per plan: the bytes of its reads, decoded after transfer."""
        blobs, height, width = self.read_encoded(record, unique)
        return [
            DecodedClip(
                frames=DeferredClip([blobs[int(k)] for k in pos], height, width, plan.keep,
                                    self.decode_float),
                frame_indices=tuple(int(i) for i in plan.selected),
                time_difference=plan.time_difference,
            )
            for plan, pos in zip(plans, positions)
        ]

    def read_frames(self, record: VideoRecord, ids: np.ndarray) -> np.ndarray:
        """Frames ``ids`` as one ``(N, H, W, 3)`` uint8 array (raises :class:`VideoDecodeError`)."""
        backend = self._get_backend()
        paths = [self.frame_path(record, int(i)) for i in ids]
        first = self._read_bytes(record, paths[0])
        try:
            h, w = backend.shape(first)
        except ValueError as exc:
            raise VideoDecodeError(paths[0], f"corrupt JPEG ({exc})") from None
        out = np.empty((len(paths), h, w, 3), dtype=np.uint8)

        def load(j: int) -> None:
            data = first if j == 0 else self._read_bytes(record, paths[j])
            try:
                backend.decode_into(data, out[j])
            except ValueError as exc:
                raise VideoDecodeError(paths[j], f"corrupt JPEG ({exc})") from None

        self._pool.map(load, range(len(paths)))
        return out

    # -- helpers ----------------------------------------------------------------------------

    def _read_bytes(self, record: VideoRecord, path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            if not os.path.isdir(record.path):
                raise VideoDecodeError(record.path, "frame folder not found") from None
            raise VideoDecodeError(
                path, "frame file not found (CSV frame count too large?)"
            ) from None
        except OSError as exc:
            raise VideoDecodeError(path, f"cannot read frame file ({exc})") from None

    def _get_backend(self) -> JpegBackend:
        if self._backend is None:
            self._backend = make_backend(self.jpeg_backend)
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_backend"] = None  # module handles are re-created in the receiving process
        state["_format"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._format = _make_formatter(self.filename_pattern)

    def __repr__(self) -> str:
        return (
            f"FrameDecoder(fps={self.fps}, frame_filter={self.planner.frame_filter}, "
            f"time_difference_prob={self.planner.time_difference_prob}, backend={self.backend_name}, "
            f"decode_on={self.decode_on})"
        )


def _make_formatter(pattern: str):
    """A function ``int -> file name`` for a printf- or format-style pattern (validated)."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(
            f"frame decoder: filename_pattern must be a non-empty string, got {pattern!r}"
        )
    if "{" in pattern:
        fmt = pattern.format
    else:

        def fmt(i: int) -> str:
            return pattern % i

    try:
        a, b = fmt(1), fmt(2)
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise ValueError(
            f"frame decoder: filename_pattern {pattern!r} must take one integer, like '%08d.jpg' ({exc})"
        ) from None
    if a == b or os.sep in a:
        raise ValueError(
            f"frame decoder: filename_pattern {pattern!r} must contain the frame number, like '%08d.jpg'"
        )
    return fmt
