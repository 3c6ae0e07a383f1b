"""Thin registry wrappers of ``torch.optim`` optimizers (SGD, Adam, AdamW).

Each takes ``params`` at build time (a runtime argument given by the optimizer factory) and
exposes only plainly typed arguments, so configs can be validated against the signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

_RUNTIME = ("params",)


def sgd(
    params: Iterable[Any],
    lr: float = 0.001,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.SGD:
    """Stochastic gradient descent (``torch.optim.SGD``).

    Args:
        params: parameters or param groups (given at build time).
        lr: learning rate.
        momentum: momentum factor.
        dampening: dampening for momentum.
        weight_decay: L2 penalty.
        nesterov: use Nesterov momentum.
    """
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )


def adam(
    params: Iterable[Any],
    lr: float = 0.001,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
) -> torch.optim.Adam:
    """Adam (``torch.optim.Adam``), L2 weight decay added to the gradient.

    Args:
        params: parameters or param groups (given at build time).
        lr: learning rate.
        betas: coefficients of the running averages of the gradient and its square.
        eps: term added to the denominator.
        weight_decay: L2 penalty.
        amsgrad: use the AMSGrad variant.
    """
    return torch.optim.Adam(
        params, lr=lr, betas=_betas(betas, "adam"), eps=eps, weight_decay=weight_decay,
        amsgrad=amsgrad,
    )


def adamw(
    params: Iterable[Any],
    lr: float = 0.001,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    amsgrad: bool = False,
) -> torch.optim.AdamW:
    """AdamW (``torch.optim.AdamW``), decoupled weight decay.

    Args:
        params: parameters or param groups (given at build time).
        lr: learning rate.
        betas: coefficients of the running averages of the gradient and its square.
        eps: term added to the denominator.
        weight_decay: decoupled weight decay coefficient.
        amsgrad: use the AMSGrad variant.
    """
    return torch.optim.AdamW(
        params, lr=lr, betas=_betas(betas, "adamw"), eps=eps, weight_decay=weight_decay,
        amsgrad=amsgrad,
    )


def _betas(betas: Sequence[float], name: str) -> tuple[float, float]:
    if len(betas) != 2:
        raise ValueError(f"{name}: betas must have two values, e.g. [0.9, 0.999]; got {betas!r}.")
    return float(betas[0]), float(betas[1])


for _fn in (sgd, adam, adamw):
    _fn.__sce_runtime_args__ = _RUNTIME  # type: ignore[attr-defined]
