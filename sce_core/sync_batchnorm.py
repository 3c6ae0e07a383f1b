"""BatchNorm statistics over every rank, without a host synchronisation (``trainer.sync_batchnorm``).

``torch.nn.SyncBatchNorm`` drops the ranks with an empty batch by boolean-mask indexing, which
copies a count to the host in every forward (three blocking syncs per layer per step, 282 per
recipe step) and runs only on GPUs. :class:`GlobalBatchNorm` gathers each rank's
``(mean, biased variance, count)`` in one all-gather and combines them with the
parallel-variance formula on the device, and its backward sums two per-channel gradient terms
in one all-reduce; on one process it is plain BatchNorm.

:class:`BatchNormSync` is the Lightning layer-sync plugin the runner installs when
``trainer.sync_batchnorm`` is true. It converts every BatchNorm layer except those that keep
per-device statistics on purpose: a layer with ``keeps_local_statistics = True`` (the
shuffle-BN target branch's split BatchNorm) is left alone, so shuffle-BN stays per device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as fc
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["BatchNormSync", "GlobalBatchNorm", "convert_to_global", "convert_to_local"]


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


# ``all_gather_tensor`` is deprecated (with a warning at every call) where the new name exists
_all_gather = getattr(fc, "all_gather_single", fc.all_gather_tensor)


def _gather_rows(local: Tensor) -> Tensor:
    """``(world, n)``: every rank's row ``local`` (1, n), in rank order."""
    return _all_gather(local, 0, dist.group.WORLD)


def _sum_over_ranks(t: Tensor) -> Tensor:
    return fc.all_reduce(t, "sum", dist.group.WORLD)


def _reduce_dims(x: Tensor) -> list[int]:
    return [0, *range(2, x.dim())]


def _per_channel(t: Tensor, x: Tensor) -> Tensor:
    return t.view((1, -1) + (1,) * (x.dim() - 2))


class _GlobalBatchNormFunction(torch.autograd.Function):
    """Forward: the global mean and variance from every rank's (mean, variance, count) with
    the parallel-variance formula (one all-gather), then torch's fused normalisation. Backward:
    torch's fused BatchNorm reduction gives this rank's two per-channel sums (one pass over
    ``dy`` and ``x``), one all-reduce makes them global, and the input gradient takes two
    elementwise passes; weight and bias gradients stay local (DDP sums them). Written out,
    autograd records one node per layer instead of the thirty-odd small ops of the composite
    formula."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float,
                running: tuple[Tensor, Tensor, float] | None) -> Tensor:
        # Statistics in float32 or wider whatever the autocast (an autocast ``mm`` would combine
        # them in bf16); the normalisation takes x's dtype with float32 statistics.
        with torch.autocast(x.device.type, enabled=False):
            return _GlobalBatchNormFunction._forward(ctx, x, weight, bias, eps, running)

    @staticmethod
    def _forward(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float,
                 running: tuple[Tensor, Tensor, float] | None) -> Tensor:
        c = x.shape[1]
        exact = x if x.dtype in (torch.float32, torch.float64) else x.float()
        var, mean = torch.var_mean(exact, dim=_reduce_dims(x), unbiased=False)
        local = torch.cat([mean, var, mean.new_full((1,), x.numel() // c)]).unsqueeze(0)
        rows = _gather_rows(local)  # (world, 2C + 1)
        total = rows[:, 2 * c:].sum()
        weights = (rows[:, 2 * c:] / total).t()  # (1, world)
        mean_all = torch.mm(weights, rows[:, :c])
        spread = rows[:, :c] - mean_all
        var_all = torch.mm(weights, torch.addcmul(rows[:, c:2 * c], spread, spread)).squeeze(0)
        mean_all = mean_all.squeeze(0)
        if running is not None:
            running_mean, running_var, factor = running
            unbiased = var_all * (total / (total - 1).clamp_min(1))
            torch._foreach_lerp_([running_mean, running_var],
                                 [mean_all.to(running_mean.dtype), unbiased.to(running_var.dtype)], factor)
        ctx.save_for_backward(x, mean_all, var_all, weight, total)  # invstd: in backward only
        ctx.eps, ctx.has_bias = eps, bias is not None
        # the normalisation with given statistics: one fused kernel (inference-mode BatchNorm)
        return F.batch_norm(x, mean_all, var_all, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, mean, var, weight, total = ctx.saved_tensors
        c = x.shape[1]
        invstd = torch.rsqrt(var + ctx.eps)
        # this rank's sum(dy * xhat) and sum(dy), xhat taken with the global statistics
        _, sum_dy_xhat, sum_dy = torch.ops.aten.native_batch_norm_backward(
            dy, x, weight, None, None, mean, invstd, True, ctx.eps, [False, True, True])
        means = _sum_over_ranks(torch.cat([sum_dy, sum_dy_xhat])) / total
        scale = invstd if weight is None else invstd * weight
        # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd
        # = scale * dy - slope * x + (slope * mean - shift): two passes over the activations
        slope = scale * invstd * means[c:]
        offset = slope * mean - scale * means[:c]
        dx = torch.addcmul(_per_channel(offset, x), x, _per_channel(slope, x), value=-1)
        dx.addcmul_(dy, _per_channel(scale, x))
        grad_weight = sum_dy_xhat.to(weight.dtype) if weight is not None and ctx.needs_input_grad[1] else None
        grad_bias = sum_dy.to(dy.dtype if weight is None else weight.dtype) \
            if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx.to(x.dtype), grad_weight, grad_bias, None, None


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the concatenated batch of all ranks (any input rank >= 2).

    Normalises with the global mean and biased variance; running statistics take the unbiased
    global variance, as ``torch.nn.SyncBatchNorm`` does. Evaluation and a single process use
    the plain BatchNorm path.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"GlobalBatchNorm: expected an input with at least 2 dims, got {x.dim()}")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or _world_size() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        running = None
        if self.track_running_stats and self.running_mean is not None:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / self.num_batches_tracked.item() if self.momentum is None
                      else self.momentum)  # ``momentum=None`` (cumulative) needs the count
            running = (self.running_mean, self.running_var, factor)
        return _GlobalBatchNormFunction.apply(x, self.weight, self.bias, self.eps, running)


def _copy_into(new: _BatchNorm, old: _BatchNorm) -> _BatchNorm:
    """``new`` shares ``old``'s parameters and buffers (same tensors, same state-dict keys)."""
    for name, param in old.named_parameters(recurse=False):
        setattr(new, name, param)
    for name, buf in old.named_buffers(recurse=False):
        new.register_buffer(name, buf)
    new.train(old.training)
    return new


