"""Value constraints a component declares in its annotations, checked with the config.

A constraint is ``typing.Annotated`` metadata with a ``problem(value)`` method::

    from typing import Annotated
    from sce_core.constraints import Range

    def __init__(self, coeff: Annotated[float, Range(0, 1)] = 0.5,
                 size: Annotated[int, Range(ge=1)] = 1024): ...

A constraint that also has ``sibling_problem(value, siblings)`` compares the value with the
other arguments of the same component (:class:`AtMost`)::

    def warmup(warmup_epochs: Annotated[float, Range(ge=0), AtMost("max_epochs")],
               max_epochs: Annotated[float, Range(gt=0)]): ...

The validator reports a violated constraint as a config problem with its path.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
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


@dataclass(frozen=True)
class AtMost:
    """The value must not exceed the sibling argument ``other`` (when both are numbers).

    ``AtMost("max_epochs")`` on ``warmup_epochs``: a warm-up longer than the whole schedule
    cannot be built.
    """

    other: str

    def problem(self, value: Any) -> str | None:
        return None  # needs the siblings: see sibling_problem

    def sibling_problem(self, value: Any, siblings: Mapping[str, Any]) -> str | None:
        bound = siblings.get(self.other)
        if not (_is_number(value) and _is_number(bound)) or value <= bound:
            return None
        return f"must be at most '{self.other}' ({_num(bound)}), got {_num(value)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def constraint_problem(value: Any, annotation: Any,
                       siblings: Mapping[str, Any] | None = None) -> str | None:
    """The first declared constraint ``value`` violates (``must be 0 <= value <= 1, got 7.5``).

    In a union, the constraints of the member the value belongs to apply. ``siblings``: the
    other arguments of the same component, for constraints that compare with them.
    """
    from sce_core.signature import check_type

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        for item in meta:
            if isinstance(item, Constraint) and not isinstance(item, type):
                problem = item.problem(value)
                if not problem and siblings is not None and hasattr(item, "sibling_problem"):
                    problem = item.sibling_problem(value, siblings)
                if problem:
                    return problem
        return constraint_problem(value, base, siblings)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            if check_type(value, member):
                return constraint_problem(value, member, siblings)
    return None


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
