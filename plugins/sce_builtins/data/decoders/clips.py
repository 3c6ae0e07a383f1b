"""Shared clip logic of all decoders: window -> frame ids, frame filter, time difference, assembly.

Every decoder describes a video by a :class:`Timeline` (exact frame times) and reads a sorted
array of unique source frame ids into one preallocated ``(N, H, W, 3)`` uint8 array; this module
does the rest, identically for frame folders and encoded videos:

1. a window ``[start, end)`` must satisfy ``0 <= start <= duration`` (else
   :class:`ClipOutOfRangeError`); ``end`` is clamped to the duration;
2. its frames are those shown at ``start <= t < end`` (for frame folders ``t_i = i / fps``, i.e.
   ``[ceil(fps*start), ceil(fps*end))``); an empty range (a window shorter than one frame, or
   ``start == duration``) takes the single next frame, clamped to the last one;
3. per window, in this order, the time-difference coin ``rng.random() < prob`` (only drawn when
   ``prob > 0``) and then the frame filter's offsets (``random`` type draws from ``rng``);
4. time-difference clips expand their ids (docs/reference.md §5.7) and clamp them into the video;
5. all windows' ids are read once (sorted unique), clips are gathered with numpy fancy indexing
   (a view of the frame buffer when a clip's reads are consecutive in it and no other clip
   holds them, e.g. two clips that share no frame; clips never share memory), time-difference images computed, and ``decode_float`` casts to float32
   (values 0..255).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from sce_builtins.data.decoders.errors import ClipOutOfRangeError, VideoDecodeError
from sce_builtins.data.decoders.frame_filter import FrameFilter
from sce_builtins.data.decoders.time_difference import (
    clamp_ids,
    difference_image,
    expand_indices,
)
from sce_builtins.data.decoders.timing import ceil_fraction
from sce_builtins.data.types import ClipWindow, DecodedClip


class Timeline:
    """Frame times of one video (base class: constant rate ``fps``, frame ``i`` at ``i / fps``).

    Args:
        num_frames: number of source frames.
        fps: exact source frame rate.
        duration: length in seconds; defaults to ``num_frames / fps``.
    """

    def __init__(self, num_frames: int, fps: Fraction, duration: Fraction | None = None) -> None:
        self.num_frames = int(num_frames)
        self.fps = Fraction(fps)
        self.duration = Fraction(self.num_frames, 1) / self.fps if duration is None else duration

    def count_before(self, t: Fraction) -> int:
        """Number of source frames shown strictly before time ``t``."""
        return min(max(ceil_fraction(self.fps * t), 0), self.num_frames)

    def shown_at(self, t: Fraction) -> int:
        """Index of the source frame on screen at time ``t`` (clamped into the video)."""
        return min(max(math.floor(self.fps * t), 0), max(self.num_frames - 1, 0))


class ResampledTimeline:
    """A virtual constant-rate grid over a source timeline (``fps`` argument of video decoders).

    Grid frame ``k`` sits at ``k / rate`` and shows the source frame on screen at that time
    (:meth:`Timeline.shown_at`): frames are duplicated when ``rate`` exceeds the source rate and
    skipped when it is lower.

    Args:
        source: the video's real timeline.
        rate: the grid's frame rate.
    """

    def __init__(self, source: Timeline, rate: Fraction) -> None:
        self.source = source
        self.rate = Fraction(rate)
        self.duration = source.duration
        self.num_frames = ceil_fraction(self.rate * self.duration)

    def count_before(self, t: Fraction) -> int:
        return min(max(ceil_fraction(self.rate * t), 0), self.num_frames)

    def to_source(self, grid_ids: np.ndarray) -> np.ndarray:
        return np.array(
            [self.source.shown_at(Fraction(int(k)) / self.rate) for k in grid_ids], dtype=np.int64
        )


@dataclass
class ClipPlan:
    """Which source frames one window reads and which of them it returns."""

    selected: np.ndarray  # source ids of the returned frames (length T)
    read_ids: np.ndarray  # source ids to gather (expanded for time difference)
    keep: np.ndarray | None  # time-difference keep mask over ``read_ids``

    @property
    def time_difference(self) -> bool:
        return self.keep is not None


class ClipPlanner:
    """Turns windows into :class:`ClipPlan` s (steps 1-4 of the module docstring).

    Args:
        frame_filter: ``{subsample_type, num_samples}`` or ``None`` (every frame of the window).
        time_difference_prob: probability that a clip becomes a time-difference clip.
        owner: component name used in error messages.
    """

    def __init__(
        self,
        frame_filter: Mapping[str, Any] | None,
        time_difference_prob: float,
        owner: str,
    ) -> None:
        prob = float(time_difference_prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(
                f"{owner}: time_difference_prob must be in [0, 1], got {time_difference_prob!r}"
            )
        self.frame_filter = FrameFilter.from_config(frame_filter, owner)
        self.time_difference_prob = prob
        self.owner = owner

    def plan(
        self,
        path: str,
        windows: Sequence[ClipWindow],
        timeline: Timeline | ResampledTimeline,
        rng: np.random.Generator,
    ) -> list[ClipPlan]:
        """One plan per window (raises :class:`ClipOutOfRangeError` / :class:`VideoDecodeError`)."""
        source = timeline.source if isinstance(timeline, ResampledTimeline) else timeline
        if source.num_frames < 1 or timeline.num_frames < 1:
            raise VideoDecodeError(path, "video has no frames")
        duration = timeline.duration
        plans = []
        for window in windows:
            start, end = Fraction(window.start), Fraction(window.end)
            if start < 0 or start > duration:
                raise ClipOutOfRangeError(
                    path,
                    f"clip start {float(start):.6g} s outside the video [0, {float(duration):.6g}] s",
                )
            first = timeline.count_before(start)
            stop = timeline.count_before(min(end, duration))
            if stop <= first:
                first = min(first, timeline.num_frames - 1)
                stop = first + 1
            do_td = self.time_difference_prob > 0 and rng.random() < self.time_difference_prob
            t = stop - first
            offsets = self.frame_filter.offsets(t, rng) if self.frame_filter else np.arange(t)
            grid_ids = first + offsets.astype(np.int64)
            ids = (
                timeline.to_source(grid_ids)
                if isinstance(timeline, ResampledTimeline)
                else grid_ids
            )
            if do_td:
                expanded, keep = expand_indices(ids)
                plans.append(ClipPlan(ids, clamp_ids(expanded, source.num_frames), keep))
            else:
                plans.append(ClipPlan(ids, ids, None))
        return plans


def union_ids(plans: Sequence[ClipPlan]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sorted unique source ids of all plans and, per plan, positions of its reads in them."""
    all_ids = np.concatenate([p.read_ids for p in plans])
    unique, inverse = np.unique(all_ids, return_inverse=True)
    splits = np.cumsum([len(p.read_ids) for p in plans])[:-1]
    return unique, np.split(inverse.reshape(-1), splits)


