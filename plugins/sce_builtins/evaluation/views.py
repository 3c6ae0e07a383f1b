"""Per-view rows of an evaluation pass combined into one row per video, the same on any number of ranks.

A distributed sampler pads a split whose size is not a multiple of the world size by repeating
its first videos, and a loader may put the views (clips x crops) of one video into different
batches or onto different ranks. :class:`ViewRows` keeps one row per view with its key
``(video idx, clip_index, aug_index)``; :meth:`ViewRows.videos` gathers every rank's rows, keeps
one row per key (padding counts once) and combines the views of each video in key order, so the
result does not depend on how the views were split into batches and ranks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from sce_builtins.evaluation.ranks import gather_rows

Reduction = Literal["mean", "max"]

# ``self.log`` options of a value computed from gathered rows (the same on every rank): synced
# with ``max``, so Lightning does not warn and the value stays exact on any world size.
SAME_ON_EVERY_RANK = {"sync_dist": True, "reduce_fx": "max"}


def _column(batch: Mapping[str, Any], key: str, n: int, device: torch.device) -> Tensor | None:
    value = batch.get(key)
    if value is None:
        return None
    try:
        out = torch.as_tensor(value, device=device).long().view(-1)
    except (TypeError, ValueError):  # e.g. a list of tensors (several views per sample)
        return None
    return out if out.numel() == n else None


class ViewRows:
    """Rows of per-view values (features, probabilities) with their video and view keys."""

    def __init__(self) -> None:
        self._values: list[Tensor] = []
        self._keys: list[Tensor] = []
        self._labels: list[Tensor] = []
        self._seen: dict[int, int] = defaultdict(int)  # rows seen per video (no view indices)

    def __len__(self) -> int:
        return sum(int(v.shape[0]) for v in self._values)

    def add(self, values: Tensor, batch: Mapping[str, Any]) -> None:
        """Keep ``values`` (one row per view of ``batch``) with the batch's ``idx``, ``label``,
        ``clip_index`` and ``aug_index`` (missing view indices: the order the rows were seen)."""
        n, device = int(values.shape[0]), values.device
        idx = torch.as_tensor(batch["idx"], device=device).long().view(-1)
        labels = torch.as_tensor(batch["label"], device=device).long().view(-1)
        clip = _column(batch, "clip_index", n, device)
        aug = _column(batch, "aug_index", n, device)
        if clip is None:
            order = []
            for video in idx.tolist():
                order.append(self._seen[video])
                self._seen[video] += 1
            clip = torch.tensor(order, device=device, dtype=torch.long)
        if aug is None:
            aug = torch.zeros_like(clip)
        self._values.append(values.detach())
        self._keys.append(torch.stack([idx, clip, aug], dim=1))
        self._labels.append(labels)

    def clear(self) -> None:
        """Forget every row (a new epoch)."""
        self._values, self._keys, self._labels = [], [], []
        self._seen.clear()

    def videos(self, reduction: Reduction = "mean", gather: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``(values (V, ...), labels (V,), ids (V,))`` per video, sorted by video id.

        Every rank's rows are gathered (when ``gather``), a view seen twice (sampler padding)
        is kept once, and a video's views are combined in the order of their keys by ``mean``
        or ``max``. Every rank gets the same result.
        """
        if reduction not in ("mean", "max"):
            raise ValueError(f"ViewRows: reduction must be 'mean' or 'max', got {reduction!r}")
        if not self._values:
            raise ValueError("ViewRows: no rows were added (the loader yielded no batches)")
        values, keys, labels = (torch.cat(p) for p in (self._values, self._keys, self._labels))
        if gather:
            values, keys, labels = (gather_rows(t) for t in (values, keys, labels))
        order = _key_order(keys)
        values, keys, labels = values[order], keys[order], labels[order]
        keep = torch.ones(keys.shape[0], dtype=torch.bool, device=keys.device)
        keep[1:] = (keys[1:] != keys[:-1]).any(dim=1)
        values, keys, labels = values[keep], keys[keep], labels[keep]
        ids, group, counts = torch.unique_consecutive(keys[:, 0], return_inverse=True, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(keys.shape[0], device=keys.device) - starts[group]
        fill = 0.0 if reduction == "mean" else float("-inf")
        dense = values.new_full((ids.shape[0], int(counts.max()), *values.shape[1:]), fill)
        dense[group, slot] = values
        if reduction == "mean":  # a fixed summation order: the same sum on any world size
            shape = (-1, *([1] * (values.dim() - 1)))
            out = dense.sum(dim=1) / counts.to(values.dtype).view(shape)
        else:
            out = dense.amax(dim=1)
        return out, labels[starts], ids


def _key_order(keys: Tensor) -> Tensor:
    """Positions of ``keys (N, 3)`` sorted lexicographically."""
    order = torch.arange(keys.shape[0], device=keys.device)
    for col in (2, 1, 0):
        order = order[torch.sort(keys[order, col], stable=True).indices]
    return order
