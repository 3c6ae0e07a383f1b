"""Bad-sample accounting: what failed, where, how often, and when to give up.

Workers cannot share counters with the main process, so every failure travels with the
batch: the dataset attaches a list of :class:`BadSample` events to the sample that replaced the
failed one (key :data:`BAD_DATA_KEY`), the collate functions concatenate them into the batch,
and the datamodule hands them to its :class:`DataHealth` in the main process (before the batch
reaches the device), which counts them per split and epoch and raises
:class:`BadDataLimitError` when an epoch's failures exceed ``max_bad_samples``. With several
processes the limit applies to the sum over ranks, and every rank raises at the same batch.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, NamedTuple

from sce_core.errors import SCEError
from sce_core.host_sync import gather_objects, sum_over_ranks, world_size

#: Batch / sample key holding the bad-sample events (removed before the batch reaches the model).
BAD_DATA_KEY = "bad_data"


class DataPathError(SCEError, FileNotFoundError):
    """A data root, split folder or annotation file that does not exist (raised at setup)."""


class DataLayoutError(SCEError, ValueError):
    """A data folder whose layout is wrong (e.g. a Kinetics split with the wrong class count)."""


class BadDataLimitError(SCEError, RuntimeError):
    """More bad samples in one epoch than ``max_bad_samples`` allows (counted over all ranks,
    raised by every rank at the same batch)."""

    same_on_every_rank = True


class BadSample(NamedTuple):
    """One failed attempt to load a video (picklable, collated as a plain tuple)."""

    split: str
    epoch: int
    idx: int
    reason: str
    path: str
    message: str


def classify(error: BaseException) -> str:
    """Short reason of a loading failure: missing, corrupt, short, out_of_range or the error type."""
    from sce_builtins.data.decoders.errors import ClipOutOfRangeError, VideoDecodeError

    if isinstance(error, FileNotFoundError):
        return "missing"
    if isinstance(error, ClipOutOfRangeError):
        return "out_of_range"
    if isinstance(error, VideoDecodeError):
        text = error.reason.lower()
        for word in ("missing", "not found", "no such"):
            if word in text:
                return "missing"
        if "short" in text or "no frame" in text or "empty" in text:
            return "short"
        return "corrupt"
    if isinstance(error, ShortVideoError):
        return "short"
    return type(error).__name__


class ShortVideoError(RuntimeError):
    """A video shorter than a clip window (raised only when short videos are replaced)."""


def resolve_limit(max_bad_samples: int | float | None, dataset_size: int) -> float:
    """Failures allowed per epoch: an int is absolute, a float in (0, 1) a fraction of the split."""
    if max_bad_samples is None:
        return math.inf
    if isinstance(max_bad_samples, bool) or max_bad_samples < 0:
        raise ValueError(
            f"max_bad_samples must be null, a count >= 0 or a fraction in (0, 1), got {max_bad_samples!r}."
        )
    if isinstance(max_bad_samples, float) and max_bad_samples < 1:
        return max_bad_samples * dataset_size
    return float(max_bad_samples)


@dataclass
class DataHealth:
    """Counts bad samples per (split, epoch) in the main process and enforces the limit.

    Args:
        max_bad_samples: failures allowed per split and epoch: an int is absolute, a float in
            (0, 1) is a fraction of the split's size, None disables the limit.
    """

    max_bad_samples: int | float | None = 0.01

    def __post_init__(self) -> None:
        resolve_limit(self.max_bad_samples, 0)  # validate early
        self.sizes: dict[str, int] = {}
        self.events: list[BadSample] = []
        self.counts: Counter = Counter()  # (split, epoch) -> failures

    def set_size(self, split: str, size: int) -> None:
        """Record a split's dataset size (for fractional limits)."""
        self.sizes[split] = int(size)

    def limit(self, split: str) -> float:
        """Failures allowed per epoch for ``split``."""
        return resolve_limit(self.max_bad_samples, self.sizes.get(split, 0))

    def record(self, events: Any, epoch: int | None = None) -> None:
        """Count events (BadSample or plain tuples); ``epoch`` overrides the events' own epoch.

        Call :meth:`check` after recording a batch's events to enforce the limit.
        """
        for raw in events or ():
            event = BadSample(*raw)
            if epoch is not None:
                event = event._replace(epoch=int(epoch))
            self.events.append(event)
            self.counts[(event.split, event.epoch)] += 1

    def check(self, split: str, epoch: int) -> None:
        """Raise :class:`BadDataLimitError` when ``split``'s failures in ``epoch`` exceed the limit.

        With several processes the counts of all ranks are summed (a collective over a host
        group: every rank calls this once per batch), so every rank stops at the same batch
        with the same message.
        """
        local = self.counts[(split, epoch)]
        limit = self.limit(split)
        distributed = world_size() > 1
        if not distributed and local <= limit:
            return
        total = sum_over_ranks([local])[0] if distributed else local
        if total <= limit:
            return
        mine = next((e for e in reversed(self.events) if (e.split, e.epoch) == (split, epoch)), None)
        last = next((e for e in reversed(gather_objects(mine)) if e is not None), None) if distributed else mine
        where = f"; last: {last.reason} {last.path} ({last.message})" if last is not None else ""
        ranks = " over all ranks" if distributed else ""
        raise BadDataLimitError(
            f"data: {total} bad samples{ranks} in split '{split}' epoch {epoch} exceed "
            f"max_bad_samples={self.max_bad_samples} (limit {limit:g}){where}; "
            "fix the data or raise datamodule.max_bad_samples."
        )

    def epoch_summary(self, split: str, epoch: int) -> dict[str, Any]:
        """Failures of one split and epoch: total, by reason and by path."""
        events = [e for e in self.events if e.split == split and e.epoch == epoch]
        return _summary(events)

    def total_summary(self) -> dict[str, Any]:
        """Failures of the whole run, with a per-split breakdown."""
        out = _summary(self.events)
        out["by_split"] = dict(Counter(e.split for e in self.events))
        return out


def _summary(events: list[BadSample]) -> dict[str, Any]:
    return {
        "total": len(events),
        "by_reason": dict(Counter(e.reason for e in events)),
        "by_path": dict(Counter(e.path for e in events).most_common()),
    }


def format_summary(title: str, summary: dict[str, Any], max_paths: int = 10) -> str:
    """Human-readable multi-line summary."""
    if not summary["total"]:
        return f"{title}: no bad samples"
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary["by_reason"].items()))
    lines = [f"{title}: {summary['total']} bad samples ({reasons})"]
    paths = list(summary["by_path"].items())
    for path, n in paths[:max_paths]:
        lines.append(f"  {n:6d}  {path}")
    if len(paths) > max_paths:
        lines.append(f"  ... and {len(paths) - max_paths} more paths")
    return "\n".join(lines)