def assemble(
    frames: np.ndarray,
    plans: Sequence[ClipPlan],
    positions: Sequence[np.ndarray],
    decode_float: bool,
) -> list[DecodedClip]:
    """Gather each clip from the unique frames ``(N, H, W, 3)`` uint8 and finish it."""
    clips = []
    viewed = np.zeros(len(frames), dtype=bool)
    for plan, pos in zip(plans, positions):
        span = slice(pos[0], pos[-1] + 1) if len(pos) else slice(0, 0)
        if len(pos) and np.all(np.diff(pos) == 1) and not viewed[span].any():
            clip = frames[span]  # consecutive reads no other clip holds: a view, no copy
            viewed[span] = True
        else:
            clip = frames[pos]
        if plan.keep is not None:
            clip = difference_image(clip, plan.keep)
        tensor = torch.from_numpy(np.ascontiguousarray(clip))
        if decode_float:
            tensor = tensor.to(torch.float32)
        clips.append(
            DecodedClip(
                frames=tensor,
                frame_indices=tuple(int(i) for i in plan.selected),
                time_difference=plan.time_difference,
            )
        )
    return clips


def as_generator(rng: Any) -> np.random.Generator:
    """The caller's numpy Generator, or a fresh OS-seeded one when ``None`` (not reproducible)."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