def _replace_layers(module: nn.Module, convert: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """``module`` with every layer that ``convert`` maps to a new one replaced (in place; a bare
    layer is returned converted). ``convert`` returns None to look inside a layer instead."""
    converted = convert(module)
    if converted is not None:
        return converted
    for name, child in module.named_children():
        new = _replace_layers(child, convert)
        if new is not child:
            setattr(module, name, new)
    return module


def _to_global(layer: nn.Module) -> nn.Module | None:
    if not isinstance(layer, _BatchNorm) or isinstance(layer, GlobalBatchNorm) \
            or getattr(layer, "keeps_local_statistics", False):
        return None
    new = GlobalBatchNorm(layer.num_features, layer.eps, layer.momentum, layer.affine,
                          layer.track_running_stats)
    new.local_class = type(layer)
    return _copy_into(new, layer)


def _to_local(layer: nn.Module) -> nn.Module | None:
    if not isinstance(layer, GlobalBatchNorm):
        return None
    cls = getattr(layer, "local_class", nn.BatchNorm1d)
    return _copy_into(cls(layer.num_features, layer.eps, layer.momentum, layer.affine,
                          layer.track_running_stats), layer)


def convert_to_global(module: nn.Module) -> nn.Module:
    """Replace BatchNorm layers by :class:`GlobalBatchNorm` (in place; a bare layer is returned
    converted). Layers with ``keeps_local_statistics = True`` and converted ones are kept."""
    return _replace_layers(module, _to_global)


def convert_to_local(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_to_global` (each layer goes back to its original class)."""
    return _replace_layers(module, _to_local)


class BatchNormSync(TorchSyncBatchNorm):
    """Lightning layer sync: :class:`GlobalBatchNorm` everywhere except local-statistics layers."""

    def apply(self, model: nn.Module) -> nn.Module:
        return convert_to_global(model)

    def revert(self, model: nn.Module) -> nn.Module:
        return convert_to_local(model)
