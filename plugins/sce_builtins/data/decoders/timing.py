"""Exact rational timing: a frame rate as ``Fraction`` and an exact ceiling (used by the frame-range
rule of docs/reference.md §5.6 in ``clips.py``)."""

from __future__ import annotations

from fractions import Fraction


def rate_fraction(fps: float | int | Fraction) -> Fraction:
    """A frame rate as a Fraction: 30 -> 30, 29.97 -> 2997/100 (decimal, not binary, value)."""
    if isinstance(fps, (int, Fraction)):
        return Fraction(fps)
    return Fraction(str(float(fps))).limit_denominator(1_000_000)


def ceil_fraction(x: Fraction) -> int:
    """Exact ceiling of a rational number."""
    return -((-x.numerator) // x.denominator)
