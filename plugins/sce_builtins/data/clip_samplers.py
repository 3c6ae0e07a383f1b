"""Clip samplers: which time windows of a video become clips (docs/reference.md §5.8, exact rational timing).

A sampler is stateless: ``sampler(duration, rng) -> list[ClipWindow]`` returns every window of
one video, and :meth:`ClipSampler.group` says how the dataset turns the windows into samples:

* ``random_clip``: one sample holding one clip (``sample["input"]`` is a tensor);
* ``random_multi_clip``: one sample holding ``num_clips`` clips (``sample["input"]`` is a list);
* ``constant_clips_per_video`` and ``uniform_clip``: evaluation samplers, one sample per window
  (the dataset returns a list of samples, collated by ``multiple_samples``).

Durations are :class:`fractions.Fraction`; a float ``clip_duration`` is converted with
``Fraction(float)``, i.e. its exact binary value, as the reference does (2.56 s is about 5.3e-17
above 2.56). Randomness comes only from the numpy ``Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from sce_builtins.data.types import ClipWindow

__all__ = [  # ClipSampler is the base class of plugin samplers (docs/api.md)
    "ClipSampler",
    "ConstantClipsPerVideoSampler",
    "RandomClipSampler",
    "RandomMultiClipSampler",
    "UniformClipSampler",
]


def _positive_duration(component: str, value: float) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)) or value <= 0:
        raise ValueError(f"{component}: clip_duration must be a positive number of seconds, got {value!r}.")
    return Fraction(value)


class ClipSampler:
    """Base class of the clip samplers.

    Args:
        clip_duration: clip length in seconds.
    """

    #: True when the windows of one video are separate samples (evaluation samplers).
    multi_sample: bool = False
    #: True when one sample holds a list of clips (``sample["input"]`` is a list).
    list_input: bool = False

    def __init__(self, clip_duration: float) -> None:
        self.clip_duration = _positive_duration(type(self).__name__, clip_duration)

    def __call__(self, duration: Fraction, rng: np.random.Generator) -> list[ClipWindow]:
        """Return every window of a video of ``duration`` seconds."""
        raise NotImplementedError

    def group(self, windows: Sequence[ClipWindow]) -> list[list[ClipWindow]]:
        """Split the windows of one video into samples (a list of windows per sample)."""
        if self.multi_sample:
            return [[w] for w in windows]
        return [list(windows)]


def _random_window(
    clip: Fraction,
    duration: Fraction,
    rng: np.random.Generator,
    speeds: Sequence[float] | None,
    jitter_factor: float,
    clip_index: int = 0,
) -> ClipWindow:
    """The reference's RandomClipSampler (docs/reference.md §5.8): optional speed and jitter, start ~ U(0, max(dur - clip, 0))."""
    length = clip
    if speeds:
        length = length * Fraction(float(rng.choice(np.asarray(speeds, dtype=np.float64))))
    if jitter_factor:
        length = length * Fraction(float(rng.uniform(1.0 - jitter_factor, 1.0 + jitter_factor)))
    max_start = max(Fraction(duration) - length, Fraction(0))
    start = min(Fraction(float(rng.uniform(0.0, float(max_start)))), max_start)
    return ClipWindow(start, start + length, clip_index, 0)


def _check_speeds(component: str, speeds: Sequence[float] | None, jitter_factor: float) -> tuple | None:
    if jitter_factor < 0 or jitter_factor >= 1:
        raise ValueError(f"{component}: jitter_factor must be in [0, 1), got {jitter_factor}.")
    if speeds is None:
        return None
    speeds = tuple(float(s) for s in speeds)
    if any(s <= 0 for s in speeds):
        raise ValueError(f"{component}: speeds must be positive, got {list(speeds)}.")
    if speeds == (1.0,) or not speeds:
        return None  # [1] means no speed change (reference behaviour)
    return speeds


class RandomClipSampler(ClipSampler):
    """One clip per video at a uniformly random start (pretraining validation, linear-eval train).

    Args:
        clip_duration: clip length in seconds (2.56 in the recipe).
        speeds: optional playback speeds; the clip length is multiplied by a random one ([1] = none).
        jitter_factor: clip length multiplied by U(1 - f, 1 + f); 0 disables.
    """

    def __init__(
        self, clip_duration: float, speeds: Sequence[float] | None = None, jitter_factor: float = 0.0
    ) -> None:
        super().__init__(clip_duration)
        self.speeds = _check_speeds("random_clip", speeds, jitter_factor)
        self.jitter_factor = float(jitter_factor)

    def __call__(self, duration: Fraction, rng: np.random.Generator) -> list[ClipWindow]:
        """Return one random window."""
        return [_random_window(self.clip_duration, duration, rng, self.speeds, self.jitter_factor)]


