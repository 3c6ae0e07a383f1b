"""``strided_pair``: two clips of one video a fixed time apart (two pretraining views)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from sce_builtins.data.clip_samplers import ClipSampler
from sce_builtins.data.types import ClipWindow

_NAME = "strided_pair"


class StridedPairSampler(ClipSampler):
    """Two clips per video whose starts are ``stride`` seconds apart, at a random position.

    The first clip starts uniformly in ``[0, duration - stride - clip_duration]``; the second
    starts ``stride`` seconds later. When the video is too short for that, the stride shrinks
    to ``duration - clip_duration`` (the second clip ends at the video's end), and to 0 when
    the video is shorter than one clip. Both clips form one sample (``sample["input"]`` is a
    list of two clips, ``clip_index`` 0 and 1), as the SCE model's two views.

    Args:
        clip_duration: clip length in seconds.
        stride: seconds between the starts of the two clips (>= 0; 0 gives the same window
            twice, i.e. two augmentations of one clip).
    """

    list_input = True

    def __init__(self, clip_duration: float = 1.0, stride: float = 2.0) -> None:
        super().__init__(clip_duration)
        if isinstance(stride, bool) or not isinstance(stride, (int, float)) or stride < 0:
            raise ValueError(f"{_NAME}: stride must be a number of seconds >= 0, got {stride!r}")
        self.stride = Fraction(stride)

    def __call__(self, duration: Fraction, rng: np.random.Generator) -> list[ClipWindow]:
        """Return the two windows (clip_index 0 and 1) of a video of ``duration`` seconds."""
        clip = self.clip_duration
        stride = min(self.stride, max(Fraction(duration) - clip, Fraction(0)))
        max_start = max(Fraction(duration) - stride - clip, Fraction(0))
        start = min(Fraction(float(rng.uniform(0.0, float(max_start)))), max_start)
        return [
            ClipWindow(start, start + clip, clip_index=0),
            ClipWindow(start + stride, start + stride + clip, clip_index=1),
        ]
