"""Feature extraction for evaluation: un-augmented split loaders, frozen-trunk passes, gathering.

* :func:`split_loader` gives a sequential loader of any split of a ``VideoDataModule`` with its
  own clip sampler and CPU transform (e.g. the train split without augmentation as a kNN bank).
  It builds the dataset through a shallow copy of the datamodule whose split config is replaced,
  so subclass logic (UCF101 split lists, Kinetics layout checks, per-split decoders) still
  applies and the datamodule itself is not modified.
* :func:`extract_features` runs trunks in eval mode without gradients, averages the clips of a
  video and gathers every rank's rows (no per-rank files: docs/reference.md §9.19).
* :func:`aggregate_by_video` averages per-clip predictions of the same video
  (docs/reference.md §6.5).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from sce_builtins.data.collate import resolve_collate

SPEC_KEYS = frozenset({"split", "clip_sampler", "transform", "batch_size", "num_workers", "dataset"})


def check_split_spec(spec: Mapping[str, Any] | None, owner: str, default_split: str) -> dict[str, Any]:
    """Validate a ``{split, clip_sampler, transform, batch_size, num_workers, dataset}`` mapping."""
    out = dict(spec or {})
    unknown = sorted(set(out) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"{owner}: unknown key(s) {unknown}; allowed: {sorted(SPEC_KEYS)}")
    out.setdefault("split", default_split)
    if out["split"] not in ("train", "val", "test"):
        raise ValueError(f"{owner}: split must be train, val or test, got {out['split']!r}")
    batch = out.setdefault("batch_size", 64)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"{owner}: batch_size must be a positive integer, got {batch!r}")
    out.setdefault("num_workers", 0)
    return out


def _clip_duration(split_cfg: Mapping[str, Any] | None) -> float | None:
    sampler = (split_cfg or {}).get("clip_sampler")
    if isinstance(sampler, Mapping):
        value = sampler.get("clip_duration")
    else:
        value = getattr(sampler, "clip_duration", None)
    return float(value) if value is not None else None


def _default_clip_sampler(splits: Mapping[str, Any], split: str, owner: str) -> dict[str, Any]:
    """One clip per video from its start, as long as the clips of ``split`` (else of train, val, test)."""
    for name in (split, "train", "val", "test"):
        duration = _clip_duration(splits.get(name))
        if duration is not None:
            return {"_name_": "constant_clips_per_video", "clip_duration": duration, "clips_per_video": 1}
    raise ValueError(
        f"{owner}: give a clip_sampler for the {split} split, e.g. {{_name_: "
        "constant_clips_per_video, clip_duration: 2.56, clips_per_video: 1}"
    )


def split_datamodule(datamodule: Any, spec: Mapping[str, Any], owner: str) -> Any:
    """A shallow copy of ``datamodule`` whose ``spec["split"]`` uses the spec's sampler/transform.

    Unset ``clip_sampler``: one clip from the start of each video, as long as the split's own
    sampler's clips (else the train split's). Unset ``transform``: no CPU transform (clips keep their stored size).
    ``dataset``: the split's ``{datadir, video_path_prefix}`` (default: the split's own, else
    the datamodule's defaults for that split, e.g. ``<datadir>/<split>.csv`` and
    ``<datadir>/<split>`` for ``video_folder``).
    """
    split = spec["split"]
    splits = getattr(datamodule, "splits", None) or {}
    base = splits.get(split)
    dataset = dict((base or {}).get("dataset") or {})
    dataset.update(dict(spec.get("dataset") or {}))
    cfg: dict[str, Any] = {
        "dataset": dataset,
        "clip_sampler": spec.get("clip_sampler") or _default_clip_sampler(splits, split, owner),
        "transform": spec.get("transform"),
        "loader": {},
        "global_batch_size": int(spec["batch_size"]),
    }
    for key in ("decoder", "decoder_args"):
        if base is not None and base.get(key) is not None:
            cfg[key] = base[key]
    clone = copy.copy(datamodule)
    clone.splits = {**datamodule.splits, split: clone._check_split(split, cfg)}
    clone.datasets = {}
    return clone


def split_loader(datamodule: Any, spec: Mapping[str, Any], owner: str, shard: bool = True) -> DataLoader:
    """Sequential loader of one split for evaluation (sharded over ranks when ``shard``).

    A datamodule that defines ``eval_loader(split, clip_sampler=, transform=, batch_size=,
    num_workers=)`` is asked for it instead.
    """
    own = getattr(datamodule, "eval_loader", None)
    if callable(own):
        return own(spec["split"], clip_sampler=spec.get("clip_sampler"), transform=spec.get("transform"),
                   batch_size=int(spec["batch_size"]), num_workers=int(spec["num_workers"]))
    clone = split_datamodule(datamodule, spec, owner)
    dataset = clone.build_dataset(spec["split"])
    multi = bool(getattr(dataset.clip_sampler, "multi_sample", False))
    world, rank = world_info()
    sampler = (DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)
               if shard and world > 1 else None)
    workers = int(spec["num_workers"])
    return DataLoader(
        dataset, batch_size=int(spec["batch_size"]), shuffle=False, sampler=sampler,
        num_workers=workers, collate_fn=resolve_collate("multiple_samples" if multi else "default"),
        persistent_workers=False, drop_last=False,
    )


def world_info() -> tuple[int, int]:
    """``(world_size, rank)`` of the initialised process group, else ``(1, 0)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def gather_rows(tensor: Tensor) -> Tensor:
    """Concatenate every rank's ``tensor`` along dim 0 (row counts may differ); identity alone."""
    world, _ = world_info()
    if world == 1:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def reduce_by_id(values: Tensor, idx: Tensor, op: str = "sum") -> tuple[Tensor, Tensor]:
    """Rows with the same id combined by ``sum`` or ``amax``: ``(reduced, ids)`` sorted by id."""
    if op not in ("sum", "amax"):
        raise ValueError(f"reduce_by_id: op must be 'sum' or 'amax', got {op!r}")
    ids, inverse = torch.unique(idx, return_inverse=True)
    index = inverse.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    out = values.new_zeros((ids.shape[0], *values.shape[1:]))
    out.scatter_reduce_(0, index, values, reduce=op, include_self=False)
    return out, ids


