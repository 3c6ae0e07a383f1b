"""Shuffle-BN (MoCo) for the momentum branch, and BatchNorm over simulated devices.

Shuffle-BN feeds the target network a permuted batch so that BatchNorm statistics cannot leak
which samples are positives. It needs several "devices" to have any effect: on one process the
devices are simulated by :class:`SplitBatchNorm1d` / ``2d`` / ``3d``, which normalise each of
``num_splits`` contiguous chunks of the batch with its own statistics, exactly as ``num_splits``
separate devices each holding one chunk would.

Improvements over the reference (docs/reference.md §2.4, §9.11), each deliberate:
  * BN1d, BN2d and BN3d are all converted (the reference only converted BN2d, so the video
    recipe's shuffle-BN silently did nothing);
  * a simulated device holds a contiguous chunk of the batch (the reference interleaved
    samples ``n mod S``); running statistics are the mean over the chunks in both cases;
  * the returned ``h`` is restored to the original order, like ``z``;
  * ``trainer.sync_batchnorm`` does not turn these layers into global BatchNorm (Lightning's
    own conversion would, and shuffle-BN would then silently become global BN).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .gather import broadcast_, concat_all_gather_without_backprop, get_rank, get_world_size

__all__ = [
    "SplitBatchNorm1d",
    "SplitBatchNorm2d",
    "SplitBatchNorm3d",
    "convert_to_split_batchnorm",
    "set_num_simulated_devices",
    "shuffled_forward",
]


class _SplitBatchNormMixin:
    """Forward of a BatchNorm whose training statistics are computed per chunk of the batch."""

    num_splits: int = 1
    #: ``trainer.sync_batchnorm`` leaves these layers per device (sce_core.sync_batchnorm).
    keeps_local_statistics: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        n = int(self.num_splits)
        if not bn_training or n <= 1:
            return super().forward(x)
        if x.shape[0] % n != 0:
            raise ValueError(
                f"{type(self).__name__}: a batch of {x.shape[0]} samples cannot be split into "
                f"{n} simulated devices; use a batch size divisible by simulate_n_devices"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        n_per, c = x.shape[0] // n, x.shape[1]
        rest = x.shape[2:]
        # (n * b, C, ...) -> (b, n * C, ...): channel g * C + c holds chunk g's channel c.
        xs = x.reshape(n, n_per, c, *rest).transpose(0, 1).reshape(n_per, n * c, *rest)
        track = self.training and self.track_running_stats and self.running_mean is not None
        rm = self.running_mean.repeat(n) if track else None
        rv = self.running_var.repeat(n) if track else None
        w = self.weight.repeat(n) if self.weight is not None else None
        b = self.bias.repeat(n) if self.bias is not None else None
        y = F.batch_norm(xs, rm, rv, w, b, True, factor, self.eps)
        if track:
            with torch.no_grad():
                self.running_mean.copy_(rm.view(n, c).mean(0))
                self.running_var.copy_(rv.view(n, c).mean(0))
        return y.reshape(n_per, n, c, *rest).transpose(0, 1).reshape(x.shape)


class SplitBatchNorm1d(_SplitBatchNormMixin, nn.BatchNorm1d):
    """BatchNorm1d normalising each of ``num_splits`` contiguous batch chunks separately.

    Args:
        num_features: number of channels.
        eps, momentum, affine, track_running_stats: as ``torch.nn.BatchNorm1d``.
    """


class SplitBatchNorm2d(_SplitBatchNormMixin, nn.BatchNorm2d):
    """BatchNorm2d normalising each of ``num_splits`` contiguous batch chunks separately.

    Args:
        num_features: number of channels.
        eps, momentum, affine, track_running_stats: as ``torch.nn.BatchNorm2d``.
    """


class SplitBatchNorm3d(_SplitBatchNormMixin, nn.BatchNorm3d):
    """BatchNorm3d normalising each of ``num_splits`` contiguous batch chunks separately.

    Args:
        num_features: number of channels.
        eps, momentum, affine, track_running_stats: as ``torch.nn.BatchNorm3d``.
    """


_SPLIT_OF: dict[type, type] = {
    nn.BatchNorm1d: SplitBatchNorm1d,
    nn.BatchNorm2d: SplitBatchNorm2d,
    nn.BatchNorm3d: SplitBatchNorm3d,
}


def _to_split(bn: _BatchNorm, num_splits: int) -> _BatchNorm:
    cls = _SPLIT_OF[type(bn)]
    new = cls.__new__(cls)
    new.__dict__ = bn.__dict__.copy()  # shares parameters and buffers: state_dict keys unchanged
    new._parameters = bn._parameters
    new._buffers = bn._buffers
    new._modules = bn._modules
    new.num_splits = int(num_splits)
    return new


def convert_to_split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every plain BatchNorm1d/2d/3d inside ``module`` with its split version.

    The new layers share the original parameters and running buffers (same state-dict keys).
    ``SyncBatchNorm`` and already converted layers are left alone.

    Args:
        module: module to convert in place (returned; a bare BN layer is returned converted).
        num_splits: number of simulated devices (1 = plain BatchNorm).
    """
    if num_splits < 1:
        raise ValueError(f"convert_to_split_batchnorm: num_splits must be >= 1, got {num_splits}")
    if type(module) in _SPLIT_OF:
        return _to_split(module, num_splits)
    for name, child in module.named_children():
        new = convert_to_split_batchnorm(child, num_splits)
        if new is not child:
            setattr(module, name, new)
    return module


def set_num_simulated_devices(module: nn.Module, num_splits: int) -> int:
    """Set the number of simulated devices of every split BatchNorm in ``module``.

    Args:
        module: module containing split BatchNorm layers.
        num_splits: chunks per batch (1 turns them into plain BatchNorm).

    Returns:
        The number of layers updated.
    """
    count = 0
    for m in module.modules():
        if isinstance(m, _SplitBatchNormMixin):
            m.num_splits = int(num_splits)
            count += 1
    return count


def _index(out: Any, idx: torch.Tensor) -> Any:
    if isinstance(out, torch.Tensor):
        return out[idx]
    if isinstance(out, Mapping):
        return {k: _index(v, idx) for k, v in out.items()}
    raise TypeError(f"shuffled_forward: unsupported output type {type(out).__name__}")


def _gather(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return concat_all_gather_without_backprop(out)
    return {k: _gather(v) for k, v in out.items()}


@torch.no_grad()
def shuffled_forward(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Any:
    """Run ``fn`` (no grad) on a shuffled batch and return its outputs in the original order.

    On several processes, the global batch is gathered, permuted by rank 0's permutation
    (broadcast), each rank runs its slice, and the outputs are gathered back and un-permuted
    (the reference algorithm; it moves the whole input batch between ranks). On one process
    the local batch is permuted; pair it with split BatchNorm to simulate devices.

    Args:
        fn: callable returning a tensor or a mapping of tensors with the batch on dim 0.
        x: input batch.
    """
    world = get_world_size()
    if world == 1:
        perm = torch.randperm(x.shape[0], device=x.device)
        return _index(fn(x[perm]), torch.argsort(perm))
    x_all = concat_all_gather_without_backprop(x)
    perm = torch.randperm(x_all.shape[0], device=x.device)
    broadcast_(perm, src=0)
    rank = get_rank()
    out_all = _gather(fn(x_all[perm.view(world, -1)[rank]]))
    return _index(out_all, torch.argsort(perm).view(world, -1)[rank])
