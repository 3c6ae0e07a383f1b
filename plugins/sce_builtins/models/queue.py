"""Feature queue: a FIFO ring buffer of keys, one key per row (docs/reference.md §2.6, improved).

Differences from the reference (documented on purpose):
  * keys are stored one per row, ``(K, D)`` (the reference stores columns, ``(D, K)``);
  * ``K`` need not be a multiple of the number of keys enqueued per step: writes wrap around;
    if more than ``K`` keys arrive at once, only the newest ``K`` are kept;
  * the write pointer is mirrored as a Python int so enqueueing never synchronises the device;
    the ``ptr`` buffer is kept in step for checkpoints and re-read after loading a state dict.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sce_builtins.models.gather import concat_all_gather_without_backprop, is_distributed

_NAME = "FeatureQueue"


@torch.no_grad()
def concat_all_gather(x: Tensor) -> Tensor:
    """All-gather ``x`` ``(N, ...)`` from every rank and concatenate in rank order, no gradient.

    Returns ``x`` unchanged when ``torch.distributed`` is not initialised or has one process.
    """
    if not is_distributed():
        return x
    return concat_all_gather_without_backprop(x)


class FeatureQueue(nn.Module):
    """FIFO ring buffer of ``size`` keys of dimension ``feature_dim``, one key per row.

    Starts full of random unit vectors (standard normal rows, L2-normalised), as the reference.
    ``queue`` and ``ptr`` are buffers, so they are saved in checkpoints and moved with the model.
    The caller enqueues the keys already all-gathered across ranks (see
    :func:`concat_all_gather` or ``enqueue(..., gather=True)``) so every rank holds the same queue.

    Args:
        size: number of stored keys K.
        feature_dim: key dimension D.
    """

    queue: Tensor
    ptr: Tensor

    def __init__(self, size: int, feature_dim: int) -> None:
        super().__init__()
        if size <= 0 or feature_dim <= 0:
            raise ValueError(
                f"{_NAME}: size and feature_dim must be positive (got {size}, {feature_dim})."
            )
        self.size = int(size)
        self.feature_dim = int(feature_dim)
        self.register_buffer("queue", F.normalize(torch.randn(size, feature_dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self._ptr = 0

    def extra_repr(self) -> str:
        return f"size={self.size}, feature_dim={self.feature_dim}"

    @property
    def position(self) -> int:
        """Index of the row the next key is written to (the oldest stored key)."""
        return self._ptr

    def snapshot(self) -> Tensor:
        """A detached copy of the stored keys ``(K, D)``, safe to use after further enqueues."""
        return self.queue.detach().clone()

    def ordered(self) -> Tensor:
        """Stored keys from oldest to newest ``(K, D)`` (a copy)."""
        return torch.roll(self.queue.detach(), shifts=-self._ptr, dims=0)

    @torch.no_grad()
    def enqueue(self, keys: Tensor, gather: bool = False) -> None:
        """Write ``keys`` ``(N, D)`` at the pointer, wrapping around; advance the pointer by N."""
        if gather:
            keys = concat_all_gather(keys)
        if keys.ndim != 2 or keys.shape[1] != self.feature_dim:
            raise ValueError(
                f"{_NAME}: keys must be (N, {self.feature_dim}); got {tuple(keys.shape)}."
            )
        n = keys.shape[0]
        if n == 0:
            return
        keys = keys.detach()
        start = self._ptr
        if n >= self.size:  # only the newest K keys survive
            keys = keys[n - self.size :]
            start = (start + n - self.size) % self.size
        m = keys.shape[0]
        first = min(m, self.size - start)
        self.queue[start : start + first].copy_(keys[:first])
        if first < m:
            self.queue[: m - first].copy_(keys[first:])
        self._ptr = (self._ptr + n) % self.size
        self.ptr.fill_(self._ptr)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ptr = int(self.ptr.item()) % self.size
