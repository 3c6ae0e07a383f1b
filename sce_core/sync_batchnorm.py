"""BatchNorm statistics over every rank, without a host synchronisation (``trainer.sync_batchnorm``).

``torch.nn.SyncBatchNorm`` drops the ranks with an empty batch by boolean-mask indexing, which
copies a count to the host in every forward (three blocking syncs per layer per step, 282 per
recipe step) and runs only on GPUs. :class:`GlobalBatchNorm` gathers each rank's
``(mean, biased variance, count)`` in one differentiable all-gather and combines them with the
parallel-variance formula on the device; on one process it is plain BatchNorm.

:class:`BatchNormSync` is the Lightning layer-sync plugin the runner installs when
``trainer.sync_batchnorm`` is true. It converts every BatchNorm layer except those that keep
per-device statistics on purpose: a layer with ``keeps_local_statistics = True`` (the
shuffle-BN target branch's split BatchNorm) is left alone, so shuffle-BN stays per device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from torch import Tensor, nn
from torch.distributed._functional_collectives import all_gather_tensor_autograd
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["BatchNormSync", "GlobalBatchNorm", "convert_to_global", "convert_to_local"]


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_moments(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, biased variance (per channel, dim 1) and count of ``x`` over every rank's batch.

    One all-gather of ``2 C + 1`` numbers per rank; gradients flow back to every rank's input.
    """
    dims = [0, *range(2, x.dim())]
    exact = x if x.dtype in (torch.float32, torch.float64) else x.float()
    var, mean = torch.var_mean(exact, dim=dims, unbiased=False)
    count = mean.new_full((1,), x.numel() // x.shape[1])
    local = torch.cat([mean, var, count]).unsqueeze(0)
    rows = all_gather_tensor_autograd(local, 0, dist.group.WORLD)  # (world, 2C + 1)
    c = x.shape[1]
    means, variances, counts = rows[:, :c], rows[:, c:2 * c], rows[:, 2 * c:]
    total = counts.sum()
    weights = counts / total
    mean_all = (weights * means).sum(0)
    var_all = (weights * (variances + (means - mean_all) ** 2)).sum(0)
    return mean_all, var_all, total


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
        mean, var, count = global_moments(x)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / self.num_batches_tracked.item() if self.momentum is None
                          else self.momentum)  # ``momentum=None`` (cumulative) needs the count
                unbiased = var * (count / (count - 1).clamp_min(1))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return torch.addcmul(shift.to(x.dtype).view(shape), x, scale.to(x.dtype).view(shape))


def _copy_into(new: _BatchNorm, old: _BatchNorm) -> _BatchNorm:
    """``new`` shares ``old``'s parameters and buffers (same tensors, same state-dict keys)."""
    for name, param in old.named_parameters(recurse=False):
        setattr(new, name, param)
    for name, buf in old.named_buffers(recurse=False):
        new.register_buffer(name, buf)
    new.train(old.training)
    return new


def convert_to_global(module: nn.Module) -> nn.Module:
    """Replace BatchNorm layers by :class:`GlobalBatchNorm` (in place; a bare layer is returned
    converted). Layers with ``keeps_local_statistics = True`` and converted ones are kept."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm) \
            and not getattr(module, "keeps_local_statistics", False):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.local_class = type(module)
        return _copy_into(new, module)
    for name, child in module.named_children():
        converted = convert_to_global(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def convert_to_local(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_to_global` (each layer goes back to its original class)."""
    if isinstance(module, GlobalBatchNorm):
        cls = getattr(module, "local_class", nn.BatchNorm1d)
        new = cls(module.num_features, module.eps, module.momentum, module.affine,
                  module.track_running_stats)
        return _copy_into(new, module)
    for name, child in module.named_children():
        converted = convert_to_local(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


class BatchNormSync(TorchSyncBatchNorm):
    """Lightning layer sync: :class:`GlobalBatchNorm` everywhere except local-statistics layers."""

    def apply(self, model: nn.Module) -> nn.Module:
        return convert_to_global(model)

    def revert(self, model: nn.Module) -> nn.Module:
        return convert_to_local(model)
