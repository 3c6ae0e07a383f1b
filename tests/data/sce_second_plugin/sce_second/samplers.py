"""``near_pair``: two clips of one video at most ``max_gap`` seconds apart."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from sce_builtins.data.clip_samplers import ClipSampler
from sce_builtins.data.types import ClipWindow

CALLS = [0]  # read by the hook's callback: the run used this sampler


class NearPairSampler(ClipSampler):
    """Two clips whose starts are a random ``0..max_gap`` seconds apart (two views).

    Args:
        clip_duration: clip length in seconds.
        max_gap: largest distance in seconds between the starts of the two clips (>= 0).
    """

    list_input = True

    def __init__(self, clip_duration: float = 1.0, max_gap: float = 0.5) -> None:
        super().__init__(clip_duration)
        if max_gap < 0:
            raise ValueError(f"near_pair: max_gap must be >= 0, got {max_gap}")
        self.max_gap = Fraction(max_gap)

    def __call__(self, duration: Fraction, rng: np.random.Generator) -> list[ClipWindow]:
        """The two windows (clip_index 0 and 1) of a video of ``duration`` seconds."""
        CALLS[0] += 1
        clip = self.clip_duration
        gap = min(Fraction(float(rng.uniform(0, float(self.max_gap)))),
                  max(Fraction(duration) - clip, Fraction(0)))
        latest = max(Fraction(duration) - clip - gap, Fraction(0))
        start = min(Fraction(float(rng.uniform(0, float(latest)))), latest)
        return [ClipWindow(start, start + clip, clip_index=0),
                ClipWindow(start + gap, start + gap + clip, clip_index=1)]
