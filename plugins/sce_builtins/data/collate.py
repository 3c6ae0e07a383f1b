"""Collate functions: ``default`` and ``multiple_samples`` (docs/reference.md §5.9), bad-sample events kept aside.

Both remove :data:`~sce_builtins.data.health.BAD_DATA_KEY` from every sample before
``torch.utils.data.default_collate`` and put the concatenated events back in the batch under
the same key (a plain list of tuples) for the datamodule to count. Clips of the
``decode_on: gpu`` path (:class:`~sce_builtins.data.deferred.DeferredClip`) are gathered into
one :class:`~sce_builtins.data.deferred.DeferredBatch` per batch position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch.utils.data._utils.collate import collate, default_collate_fn_map

from sce_builtins.data.deferred import DeferredClip, collate_deferred
from sce_builtins.data.health import BAD_DATA_KEY

_COLLATE_MAP = {**default_collate_fn_map, DeferredClip: collate_deferred}


def _split_events(samples: Sequence[Any]) -> tuple[list[Any], list[tuple]]:
    events: list[tuple] = []
    clean = []
    for sample in samples:
        if isinstance(sample, Mapping) and BAD_DATA_KEY in sample:
            events.extend(tuple(e) for e in sample[BAD_DATA_KEY])
            sample = {k: v for k, v in sample.items() if k != BAD_DATA_KEY}
        clean.append(sample)
    return clean, events


def default_collate_fn(batch: Sequence[Any]) -> Any:
    """torch's default_collate (plus deferred clips), bad-sample events in ``batch["bad_data"]``."""
    clean, events = _split_events(batch)
    out = collate(clean, collate_fn_map=_COLLATE_MAP)
    if isinstance(out, dict):
        out[BAD_DATA_KEY] = events
    return out


def multiple_samples_collate_fn(batch: Sequence[Any]) -> Any:
    """Flatten per-video lists of samples (video-major, then sample order) and collate them.

    A batch of b videos with 30 samples each becomes one batch of 30 * b clips.
    """
    flat: list[Any] = []
    for item in batch:
        if isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    return default_collate_fn(flat)


COLLATE_FNS: dict[str, Callable[[Sequence[Any]], Any]] = {
    "default": default_collate_fn,
    "multiple_samples": multiple_samples_collate_fn,
    "multiple_samples_collate": multiple_samples_collate_fn,
}


def resolve_collate(name: str | Callable | None, component: str = "datamodule") -> Callable:
    """Collate function by name (``default``, ``multiple_samples``) or a callable passed through."""
    if name is None:
        return default_collate_fn
    if callable(name):
        return name
    try:
        return COLLATE_FNS[str(name)]
    except KeyError:
        raise ValueError(
            f"{component}: unknown loader.collate_fn {name!r}; use 'default' or 'multiple_samples'."
        ) from None
