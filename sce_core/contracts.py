"""Per-kind smoke-test contracts, declared by plugins through the ``sce_kind_contracts`` hook.

A :class:`KindContract` says what ``sce plugin validate`` (and :func:`smoke_test`) checks of a
built component of one kind, and how to make up the runtime arguments that the code building
such a component normally supplies. The core defines no contract itself; the built-ins declare
those of the kinds whose conventions they define (trunks, heads, losses, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SmokeCheck = Callable[[Any], "str | None"]

__all__ = ["KindContract", "smoke_test"]  # docs/api.md


@dataclass(frozen=True)
class KindContract:
    """The smoke test of one kind and stand-ins for its runtime arguments.

    ``check(obj)`` returns a one-line problem of a built component, or None. ``runtime`` maps
    a runtime argument name (``params``) to a function making a stand-in value for it.
    ``at_run_start``: the check also runs on the components of this kind that a run builds,
    before its folder is created (keep such checks cheap).
    """

    check: SmokeCheck | None = None
    runtime: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    at_run_start: bool = False


def kind_contracts() -> dict[str, KindContract]:
    """Every declared contract by kind (the built-ins' one wins over a third party's)."""
    from sce_core.hooks import declared

    return {kind: c for kind, c in declared("sce_kind_contracts", "kind contract").items()
            if isinstance(c, KindContract)}


def has_contract(kind: str) -> bool:
    """Whether a plugin declares a smoke test for ``kind``."""
    contract = kind_contracts().get(kind)
    return contract is not None and contract.check is not None


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


def run_start_problems(parts: Sequence[Any]) -> list[str]:
    """The ``at_run_start`` checks on the components a run built (``sce_core.building.Built``).

    Each problem names the config path, the component and its provider. The checks leave the
    random streams and each module's train/eval mode as they were.
    """
    import torch

    contracts = kind_contracts()
    problems = []
    for part in parts:
        contract = contracts.get(part.kind)
        if contract is None or contract.check is None or not contract.at_run_start:
            continue
        training = getattr(part.obj, "training", None)
        with torch.random.fork_rng(devices=[]):
            try:
                problem = contract.check(part.obj)
            except Exception as exc:  # noqa: BLE001 - reported with the component named
                text = str(exc).strip().splitlines()
                problem = f"{type(exc).__name__}: {text[0] if text else ''}"
        if isinstance(training, bool) and hasattr(part.obj, "train"):
            part.obj.train(training)
        if problem:
            problems.append(f"{part.path}: {part.label} from {part.provider} breaks the "
                            f"{part.kind} contract: {problem}")
    return problems
