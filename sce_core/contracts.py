"""Per-kind smoke-test contracts, declared by plugins through the ``sce_kind_contracts`` hook.

A :class:`KindContract` says what ``sce plugin validate`` (and :func:`smoke_test`) checks of a
built component of one kind, and how to make up the runtime arguments that the code building
such a component normally supplies. The core defines no contract itself; the built-ins declare
those of the kinds whose conventions they define (trunks, heads, losses, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SmokeCheck = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class KindContract:
    """The smoke test of one kind and stand-ins for its runtime arguments.

    ``check(obj)`` returns a one-line problem of a built component, or None. ``runtime`` maps
    a runtime argument name (``params``) to a function making a stand-in value for it.
    """

    check: SmokeCheck | None = None
    runtime: Mapping[str, Callable[[], Any]] = field(default_factory=dict)


def kind_contracts() -> dict[str, KindContract]:
    """Every declared contract by kind (the built-ins' one wins over a third party's)."""
    from sce_core.hooks import declared

    return {kind: c for kind, c in declared("sce_kind_contracts", "kind contract").items()
            if isinstance(c, KindContract)}


def smoke_test(kind: str, obj: Any) -> str | None:
    """Run the declared smoke test of ``kind`` on a built component; a problem or None.

    Kinds without a declared contract pass. With the built-ins installed: trunks map a tiny
    CPU clip ``(2, 3, 4, 32, 32)`` (or image) batch to ``(2, num_features)``; heads map
    ``(4, input_dim)`` to ``(4, num_features)``; ``loss(q, k)`` is a finite scalar with a
    gradient; clip samplers give the same windows for the same seed; decoders, callbacks,
    optimizers, schedulers and transforms have the methods the framework calls.
    """
    contract = kind_contracts().get(kind)
    return contract.check(obj) if contract is not None and contract.check is not None else None


def smoke_runtime_args(kind: str, names: list[str]) -> dict[str, Any] | None:
    """Stand-in values for a component's runtime arguments (None: one has no stand-in)."""
    contract = kind_contracts().get(kind)
    makers = contract.runtime if contract is not None else {}
    if any(n not in makers for n in names):
        return None
    return {n: makers[n]() for n in names}
