"""The ``pyav`` decoder: encoded videos (mp4, avi, mkv, webm) through PyAV's bundled FFmpeg."""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from sce_builtins.data.decoders.clips import Timeline, assemble
from sce_builtins.data.decoders.encoded import EncodedVideoDecoder, check_int, lru_put, plan_clips
from sce_builtins.data.decoders.errors import VideoDecodeError
from sce_builtins.data.decoders.timing import ceil_fraction
from sce_builtins.data.types import ClipWindow, DecodedClip, VideoRecord
from sce_core.slots import BaseArgs


@dataclass(frozen=True)
class VideoIndex:
    """Demux-only index of a video stream: every frame's pts and the keyframes.

    ``pts`` are sorted presentation timestamps (stream time base), one per frame, so frame ``i``
    is the ``i``-th frame in presentation order and is shown at ``(pts[i] - pts[0]) * time_base``.
    """

    pts: np.ndarray  # int64, sorted
    keyframes: np.ndarray  # int64 frame indices of keyframes, sorted
    time_base: Fraction
    duration: Fraction
    average_rate: Fraction

    @property
    def num_frames(self) -> int:
        return int(self.pts.shape[0])

    def frame_of_pts(self, pts: int) -> int | None:
        """Frame index of a decoded frame's pts (``None`` if not in the index)."""
        i = int(np.searchsorted(self.pts, pts))
        return i if i < self.num_frames and int(self.pts[i]) == pts else None

    def keyframe_at_or_before(self, frame: int) -> int:
        """Last keyframe index ``<= frame`` (0 when the stream does not start on one)."""
        k = int(np.searchsorted(self.keyframes, frame, side="right")) - 1
        return int(self.keyframes[k]) if k >= 0 else 0


class PtsTimeline(Timeline):
    """Frame times from a :class:`VideoIndex` (exact for variable frame rates too).

    Args:
        index: the video's index.
    """

    def __init__(self, index: VideoIndex) -> None:
        super().__init__(index.num_frames, index.average_rate, index.duration)
        self._rel = index.pts - index.pts[0]
        self._tb = index.time_base

    def count_before(self, t: Fraction) -> int:
        # t_i < t  <=>  rel_pts_i < t / time_base  <=>  rel_pts_i < ceil(t / time_base)
        return int(np.searchsorted(self._rel, ceil_fraction(t / self._tb), side="left"))

    def shown_at(self, t: Fraction) -> int:
        i = int(np.searchsorted(self._rel, math.floor(t / self._tb), side="right")) - 1
        return min(max(i, 0), self.num_frames - 1)


