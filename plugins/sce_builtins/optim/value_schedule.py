"""Scalar value schedules for the SCE coefficient and target temperature (docs/reference.md §1.8).

``scheduler_value(kind, start, end, step, max_step)`` moves a value from ``start`` (step 0) to
``end`` (step ``max_step``).

Differences from the reference ``scheduler_value`` (documented on purpose):
  * ``linear`` with ``end >= start`` ramped from ``end`` to ``start`` (reversed) in the
    reference; here it always goes from ``start`` to ``end``. For ``end < start`` both agree;
  * progress is clamped to [0, 1] (the reference extrapolated past ``max_step``), and
    ``max_step <= 0`` returns ``end`` instead of dividing by zero.
"""

from __future__ import annotations

import math
from typing import Literal

ValueScheduleKind = Literal["linear", "cosine"]


def scheduler_value(
    kind: ValueScheduleKind | None, start: float, end: float, step: int, max_step: int
) -> float:
    """Value at ``step`` of a ``linear`` or ``cosine`` ramp from ``start`` to ``end``.

    ``kind`` None keeps ``start``. ``linear``: ``start + p * (end - start)``; ``cosine``:
    ``start + (1 - cos(pi * p)) / 2 * (end - start)``, with ``p = clamp(step / max_step, 0, 1)``.
    """
    if kind is None:
        return float(start)
    if kind not in ("linear", "cosine"):
        raise ValueError(
            f"scheduler_value: unknown schedule {kind!r}; use 'linear', 'cosine' or null."
        )
    if max_step <= 0:
        return float(end)
    p = min(max(step / max_step, 0.0), 1.0)
    if kind == "linear":
        return start + p * (end - start)
    c = 0.5 * (1.0 + math.cos(math.pi + math.pi * p))
    return start + c * (end - start)
