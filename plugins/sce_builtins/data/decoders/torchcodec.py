"""The ``torchcodec`` decoder: encoded videos through torchcodec (optional; needs system FFmpeg)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal

from sce_builtins.data.decoders.clips import Timeline, assemble
from sce_builtins.data.decoders.encoded import EncodedVideoDecoder, check_int, lru_put, plan_clips
from sce_builtins.data.decoders.errors import VideoDecodeError
from sce_builtins.data.types import ClipWindow, DecodedClip, VideoRecord
from sce_core.slots import BaseArgs

INSTALL_HINT = "pip install 'sce-core[torchcodec]' and install system FFmpeg 4-7 shared libraries"


def _import_video_decoder() -> Any:
    """torchcodec's ``VideoDecoder`` class, or ``ImportError`` with a one-line install hint."""
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as exc:  # missing package, or its FFmpeg libraries fail to load
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ImportError(f"torchcodec decoder unavailable ({first}): {INSTALL_HINT}") from None
    return VideoDecoder


class TorchCodecDecoder(EncodedVideoDecoder):
    """Decode clips with torchcodec: one exact-seek ``get_frames_at`` call per sample.

    Time -> frame mapping: the stream is taken as constant-rate at its ``average_fps``
    (metadata of torchcodec's exact-mode scan): frame ``i`` is shown at ``i / average_fps``, the
    duration is ``num_frames / average_fps`` and a window ``[start, end)`` covers frames
    ``[ceil(r*start), ceil(r*min(end, duration)))``, as the ``frame`` decoder. With ``fps`` set the
    window is laid on a virtual grid ``k / fps`` (frame shown at that time). The sorted unique
    frames of all windows are fetched with a single ``get_frames_at(indices=...)`` call
    (torchcodec sorts them and never seeks backwards). Metadata is cached per file (path, mtime,
    size). Frame filter, time difference, randomness and ``decode_float`` behave as in the
    ``frame`` decoder.

    Args:
        fps: ``None`` uses the stream's frame rate; a number resamples to that rate.
        frame_filter: ``{subsample_type: uniform|random, num_samples: int}`` or ``None``.
        time_difference_prob: probability that a clip is a time-difference clip.
        decode_float: return float32 (0..255) clips instead of uint8.
        num_ffmpeg_threads: FFmpeg threads per decoder (1 is best in DataLoader workers).
        seek_mode: ``exact`` (scan the file, exact frame indices) or ``approximate``.
        device: ``cpu``, or ``cuda`` for NVDEC decoding (torchcodec's beta CUDA backend; frames
            are copied back to the CPU for clip assembly, so this only offloads the decode).
        metadata_cache_size: number of per-file metadata entries kept.
    """

    component_name = "torchcodec decoder"

    def __init__(
        self,
        *,
        num_ffmpeg_threads: int = 1,
        seek_mode: Literal["exact", "approximate"] = "exact",
        device: str = "cpu",
        metadata_cache_size: int = 4096,
        **kwargs: BaseArgs,
    ) -> None:
        self._video_decoder_cls = _import_video_decoder()
        super().__init__(**kwargs)
        if seek_mode not in ("exact", "approximate"):
            raise ValueError(
                f"torchcodec decoder: seek_mode must be 'exact' or 'approximate', got {seek_mode!r}"
            )
        check_int(num_ffmpeg_threads, "num_ffmpeg_threads", 0, self.component_name)
        self.num_ffmpeg_threads = num_ffmpeg_threads
        self.seek_mode = seek_mode
        self.device = device
        self.metadata_cache_size = metadata_cache_size
        self._meta: OrderedDict[tuple[str, int, int], tuple[int, Fraction]] = OrderedDict()

    def _open(self, path: str) -> Any:
        try:
            return self._video_decoder_cls(
                path,
                seek_mode=self.seek_mode,
                num_ffmpeg_threads=self.num_ffmpeg_threads,
                dimension_order="NHWC",
                device=self.device,
            )
        except Exception as exc:
            raise VideoDecodeError(path, f"cannot open video ({exc})") from None

    def _stream_info(self, path: str, decoder: Any | None = None) -> tuple[int, Fraction]:
        """(num_frames, frame rate) of ``path``, cached per path/mtime/size."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise VideoDecodeError(path, "video file not found") from None
        key = (path, st.st_mtime_ns, st.st_size)
        info = self._meta.get(key)
        if info is None:
            meta = (decoder or self._open(path)).metadata
            num_frames = meta.num_frames
            fps = meta.average_fps
            if not num_frames or not fps:
                raise VideoDecodeError(path, "stream metadata has no frame count or frame rate")
            info = (int(num_frames), Fraction(float(fps)).limit_denominator(100_000))
            lru_put(self._meta, key, info, self.metadata_cache_size)
        return info

    def duration(self, record: VideoRecord) -> Fraction:
        """``num_frames / average_fps`` in exact seconds."""
        num_frames, rate = self._stream_info(record.path)
        return Fraction(num_frames) / rate

    def decode(
        self, record: VideoRecord, windows: Sequence[ClipWindow], rng: Any = None
    ) -> list[DecodedClip]:
        """Decode every window of one video with a single ``get_frames_at`` call."""
        if not windows:
            return []
        decoder = self._open(record.path)
        num_frames, rate = self._stream_info(record.path, decoder)
        plans, unique, positions = plan_clips(
            self.planner, record.path, windows, Timeline(num_frames, rate), self.fps, rng
        )
        try:
            batch = decoder.get_frames_at(indices=[int(i) for i in unique])
            frames = batch.data.cpu().numpy()
        except Exception as exc:
            raise VideoDecodeError(record.path, f"decoding failed ({exc})") from None
        return assemble(frames, plans, positions, self.decode_float)