class PyAVDecoder(EncodedVideoDecoder):
    """Decode clips from encoded videos with PyAV, decoding forward only and converting only needed frames.

    Time -> frame mapping: frames are indexed in presentation order from a demux-only pass
    (cached per file, keyed by path, mtime and size); frame ``i`` is shown at
    ``t_i = (pts_i - pts_0) * time_base`` and belongs to the window ``[start, end)`` iff
    ``start <= t_i < min(end, duration)``. For a constant-rate stream this is exactly the
    frame decoder's ``[ceil(fps*start), ceil(fps*end))``. With ``fps`` set, the window is laid on a
    virtual grid ``k / fps`` instead and grid frame ``k`` takes the source frame on screen at
    ``k / fps`` (time-difference neighbours are then adjacent *source* frames). The duration is
    the stream's (``stream.duration * time_base``), else the container's, else the span of the
    frames. Frame filter, time difference, randomness and ``decode_float`` behave as in the
    ``frame`` decoder (see :mod:`sce_builtins.data.decoders.clips`).

    Decoding: the sorted unique frames of all windows are visited in order; the decoder seeks
    (``backward=True`` to a keyframe) only when a keyframe lies after the current decoding
    position and at or before the next needed frame, otherwise it keeps decoding forward. Only
    needed frames are converted (``to_ndarray(format="rgb24")``). Containers are always closed.
    Counters ``seek_count``, ``open_count``, ``close_count``, ``decoded_frames``,
    ``converted_frames`` and ``index_builds`` are kept per decoder (per process).

    Args:
        fps: ``None`` uses the stream's own frame times; a number resamples to that rate.
        frame_filter: ``{subsample_type: uniform|random, num_samples: int}`` or ``None``.
        time_difference_prob: probability that a clip is a time-difference clip.
        decode_float: return float32 (0..255) clips instead of uint8 (see ``frame`` decoder).
        thread_count: FFmpeg decoding threads (slice threading). 1 is best in DataLoader workers;
            frame/auto threading is never used (known hangs with PyTorch workers).
        index_cache_size: number of per-file keyframe indices kept (least recently used dropped).
    """

    component_name = "pyav decoder"

    def __init__(
        self, *, thread_count: int = 1, index_cache_size: int = 4096, **kwargs: BaseArgs
    ) -> None:
        super().__init__(**kwargs)
        check_int(thread_count, "thread_count", 0, self.component_name)
        check_int(index_cache_size, "index_cache_size", 1, self.component_name)
        import av  # noqa: F401  (fail at construction if PyAV is missing)

        self.thread_count = thread_count
        self.index_cache_size = index_cache_size
        self._index_cache: OrderedDict[tuple[str, int, int], VideoIndex] = OrderedDict()
        self.seek_count = 0
        self.open_count = 0
        self.close_count = 0
        self.decoded_frames = 0
        self.converted_frames = 0
        self.index_builds = 0

    # -- public API -----------------------------------------------------------------------

    def index(self, record: VideoRecord) -> VideoIndex:
        """The (cached) frame/keyframe index of ``record.path``."""
        path = record.path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise VideoDecodeError(path, "video file not found") from None
        except OSError as exc:
            raise VideoDecodeError(path, f"cannot stat video ({exc})") from None
        key = (path, st.st_mtime_ns, st.st_size)
        cached = self._index_cache.get(key)
        if cached is not None:
            self._index_cache.move_to_end(key)
            return cached
        index = self._build_index(path)
        lru_put(self._index_cache, key, index, self.index_cache_size)
        return index

    def duration(self, record: VideoRecord) -> Fraction:
        """Stream duration in exact seconds (builds and caches the index)."""
        return self.index(record).duration

    def decode(
        self, record: VideoRecord, windows: Sequence[ClipWindow], rng: Any = None
    ) -> list[DecodedClip]:
        """Decode every window of one video in one forward pass over the file."""
        if not windows:
            return []
        index = self.index(record)
        plans, unique, positions = plan_clips(
            self.planner, record.path, windows, PtsTimeline(index), self.fps, rng
        )
        frames = self.read_frames(record.path, index, unique)
        return assemble(frames, plans, positions, self.decode_float)

    def read_frames(self, path: str, index: VideoIndex, ids: np.ndarray) -> np.ndarray:
        """Frames ``ids`` (sorted, unique) as ``(N, H, W, 3)`` uint8 (raises :class:`VideoDecodeError`)."""
        import av

        out: np.ndarray | None = None
        try:
            with self._open(path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "SLICE"
                stream.codec_context.thread_count = self.thread_count
                frames: Iterator[Any] | None = None
                pos = 0  # next frame index the decoder will output
                try:
                    for j, target in enumerate(int(i) for i in ids):
                        keyframe = index.keyframe_at_or_before(target)
                        if keyframe > pos or target < pos:
                            if frames is not None:
                                frames.close()
                            container.seek(
                                int(index.pts[keyframe]),
                                backward=True,
                                any_frame=False,
                                stream=stream,
                            )
                            self.seek_count += 1
                            frames, pos = None, keyframe
                        if frames is None:
                            frames = container.decode(stream)
                        pos, image = self._decode_until(path, index, frames, target)
                        if out is None:
                            out = np.empty((len(ids),) + image.shape, dtype=np.uint8)
                        if image.shape != out.shape[1:]:
                            raise VideoDecodeError(path, "frame size changes inside the video")
                        out[j] = image
                finally:
                    if frames is not None:
                        frames.close()
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(path, f"decoding failed ({exc})") from None
        assert out is not None
        return out

    # -- helpers ----------------------------------------------------------------------------

    def _decode_until(
        self, path: str, index: VideoIndex, frames: Iterator[Any], target: int
    ) -> tuple[int, np.ndarray]:
        """Decode forward to frame ``target``; returns (next position, RGB image)."""
        for frame in frames:
            self.decoded_frames += 1
            if frame.pts is None:
                raise VideoDecodeError(path, "decoded frame has no timestamp")
            idx = index.frame_of_pts(int(frame.pts))
            if idx is None or idx < target:
                continue
            if idx > target:
                raise VideoDecodeError(
                    path, f"frame {target} was skipped by the decoder (bad seek)"
                )
            self.converted_frames += 1
            return idx + 1, frame.to_ndarray(format="rgb24")
        raise VideoDecodeError(path, f"video ended before frame {target} (truncated?)")

    @contextmanager
    def _open(self, path: str) -> Iterator[Any]:
        import av

        try:
            container = av.open(path, metadata_errors="ignore")
        except FileNotFoundError:
            raise VideoDecodeError(path, "video file not found") from None
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoDecodeError(path, f"cannot open video ({exc})") from None
        self.open_count += 1
        try:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            yield container
        finally:
            container.close()
            self.close_count += 1

    def _build_index(self, path: str) -> VideoIndex:
        import av

        self.index_builds += 1
        pts: list[int] = []
        key_pts: list[int] = []
        try:
            with self._open(path) as container:
                stream = container.streams.video[0]
                time_base = Fraction(stream.time_base)
                for packet in container.demux(stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    pts.append(int(packet.pts))
                    if packet.is_keyframe:
                        key_pts.append(int(packet.pts))
                stream_duration = stream.duration
                container_duration = container.duration
                rate = stream.average_rate or stream.guessed_rate
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(path, f"cannot read video packets ({exc})") from None
        if not pts:
            raise VideoDecodeError(path, "video stream has no frames")
        pts_arr = np.unique(np.asarray(pts, dtype=np.int64))
        keyframes = np.unique(np.searchsorted(pts_arr, np.asarray(key_pts, dtype=np.int64)))
        if stream_duration:
            duration = Fraction(int(stream_duration)) * time_base
        elif container_duration:
            duration = Fraction(int(container_duration), 1_000_000)
        else:
            step = int(np.median(np.diff(pts_arr))) if len(pts_arr) > 1 else 1
            duration = Fraction(int(pts_arr[-1] - pts_arr[0] + step)) * time_base
        if rate:
            average_rate = Fraction(rate)
        else:
            average_rate = Fraction(len(pts_arr)) / duration if duration > 0 else Fraction(1)
        return VideoIndex(pts_arr, keyframes.astype(np.int64), time_base, duration, average_rate)

    def __repr__(self) -> str:
        return (
            f"PyAVDecoder(fps={self.fps}, frame_filter={self.planner.frame_filter}, "
            f"time_difference_prob={self.planner.time_difference_prob}, thread_count={self.thread_count})"
        )