class RandomMultiClipSampler(ClipSampler):
    """``num_clips`` independent random clips of one video in one sample (pretraining views).

    Args:
        clip_duration: clip length in seconds (2.56 in the recipe).
        num_clips: clips per sample (2 in the recipe); clips may overlap unless ``min_gap`` is set.
        speeds: optional playback speeds ([1] = none).
        jitter_factor: clip length multiplied by U(1 - f, 1 + f); 0 disables.
        min_gap: when set, every pair of clips is at least this many seconds apart (end of one
            to start of the other); a clip is redrawn up to ``max_tries`` times, then the draw
            farthest from the others is kept. ``None`` (the reference) draws independently.
        max_tries: redraws per clip when ``min_gap`` is set.
    """

    list_input = True

    def __init__(
        self,
        clip_duration: float,
        num_clips: int = 2,
        speeds: Sequence[float] | None = None,
        jitter_factor: float = 0.0,
        min_gap: float | None = None,
        max_tries: int = 20,
    ) -> None:
        super().__init__(clip_duration)
        if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1:
            raise ValueError(f"random_multi_clip: num_clips must be a positive integer, got {num_clips!r}.")
        if min_gap is not None and min_gap < 0:
            raise ValueError(f"random_multi_clip: min_gap must be >= 0 seconds or null, got {min_gap}.")
        if max_tries < 1:
            raise ValueError(f"random_multi_clip: max_tries must be >= 1, got {max_tries}.")
        self.num_clips = num_clips
        self.speeds = _check_speeds("random_multi_clip", speeds, jitter_factor)
        self.jitter_factor = float(jitter_factor)
        self.min_gap = None if min_gap is None else Fraction(min_gap)
        self.max_tries = max_tries

    def __call__(self, duration: Fraction, rng: np.random.Generator) -> list[ClipWindow]:
        """Return ``num_clips`` random windows (clip_index 0..num_clips-1)."""
        if self.min_gap is None:
            return [
                _random_window(self.clip_duration, duration, rng, self.speeds, self.jitter_factor, i)
                for i in range(self.num_clips)
            ]
        windows: list[ClipWindow] = []
        for i in range(self.num_clips):
            best, best_gap = None, None
            for _ in range(self.max_tries):
                cand = _random_window(self.clip_duration, duration, rng, self.speeds, self.jitter_factor, i)
                gap = min((_gap(cand, w) for w in windows), default=self.min_gap)
                if best_gap is None or gap > best_gap:
                    best, best_gap = cand, gap
                if gap >= self.min_gap:
                    break
            windows.append(best)
        return windows


def _gap(a: ClipWindow, b: ClipWindow) -> Fraction:
    """Seconds between two windows (negative when they overlap)."""
    return max(a.start, b.start) - min(a.end, b.end)


class ConstantClipsPerVideoSampler(ClipSampler):
    """``clips_per_video`` evenly spaced clips, each repeated ``augs_per_clip`` times (evaluation).

    Clip c starts at c * max(duration - clip, 0) / max(clips_per_video - 1, 1); every clip emits
    aug_index 0..augs_per_clip-1 before the next clip, so 10 clips x 3 augs = 30 samples per
    video, even for videos shorter than the clip (every clip then starts at 0).

    Args:
        clip_duration: clip length in seconds.
        clips_per_video: number of clips per video (10 in linear evaluation).
        augs_per_clip: samples per clip, e.g. one per spatial crop (3 in linear evaluation).
    """

    multi_sample = True

    def __init__(self, clip_duration: float, clips_per_video: int = 10, augs_per_clip: int = 1) -> None:
        super().__init__(clip_duration)
        for name, value in (("clips_per_video", clips_per_video), ("augs_per_clip", augs_per_clip)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"constant_clips_per_video: {name} must be a positive integer, got {value!r}."
                )
        self.clips_per_video = clips_per_video
        self.augs_per_clip = augs_per_clip

    def __call__(self, duration: Fraction, rng: np.random.Generator | None = None) -> list[ClipWindow]:
        """Return clips_per_video * augs_per_clip windows, clip-major then aug order."""
        max_start = max(Fraction(duration) - self.clip_duration, Fraction(0))
        spacing = max_start / max(self.clips_per_video - 1, 1)
        windows = []
        for c in range(self.clips_per_video):
            start = spacing * c
            for a in range(self.augs_per_clip):
                windows.append(ClipWindow(start, start + self.clip_duration, c, a))
        return windows


class UniformClipSampler(ClipSampler):
    """Consecutive clips covering the video with a fixed stride (pytorchvideo's uniform sampler).

    Clips start at 0, stride, 2*stride, ... and stop after the last clip whose successor would
    end more than ``eps`` after the video; with ``backpad_last`` the final clip is moved back
    to end exactly at the video end. A video shorter than the clip gives one clip at 0.

    Args:
        clip_duration: clip length in seconds.
        stride: seconds between clip starts (default: clip_duration, no overlap).
        backpad_last: shift the last clip back so that it ends at the video end.
        eps: tolerance in seconds when comparing clip ends with the video end.
    """

    multi_sample = True

    def __init__(
        self,
        clip_duration: float,
        stride: float | None = None,
        backpad_last: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(clip_duration)
        self.stride = self.clip_duration if stride is None else _positive_duration("uniform_clip", stride)
        self.backpad_last = bool(backpad_last)
        self.eps = Fraction(eps)

    def _window(self, previous_end: Fraction | None, duration: Fraction) -> tuple[Fraction, Fraction]:
        delta = self.stride - self.clip_duration
        start = (-delta if previous_end is None else previous_end) + delta
        end = start + self.clip_duration
        if self.backpad_last:
            start = max(Fraction(0), start - max(Fraction(0), end - duration))
            end = start + self.clip_duration
        return start, end

    def __call__(self, duration: Fraction, rng: np.random.Generator | None = None) -> list[ClipWindow]:
        """Return every window (clip_index 0, 1, ...)."""
        duration = Fraction(duration)
        windows: list[ClipWindow] = []
        end: Fraction | None = None
        limit = int(duration / self.stride) + 2  # more windows than this cannot occur
        while len(windows) <= limit:
            start, end = self._window(end, duration)
            windows.append(ClipWindow(start, end, len(windows), 0))
            _, next_end = self._window(end, duration)
            if self.backpad_last:
                if abs(next_end - end) < self.eps:
                    break
            elif next_end - duration > self.eps:
                break
        return windows
