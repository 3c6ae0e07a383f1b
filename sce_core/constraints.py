"""Value constraints a component declares in its annotations, checked with the config.

A constraint is ``typing.Annotated`` metadata with a ``problem(value)`` method::

    from typing import Annotated
    from sce_core.constraints import Range

    def __init__(self, coeff: Annotated[float, Range(0, 1)] = 0.5,
                 size: Annotated[int, Range(ge=1)] = 1024): ...

The validator reports a violated constraint as a config problem with its path.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Constraint(Protocol):
    """Anything with ``problem(value) -> str | None`` (None: the value is fine)."""

    def problem(self, value: Any) -> str | None: ...


@dataclass(frozen=True)
class Range:
    """Inclusive bounds ``ge <= value <= le``; ``gt``/``lt`` for strict bounds.

    ``Range(0, 1)`` is ``0 <= value <= 1``; ``Range(gt=0)`` a positive number.
    """

    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # the type check reports non-numbers
        if (self.ge is not None and value < self.ge) or (self.le is not None and value > self.le) \
                or (self.gt is not None and value <= self.gt) or (self.lt is not None and value >= self.lt):
            return f"must be {self.text()}, got {value!r}"
        return None

    def text(self) -> str:
        """``in [0, 1]``, ``> 0``, ``>= 1 and < 5``."""
        low = (f">= {_num(self.ge)}" if self.ge is not None else
               f"> {_num(self.gt)}" if self.gt is not None else "")
        high = (f"<= {_num(self.le)}" if self.le is not None else
                f"< {_num(self.lt)}" if self.lt is not None else "")
        if self.ge is not None and self.le is not None:
            return f"in [{_num(self.ge)}, {_num(self.le)}]"
        return " and ".join(t for t in (low, high) if t)


#: A count that must be at least one (sizes, batch sizes, epochs of a schedule).
Positive = Range(ge=1)
#: A count that may be zero (workers, retries, warm-up epochs).
NonNegative = Range(ge=0)
#: A probability or a mixing coefficient.
UnitInterval = Range(0, 1)

#: Floats beyond this magnitude are almost surely typos (``1e308``) and overflow in arithmetic.
LARGEST_VALUE = 1e18


def finite_problem(value: Any) -> str | None:
    """A float that is infinite, NaN or absurdly large (``1e308`` overflows integer casts)."""
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) > LARGEST_VALUE):
        return f"{value!r} is not a usable number (finite, at most {LARGEST_VALUE:.0e} in size)"
    return None


def constraint_problem(value: Any, annotation: Any) -> str | None:
    """The first declared constraint ``value`` violates (``must be 0 <= value <= 1, got 7.5``).

    In a union, the constraints of the member the value belongs to apply.
    """
    from sce_core.signature import check_type

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        for item in meta:
            if isinstance(item, Constraint) and not isinstance(item, type):
                problem = item.problem(value)
                if problem:
                    return problem
        return constraint_problem(value, base)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            if check_type(value, member):
                return constraint_problem(value, member)
    return None


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
