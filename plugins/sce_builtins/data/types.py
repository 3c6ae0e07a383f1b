"""Shared data types of the video pipeline: what flows between dataset, sampler and decoder.

Layout contract:
  * a decoder returns each clip as a ``torch.uint8`` tensor ``(T, H, W, C)`` (channels-last),
    or ``float32`` in ``0..255`` when ``decode_float`` is asked for;
  * CPU transforms take and return ``(T, H, W, C)`` clips;
  * the dataset hands ``(C, T, H, W)`` clips (a permuted view) to the collate function, so a
    batch's ``"input"`` is ``(B, C, T, H, W)`` per view, as torchaug's ``video_format="CTHW"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

__all__ = ["ClipWindow", "DecodedClip", "VideoDecoder", "VideoRecord"]  # docs/api.md


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: where it is, its label and (when the annotation says) its length."""

    path: str
    label: int = -1
    num_frames: int | None = None
    name: str = ""


@dataclass(frozen=True)
class ClipWindow:
    """One clip to load: a time window in exact rational seconds and its indices."""

    start: Fraction
    end: Fraction
    clip_index: int = 0
    aug_index: int = 0


@dataclass
class DecodedClip:
    """A decoded clip with the frame indices it was read from (for tests and debugging)."""

    frames: Any  # torch.Tensor (T, H, W, C); a DeferredClip with the frame decoder's decode_on: gpu
    frame_indices: Sequence[int] = field(default_factory=tuple)
    time_difference: bool = False


@runtime_checkable
class VideoDecoder(Protocol):
    """Contract of a ``decoders`` component."""

    def duration(self, record: VideoRecord) -> Fraction:
        """Length of the video in seconds (exact where the source allows)."""

    def decode(
        self, record: VideoRecord, windows: Sequence[ClipWindow], rng: Any = None
    ) -> list[DecodedClip]:
        """Load every window of one video in one call (frames shared between clips read once)."""
