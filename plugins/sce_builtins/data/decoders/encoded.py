"""Helpers shared by the decoders of encoded video files (``pyav``, ``torchcodec``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from sce_builtins.data.decoders.clips import (
    ClipPlan,
    ClipPlanner,
    ResampledTimeline,
    Timeline,
    as_generator,
    union_ids,
)
from sce_builtins.data.decoders.frame_filter import FrameFilterOptions
from sce_builtins.data.decoders.timing import rate_fraction
from sce_builtins.data.types import ClipWindow


def optional_rate(fps: Any, component: str) -> Fraction | None:
    """Check an optional ``fps`` argument; ``None`` stays ``None``, a number becomes an exact rate."""
    if fps is None:
        return None
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
        raise ValueError(f"{component}: fps must be a positive number or null, got {fps!r}")
    return rate_fraction(fps)


def check_int(value: Any, name: str, minimum: int, component: str) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{component}: {name} must be an integer >= {minimum}, got {value!r}")


class EncodedVideoDecoder:
    """Base of the encoded-video decoders: the output rate, the clip planner and the dtype.

    Args:
        fps: ``None`` uses the stream's own frame times; a number resamples to that rate.
        frame_filter: ``{subsample_type: uniform|random, num_samples: int}`` or ``None``.
        time_difference_prob: probability that a clip is a time-difference clip.
        decode_float: return float32 (0..255) clips instead of uint8.
    """

    component_name = "encoded video decoder"

    def __init__(
        self,
        fps: float | None = None,
        frame_filter: FrameFilterOptions | None = None,
        time_difference_prob: float = 0.0,
        decode_float: bool = False,
    ) -> None:
        self.fps = optional_rate(fps, self.component_name)
        self.planner = ClipPlanner(frame_filter, time_difference_prob, self.component_name)
        self.decode_float = bool(decode_float)


def lru_put(cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Store ``value`` under ``key``, dropping the least recently used entries beyond ``size``."""
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)


def plan_clips(
    planner: ClipPlanner,
    path: str,
    windows: Sequence[ClipWindow],
    timeline: Timeline,
    fps: Fraction | None,
    rng: Any,
) -> tuple[list[ClipPlan], np.ndarray, list[np.ndarray]]:
    """Plans of ``windows`` on ``timeline`` (resampled to ``fps`` if set) and their union of frames."""
    if fps is not None:
        timeline = ResampledTimeline(timeline, fps)
    plans = planner.plan(path, windows, timeline, as_generator(rng))
    unique, positions = union_ids(plans)
    return plans, unique, positions
