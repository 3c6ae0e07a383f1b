"""SCE loss (Similarity Contrastive Estimation), docs/reference.md §1.

The target distribution mixes a one-hot positive (weight ``coeff``) with a relational softmax of
the target's similarities to the other keys (weight ``1 - coeff``, temperature ``temp_m``); the
online distribution is a softmax of the prediction's similarities (temperature ``temp``); the loss
is their cross-entropy averaged over the local batch.

Deviation from the reference (documented on purpose): the reference evaluates the loss inside
fp16 autocast, so its similarity matmuls most likely run in half precision. Here autocast is
disabled inside the loss and every input is promoted to at least float32, so the loss is
computed in float32 (float64 inputs stay float64, which the parity tests use).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sce_builtins.losses._common import compute_dtype, no_autocast

#: Subtracted from the target logit of a sample's own key when ``use_keys`` (docs/reference.md §1.4).
LARGE_NUM = 1e9

_NAME = "sce_loss"


def _default_rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


class SCELoss(nn.Module):
    """SCE loss between online predictions and momentum-target keys (docs/reference.md §1.2 to §1.5).

    ``coeff`` and ``temp_m`` are plain attributes so a model may schedule them (docs/reference.md §1.8).
    Call ``loss(q, k, queue=None, k_global=None)`` with ``q``, ``k`` ``(B, D)`` L2-normalised
    rows, ``queue`` ``(K, D)`` one stored key per row (already detached, without the current
    batch) and ``k_global`` ``(W*B, D)`` the all-gathered keys in rank order (only read when
    ``use_keys``; defaults to ``k`` on one process). The keyword ``rank`` locates this process's
    block inside ``k_global`` (default: the ``torch.distributed`` rank, else 0).

    Args:
        coeff: lambda, weight of the one-hot positive in the target distribution (0..1).
        temp: temperature of the online distribution (tau).
        temp_m: temperature of the target distribution (tau_m).
        use_keys: if true, the in-batch gathered keys are candidates besides the queue and a
            sample's own key is masked out of the target; if false, the positive is a single
            column whose target logit is a constant 0 (reference behaviour).
    """

    def __init__(
        self, coeff: float = 0.5, temp: float = 0.1, temp_m: float = 0.05, use_keys: bool = False
    ) -> None:
        super().__init__()
        if temp <= 0 or temp_m <= 0:
            raise ValueError(f"{_NAME}: temp and temp_m must be > 0 (got {temp}, {temp_m}).")
        self.coeff = float(coeff)
        self.temp = float(temp)
        self.temp_m = float(temp_m)
        self.use_keys = bool(use_keys)

    def logged_values(self) -> dict[str, float]:
        """What the SCE model logs of this loss each step: ``pretrain/<name>``."""
        return {"temp": self.temp, "temp_m": self.temp_m, "coeff": self.coeff}

    def extra_repr(self) -> str:
        return (
            f"coeff={self.coeff}, temp={self.temp}, temp_m={self.temp_m}, "
            f"use_keys={self.use_keys}"
        )

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        queue: Tensor | None = None,
        k_global: Tensor | None = None,
        *,
        rank: int | None = None,
    ) -> Tensor:
        """Return the scalar SCE loss (gradient flows through ``q`` only)."""
        if q.ndim != 2 or q.shape != k.shape:
            raise ValueError(
                f"{_NAME}: q and k must both be (B, D); got {tuple(q.shape)} and {tuple(k.shape)}."
            )
        if queue is not None and (queue.ndim != 2 or queue.shape[1] != q.shape[1]):
            raise ValueError(
                f"{_NAME}: queue must be (K, D) with D={q.shape[1]} (one key per row); "
                f"got {tuple(queue.shape)}."
            )
        dtype = compute_dtype(q, k, queue, k_global)
        with no_autocast(q):
            q = q.to(dtype)
            k = k.detach().to(dtype)
            queue = None if queue is None else queue.detach().to(dtype)
            if self.use_keys:
                keys = k if k_global is None else k_global.detach().to(dtype)
                offset = (_default_rank() if rank is None else rank) * q.shape[0]
                return self._loss_with_keys(q, k, keys, queue, offset)
            return self._loss_without_keys(q, k, queue)

    def _mix_and_cross_entropy(
        self, sim_q: Tensor, sim_k: Tensor, pos_index: Tensor | int
    ) -> Tensor:
        """Target w = coeff * onehot + (1 - coeff) * softmax(sim_k / temp_m); CE with online."""
        rows = torch.arange(sim_q.shape[0], device=sim_q.device)
        weights = torch.softmax(sim_k / self.temp_m, dim=1) * (1.0 - self.coeff)
        weights[rows, pos_index] += self.coeff
        # L1 renormalisation, a mathematical no-op kept for parity with the reference (docs/reference.md §1.4).
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        log_p = torch.log_softmax(sim_q / self.temp, dim=1)
        return -(weights * log_p).sum(dim=1).mean()

    def _loss_without_keys(self, q: Tensor, k: Tensor, queue: Tensor | None) -> Tensor:
        sim_q = (q * k).sum(dim=1, keepdim=True)
        sim_k = torch.zeros_like(sim_q)  # a literal 0 target logit at the positive (docs/reference.md §1.3)
        if queue is not None:
            sim_q = torch.cat([sim_q, q @ queue.T], dim=1)
            sim_k = torch.cat([sim_k, k @ queue.T], dim=1)
        return self._mix_and_cross_entropy(sim_q, sim_k, 0)

    def _loss_with_keys(
        self, q: Tensor, k: Tensor, keys: Tensor, queue: Tensor | None, offset: int
    ) -> Tensor:
        batch = q.shape[0]
        if offset + batch > keys.shape[0]:
            raise ValueError(
                f"{_NAME}: k_global has {keys.shape[0]} rows, too few for rank block "
                f"[{offset}, {offset + batch}); pass the all-gathered keys or the right rank."
            )
        candidates = keys if queue is None else torch.cat([keys, queue], dim=0)
        sim_q = q @ candidates.T
        sim_k = k @ candidates.T
        pos = torch.arange(offset, offset + batch, device=q.device)
        rows = torch.arange(batch, device=q.device)
        sim_k[rows, pos] -= LARGE_NUM  # remove the sample's own key from the relational part
        return self._mix_and_cross_entropy(sim_q, sim_k, pos)


def loss_logged_values(loss: Any) -> dict[str, float]:
    """The values a loss asks its model to log (its ``logged_values()``); none without one."""
    method = getattr(loss, "logged_values", None)
    return dict(method()) if callable(method) else {}
