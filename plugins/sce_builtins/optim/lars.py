"""LARS optimizer exactly as docs/reference.md §4.2, vectorised with ``torch._foreach`` ops.

Per parameter ``p`` with gradient ``g`` (skipped if ``g`` is None):
  * ``p.ndim > 1``: ``d = g + wd * p``; ``a = eta * ||p|| / ||d||`` if both norms are > 0 else 1;
    ``d = a * d``;
  * otherwise (biases, norm affine parameters): ``d = g`` (no weight decay, no adaptation);
  * ``mu = momentum * mu + d`` (``mu`` starts at zero); ``p = p - lr * mu``.
No dampening, no Nesterov. The reference loops over parameters with separate norm kernels and
fresh tensors; here each group takes a handful of foreach kernels, one batched trust-ratio
computation and no allocation of parameter-sized tensors. The momentum update is written as
``mu <- lerp(mu, a * d / (1 - momentum), 1 - momentum)`` (one pass; equal up to rounding).

Deviation (documented on purpose): to avoid allocating ``d``, ``step()`` uses each parameter's
``.grad`` as scratch space, so after the step ``p.grad`` holds the scaled update ``a * d /
(1 - momentum)`` rather than the raw gradient (as ``GradScaler.unscale_`` or gradient clipping,
it modifies gradients in place). Read or log gradients before ``step()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

_NAME = "lars"


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling with momentum (docs/reference.md §4.2); 1-D params not adapted/decayed.

    Args:
        params: parameters or param groups (given by the optimizer factory at build time).
        lr: learning rate.
        momentum: momentum factor of the velocity buffer.
        weight_decay: L2 weight decay added to the gradient of multi-dimensional parameters.
        trust_coefficient: eta, scale of the trust ratio ``||p|| / ||g + wd * p||``.
    """

    __sce_runtime_args__ = ("params",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient < 0:
            raise ValueError(
                f"{_NAME}: lr, momentum, weight_decay and trust_coefficient must be >= 0 "
                f"(got {lr}, {momentum}, {weight_decay}, {trust_coefficient})."
            )
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient
        )
        super().__init__(params, defaults)

    def _buffers(self, params: list[Tensor]) -> list[Tensor]:
        bufs = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            bufs.append(state["momentum_buffer"])
        return bufs

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimisation step (consumes the gradients, see the module docstring)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._group_step(group, params)
        return loss

    def _group_step(self, group: dict[str, Any], params: list[Tensor]) -> None:
        if any(p.grad.is_sparse for p in params):
            raise ValueError(f"{_NAME}: sparse gradients are not supported.")
        lr, mom = group["lr"], group["momentum"]
        wd, eta = group["weight_decay"], group["trust_coefficient"]
        matrices = [p for p in params if p.ndim > 1]
        vectors = [p for p in params if p.ndim <= 1]
        ordered = matrices + vectors
        grads = [p.grad for p in ordered]  # used as scratch: d, then the scaled update
        ref = ordered[0]
        scales = []
        if matrices:
            d = grads[: len(matrices)]
            if wd != 0:
                torch._foreach_add_(d, matrices, alpha=wd)  # d = g + wd * p
            p_norm = torch.stack(torch._foreach_norm(matrices))
            d_norm = torch.stack(torch._foreach_norm(d))
            ok = (p_norm > 0) & (d_norm > 0)
            scales.append(torch.where(ok, eta * p_norm / torch.where(ok, d_norm, 1.0), 1.0))
        if vectors:
            scales.append(torch.ones(len(vectors), dtype=ref.dtype, device=ref.device))
        scale = torch.cat(scales).to(ref.dtype)
        bufs = self._buffers(ordered)
        if mom != 1.0:
            # mu <- mom * mu + a * d  ==  lerp(mu, a * d / (1 - mom), 1 - mom): one pass over mu
            torch._foreach_mul_(grads, list((scale / (1.0 - mom)).unbind()))
            torch._foreach_lerp_(bufs, grads, 1.0 - mom)
        else:
            torch._foreach_mul_(grads, list(scale.unbind()))
            torch._foreach_add_(bufs, grads)
        torch._foreach_add_(ordered, bufs, alpha=-lr)
