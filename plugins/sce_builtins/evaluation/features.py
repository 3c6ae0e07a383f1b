"""Feature extraction for evaluation: un-augmented split loaders, frozen-trunk passes, gathering.

* :func:`split_loader` gives a sequential loader of any split of a ``VideoDataModule`` with its
  own clip sampler and CPU transform (e.g. the train split without augmentation as a kNN bank).
  It builds the dataset through a shallow copy of the datamodule whose split config is replaced,
  so subclass logic (UCF101 split lists, Kinetics layout checks, per-split decoders) still
  applies and the datamodule itself is not modified.
* :func:`extract_features` runs trunks in eval mode without gradients, averages the clips of a
  video and gathers every rank's rows (no per-rank files: docs/reference.md §9.19).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from sce_builtins.data.collate import resolve_collate
from sce_builtins.data.options import DatasetOptions
from sce_builtins.evaluation.ranks import gather_rows, world_info
from sce_builtins.evaluation.views import ViewRows
from sce_core.constraints import NonNegative, Positive
from sce_core.slots import Component

__all__ = ["FeatureSet", "SplitSpec", "check_split_spec", "extract_features", "gather_rows",
           "split_datamodule", "split_loader", "world_info"]


class SplitSpec(TypedDict, total=False):
    """evaluation split options"""

    split: Literal["train", "val", "test"]
    clip_sampler: Component("clip_samplers")  # type: ignore[valid-type]
    transform: Component("transforms")  # type: ignore[valid-type]
    batch_size: Annotated[int, Positive]
    num_workers: Annotated[int, NonNegative]
    dataset: DatasetOptions


SPEC_KEYS = frozenset(SplitSpec.__annotations__)


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
    through every trunk; the first view is used when ``input`` is a list. The views of a video
    are averaged (:class:`~sce_builtins.evaluation.views.ViewRows`: exact on any number of
    ranks); rows are gathered from every rank when ``gather`` and sorted by video id.
    Training flags of the trunks are restored afterwards.
    """
    modes = {name: trunk.training for name, trunk in trunks.items()}
    rows = {name: ViewRows() for name in trunks}
    try:
        for trunk in trunks.values():
            trunk.eval()
        for batch in loader:
            x = _views(batch["input"]).to(device, non_blocking=True)
            if batch_transform is not None:
                x = _views(batch_transform(x))
            x = _as_float(x)
            for name, trunk in trunks.items():
                rows[name].add(trunk(x).float().flatten(1), batch)
    finally:
        for name, trunk in trunks.items():
            trunk.train(modes[name])
    if not any(len(r) for r in rows.values()):
        raise ValueError("extract_features: the loader yielded no batches")
    out, labels, ids = {}, None, None
    for name, view_rows in rows.items():
        out[name], labels, ids = view_rows.videos("mean", gather=gather)
    return FeatureSet(features=out, labels=labels, idx=ids)
