"""Exact rational timing: seconds as ``Fraction`` and the window -> frame-range rule of spec 5.6."""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Real


def to_fraction(value: Real | Fraction | str) -> Fraction:
    """Convert seconds or a rate to an exact ``Fraction``.

    ``int``/``Fraction`` are exact; a ``float`` keeps its exact binary value (as pytorchvideo's
    ``Fraction(clip_duration)``), except for frame rates where :func:`rate_fraction` is used.
    """
    if isinstance(value, Fraction):
        return value
    return Fraction(value)


def rate_fraction(fps: float | int | Fraction) -> Fraction:
    """A frame rate as a Fraction: 30 -> 30, 29.97 -> 2997/100 (decimal, not binary, value)."""
    if isinstance(fps, (int, Fraction)):
        return Fraction(fps)
    return Fraction(str(float(fps))).limit_denominator(1_000_000)


def ceil_fraction(x: Fraction) -> int:
    """Exact ceiling of a rational number."""
    return -((-x.numerator) // x.denominator)


def frame_range(
    start: Fraction, end: Fraction, fps: Fraction, duration: Fraction
) -> tuple[int, int]:
    """Frames of the window ``[start, end)``: ``[ceil(fps*start), ceil(fps*min(end, duration)))``.

    Frame ``i`` is shown at time ``i / fps``; it belongs to the window iff ``start <= i/fps < end``
    (end clamped to the duration). Returns ``(first, stop)``; the range may be empty.
    """
    end = min(end, duration)
    return ceil_fraction(fps * start), ceil_fraction(fps * end)


def floor_fraction(x: Fraction) -> int:
    """Exact floor of a rational number."""
    return math.floor(x)