def aggregate_by_video(values: Tensor, idx: Tensor, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """Rows of the same video id averaged (or max-ed): ``(videos, ids)`` in first-seen order.

    Args:
        values: ``(N, ...)`` per-clip values (e.g. softmax probabilities or features).
        idx: ``(N,)`` video id of each row (the batch's ``idx``).
        reduction: ``mean`` (docs/reference.md §6.5 ``same_avg``) or ``max`` (``same_max``).
    """
    if reduction not in ("mean", "max"):
        raise ValueError(f"aggregate_by_video: reduction must be 'mean' or 'max', got {reduction!r}")
    ids, inverse = torch.unique(idx, return_inverse=True)
    first = torch.full((ids.shape[0],), idx.shape[0], dtype=torch.long, device=idx.device)
    first.scatter_reduce_(0, inverse, torch.arange(idx.shape[0], device=idx.device), reduce="amin")
    order = torch.argsort(first)
    shape = (ids.shape[0], *values.shape[1:])
    index = inverse.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    if reduction == "mean":
        out = values.new_zeros(shape).scatter_add_(0, index, values)
        counts = torch.bincount(inverse, minlength=ids.shape[0]).to(values.dtype)
        out = out / counts.view(-1, *([1] * (values.dim() - 1)))
    else:
        out = values.new_full(shape, float("-inf")).scatter_reduce_(0, index, values, reduce="amax")
    return out[order], ids[order]


@dataclass
class FeatureSet:
    """Per-video features of one or more trunks with their labels and video ids."""

    features: dict[str, Tensor]
    labels: Tensor
    idx: Tensor


def _views(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else x[0]


def _as_float(x: Tensor) -> Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x


@torch.no_grad()
def extract_features(
    trunks: Mapping[str, nn.Module],
    loader: Iterable[Any],
    device: torch.device | str = "cpu",
    batch_transform: Callable[[Any], Any] | None = None,
    gather: bool = True,
) -> FeatureSet:
    """Features of every video of ``loader`` for each trunk (eval mode, no grad, one data pass).

    Each batch ``{"input", "label", "idx"}`` is moved to ``device``, passed through
    ``batch_transform`` (e.g. ``div_255_normalize``; uint8 left over becomes ``[0, 1]``), then
    through every trunk; the first view is used when ``input`` is a list. Clips of the same
    video (multi-clip samplers) are averaged. Rows are gathered from every rank when ``gather``.
    Training flags of the trunks are restored afterwards.
    """
    modes = {name: trunk.training for name, trunk in trunks.items()}
    feats: dict[str, list[Tensor]] = {name: [] for name in trunks}
    labels: list[Tensor] = []
    ids: list[Tensor] = []
    try:
        for trunk in trunks.values():
            trunk.eval()
        for batch in loader:
            x = _views(batch["input"]).to(device, non_blocking=True)
            if batch_transform is not None:
                x = _views(batch_transform(x))
            x = _as_float(x)
            idx = torch.as_tensor(batch["idx"]).to(device)
            label = torch.as_tensor(batch["label"]).to(device)
            for name, trunk in trunks.items():
                feats[name].append(trunk(x).float().flatten(1))
            labels.append(label)
            ids.append(idx)
    finally:
        for name, trunk in trunks.items():
            trunk.train(modes[name])
    if not ids:
        raise ValueError("extract_features: the loader yielded no batches")
    idx_all = torch.cat(ids)
    label_all = torch.cat(labels)
    video_labels, video_ids = aggregate_by_video(label_all.float()[:, None], idx_all)
    out = {}
    for name, rows in feats.items():
        video_feats, _ = aggregate_by_video(torch.cat(rows), idx_all)
        out[name] = gather_rows(video_feats) if gather else video_feats
    video_labels = video_labels[:, 0].round().long()
    if gather:
        video_labels, video_ids = gather_rows(video_labels), gather_rows(video_ids)
        # DistributedSampler pads with repeated videos: keep one row per id.
        _, keep = _first_occurrence(video_ids)
        out = {n: f[keep] for n, f in out.items()}
        video_labels, video_ids = video_labels[keep], video_ids[keep]
    return FeatureSet(features=out, labels=video_labels, idx=video_ids)


def _first_occurrence(ids: Tensor) -> tuple[Tensor, Tensor]:
    """Unique ids and the position of their first occurrence (sorted by position)."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((uniq.shape[0],), ids.shape[0], dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(ids.shape[0], device=ids.device), reduce="amin")
    first = first.sort().values
    return ids[first], first
