"""Map-style labelled video dataset: annotations + decoder + clip sampler + sample transform.

``dataset[idx]`` (or ``dataset[(epoch, idx)]``, what the datamodule's samplers yield) returns a
sample dict ``{"input": clip or [clips], "label", "idx", "clip_index", "aug_index", "replaced"}``
with clips ``(C, T, H, W)``; evaluation samplers (several samples per video) return a list of
such dicts for the ``multiple_samples`` collate.

Randomness (clip windows, decoder choices, the CPU transform's torch draws) is derived from
``(seed, epoch, idx)`` only, so a sample is the same whatever the number of workers.

Bad data: when reading a video fails (missing, corrupt, too short, wrong path) the sample is
replaced by a seeded random other index (up to ``max_retries`` times) and every failure is
attached to the returned sample as :class:`~sce_builtins.data.health.BadSample` events under
``"bad_data"``, for the main process to count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from sce_builtins.data._build import default_seed, ensure_built
from sce_builtins.data.annotations import load_annotations
from sce_builtins.data.clip_samplers import ClipSampler
from sce_builtins.data.health import BAD_DATA_KEY, BadSample, ShortVideoError, classify
from sce_builtins.data.types import ClipWindow, VideoRecord
from sce_core.slots import Component

log = logging.getLogger("sce.data")


class DataLoadingFailed(RuntimeError):
    """Too many consecutive replacements failed for one sample."""


class VideoDataset(Dataset):
    """Labelled videos read through a decoder, cut by a clip sampler, transformed per sample.

    Args:
        records: the annotated videos.
        decoder: object with ``duration(record)`` and ``decode(record, windows, rng)``.
        clip_sampler: a :class:`~sce_builtins.data.clip_samplers.ClipSampler`.
        transform: callable on the sample dict (clips ``(T, H, W, C)``), or None.
        seed: base seed of the per-sample randomness (None: ``PL_GLOBAL_SEED`` or 0).
        split: split name reported with bad samples.
        max_retries: replacement attempts for one sample before giving up with an error.
        short_videos: "keep" (reference: windows past the end are clamped by the decoder)
            or "replace" (a video shorter than a clip is bad data and replaced).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        decoder: Any,
        clip_sampler: ClipSampler,
        transform: Callable[[dict], Any] | None = None,
        seed: int | None = None,
        split: str = "train",
        max_retries: int = 10,
        short_videos: Literal["keep", "replace"] = "keep",
    ) -> None:
        if short_videos not in ("keep", "replace"):
            raise ValueError(f"video_dataset: short_videos must be 'keep' or 'replace', got {short_videos!r}.")
        if not callable(clip_sampler):
            raise ValueError("video_dataset: clip_sampler must be a clip sampler component.")
        for method in ("duration", "decode"):
            if not callable(getattr(decoder, method, None)):
                raise ValueError(f"video_dataset: decoder must have a {method}() method (a decoders component).")
        self.records = list(records)
        self.decoder = decoder
        self.clip_sampler = clip_sampler
        self.transform = transform
        self.seed = default_seed(seed)
        self.split = split
        self.max_retries = int(max_retries)
        self.short_videos = short_videos
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer indices (samplers of the datamodule pass it explicitly)."""
        self.epoch = int(epoch)

    def _rng(self, epoch: int, idx: int, *extra: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFFFFFF, epoch, idx, *extra])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | list[dict[str, Any]]:
        """Sample for ``idx`` (or ``(epoch, idx)``), replacing unreadable videos."""
        epoch, idx = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (self.epoch, int(key))
        n = len(self.records)
        if not 0 <= idx < n:
            raise IndexError(f"video_dataset: index {idx} out of range for {n} videos.")
        events: list[BadSample] = []
        current = idx
        samples = None
        for attempt in range(self.max_retries + 1):
            rng = self._rng(epoch, idx, attempt)
            try:
                samples, clips = self._load(current, rng)
                break
            except Exception as err:  # noqa: BLE001 - any read failure is bad data
                record = self.records[current]
                message = " ".join(str(err).split()) or type(err).__name__
                event = BadSample(self.split, epoch, current, classify(err), record.path, message[:300])
                events.append(event)
                log.warning("bad sample %s (%s): %s", record.path, event.reason, event.message)
                if n < 2:
                    break
                j = int(self._rng(epoch, idx, attempt, 1).integers(n - 1))
                current = j + 1 if j >= current else j
        if samples is None:
            raise DataLoadingFailed(
                f"video_dataset: {len(events)} consecutive videos failed while loading index {idx} "
                f"of split '{self.split}'; last: {events[-1].path}: {events[-1].message}"
            )
        out = self._finish(samples, clips, epoch, idx, current)
        out[0]["replaced"] = len(events)
        out[0][BAD_DATA_KEY] = events
        for sample in out[1:]:
            sample["replaced"] = 0
            sample[BAD_DATA_KEY] = []
        if self.clip_sampler.multi_sample:
            return out
        return out[0]

    def _load(self, i: int, rng: np.random.Generator) -> tuple[list[list[ClipWindow]], dict]:
        """Sample windows for video ``i`` and decode every distinct window once."""
        record = self.records[i]
        duration = Fraction(self.decoder.duration(record))
        if duration <= 0:
            raise ShortVideoError(f"video has no frames (duration {float(duration):g} s)")
        windows = self.clip_sampler(duration, rng)
        if self.short_videos == "replace" and any(w.end > duration for w in windows):
            raise ShortVideoError(
                f"video is shorter ({float(duration):.3f} s) than the clip window "
                f"({float(max(w.end - w.start for w in windows)):.3f} s)"
            )
        unique: dict[tuple[Fraction, Fraction], ClipWindow] = {}
        for w in windows:
            unique.setdefault((w.start, w.end), w)
        decoded = self.decoder.decode(record, list(unique.values()), rng)
        if len(decoded) != len(unique):
            raise RuntimeError(f"decoder returned {len(decoded)} clips for {len(unique)} windows")
        clips = {k: d.frames for k, d in zip(unique, decoded)}
        return self.clip_sampler.group(windows), clips

    def _finish(
        self, groups: list[list[ClipWindow]], clips: dict, epoch: int, idx: int, source: int
    ) -> list[dict]:
        """Build, transform and lay out (C, T, H, W) the samples of one video."""
        record_idx = source
        used: set = set()
        list_input = self.clip_sampler.list_input
        out = []
        for g, group in enumerate(groups):
            inputs = []
            for w in group:
                key = (w.start, w.end)
                clip = clips[key]
                inputs.append(clip.clone() if key in used else clip)  # augs of one clip share frames
                used.add(key)
            sample: dict[str, Any] = {
                "input": inputs if list_input else inputs[0],
                "label": self._label_of(record_idx),
                "idx": record_idx,
                "clip_index": [w.clip_index for w in group] if list_input else group[0].clip_index,
                "aug_index": [w.aug_index for w in group] if list_input else group[0].aug_index,
            }
            if self.transform is not None:
                seed = int(self._rng(epoch, idx, g, 2).integers(2**62))
                with torch.random.fork_rng(devices=[]):
                    # the CPU generator only: torch.manual_seed would also queue a lazy CUDA
                    # seeding call (with a formatted stack) on every sample
                    torch.default_generator.manual_seed(seed)
                    sample = self.transform(sample)
                if not isinstance(sample, dict):
                    raise TypeError("video_dataset: the transform must return the sample dict.")
            sample["input"] = _to_cthw(sample["input"])
            out.append(sample)
        return out

    def _label_of(self, i: int) -> int:
        return self.records[i].label


def _to_cthw(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_to_cthw(c) for c in x]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.permute(3, 0, 1, 2)
    return x


def video_dataset(
    datadir: str,
    decoder: Component("decoders", args_param="decoder_args"),
    clip_sampler: Component("clip_samplers"),
    transform: Component("transforms") = None,
    video_path_prefix: str = "",
    decoder_args: Mapping[str, Any] | None = None,
    seed: int | None = None,
    split: str = "train",
    max_retries: int = 10,
    short_videos: Literal["keep", "replace"] = "keep",
    allow_outside_root: bool = False,
) -> VideoDataset:
    """Labelled video dataset read from an annotation file (CSV/JSON) or a folder of videos.

    Args:
        datadir: annotation file (``.csv``/``.txt``/``.json``) or a ``<class>/<video>`` folder.
        decoder: decoder component (``frame``, ``pyav``, ...) or its name.
        clip_sampler: clip sampler component.
        transform: sample-dict transform applied to every sample (clips ``(T, H, W, C)``).
        video_path_prefix: joined in front of every annotated path.
        decoder_args: arguments of the decoder when ``decoder`` is a bare name.
        seed: base seed of the per-sample randomness (None: the global seed).
        split: split name used in bad-sample reports.
        max_retries: replacement attempts before a sample fails with an error.
        short_videos: "keep" (clamp windows, reference) or "replace" (treat as bad data).
        allow_outside_root: accept annotated paths that leave ``video_path_prefix``.
    """
    records = load_annotations(datadir, video_path_prefix, allow_outside_root=allow_outside_root)
    return VideoDataset(
        records,
        ensure_built("decoders", decoder, decoder_args),
        ensure_built("clip_samplers", clip_sampler),
        ensure_built("transforms", transform),
        seed=seed,
        split=split,
        max_retries=max_retries,
        short_videos=short_videos,
    )
