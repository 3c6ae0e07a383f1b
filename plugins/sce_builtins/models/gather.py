"""All-gather helpers for the pretraining models: one fused collective per call, no-ops on one process.

Unlike the reference (which allocates a list of ``W`` tensors per call, docs/reference.md §9.12) these
helpers gather straight into one pre-allocated tensor with ``all_gather_single`` (named
``all_gather_into_tensor`` before torch 2.14). When ``torch.distributed`` is not initialised,
or the world has a single process, every helper returns its input unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "broadcast_",
    "concat_all_gather_with_backprop",
    "concat_all_gather_without_backprop",
    "get_rank",
    "get_world_size",
    "is_distributed",
]


def is_distributed() -> bool:
    """Whether a default process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_world_size() -> int:
    """Number of processes in the default group (1 without ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def get_rank() -> int:
    """Global rank of this process (0 without ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


@torch.no_grad()
def concat_all_gather_without_backprop(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, in rank order, without gradient.

    Args:
        x: tensor of the same shape on every rank.

    Returns:
        ``(W * x.shape[0], ...)`` tensor; ``x`` itself (detached) on a single process.
    """
    if not is_distributed():
        return x.detach()
    x = x.detach().contiguous()
    out = torch.empty((get_world_size() * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    _gather_single(out, x)
    return out


@torch.no_grad()
def broadcast_(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``x`` in place with rank ``src``'s value (no-op on a single process).

    Args:
        x: tensor of the same shape and dtype on every rank.
        src: global rank whose value every rank receives.
    """
    if is_distributed():
        dist.broadcast(x, src=src)
    return x


class _GatherWithGrad(torch.autograd.Function):
    """All-gather in forward; backward sums every rank's gradient of the gathered tensor and
    returns this rank's block (so each rank's loss reaches every rank's inputs)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.rows = x.shape[0]  # type: ignore[attr-defined]
        x = x.contiguous()
        out = torch.empty((get_world_size() * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
        _gather_single(out, x)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = get_rank() * ctx.rows  # type: ignore[attr-defined]
        return grad[start:start + ctx.rows]  # type: ignore[attr-defined]


def concat_all_gather_with_backprop(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, in rank order, keeping the gradient: the
    gradient of the result reaches every rank's ``x`` (summed over the ranks' losses).

    Args:
        x: tensor of the same shape on every rank.

    Returns:
        ``(W * x.shape[0], ...)`` tensor; ``x`` itself on a single process.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)
