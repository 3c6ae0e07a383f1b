"""``sce bench data``: the speed of a config's own training loader.

Two passes over the configured train loader (same dataset, sampler, batch size, collate):

1. one process, one torch thread (what one worker does) for ``max(2, batches // 4)`` batches,
   with the decoder's ``decode``, the sample transform (the CPU crop) and the collate function
   timed in CPU seconds of the process: clips per CPU second of one worker and where a clip's
   time goes;
2. the loader as configured (its ``num_workers``) for ``batches`` batches, after warm-up
   batches (``1 + prefetch_factor * num_workers``: worker start-up, then the batches the
   workers prepared ahead while starting): total clips per wall second.

A clip is one ``(C, T, H, W)`` tensor of a batch (an SCE sample holds two). Bad samples are the
replacement events the loader reports (``bad_data``). With ``decode_on: gpu`` the batches hold
encoded frames; their decoding on the GPU (``DeferredBatch.to``) is timed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from sce_builtins.data.deferred import DeferredBatch
from sce_builtins.data.health import BAD_DATA_KEY
from sce_builtins.tools.bench import BenchError


@dataclass
class DataReport:
    """What ``sce bench data`` measured (rates in clips per second)."""

    batch_size: int
    clips_per_batch: int
    workers: int
    batches: int
    total_clips_per_s: float
    worker_clips_per_s: float
    decode_ms_per_clip: float
    crop_ms_per_clip: float
    collate_ms_per_batch: float
    other_ms_per_clip: float
    bad_samples: int
    device_decode_ms_per_batch: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Timer:
    """Accumulated CPU seconds (of this process) of the calls made through :meth:`wrap`."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - start

        return timed


class _TimedDecoder:
    """The dataset's decoder with ``decode`` timed (every other attribute passed through)."""

    def __init__(self, decoder: Any, timer: _Timer) -> None:
        self._decoder = decoder
        self.decode = timer.wrap(decoder.decode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decoder, name)


def count_clips(batch: Any) -> int:
    """Number of ``(C, T, H, W)`` clips in a collated batch's ``input``."""
    x = batch["input"] if isinstance(batch, dict) else batch
    views = x if isinstance(x, (list, tuple)) else [x]
    return sum(len(v) for v in views)


def _deferred(batch: Any) -> list[DeferredBatch]:
    x = batch["input"] if isinstance(batch, dict) else batch
    views = x if isinstance(x, (list, tuple)) else [x]
    return [v for v in views if isinstance(v, DeferredBatch)]


def _bad(batch: Any) -> int:
    return len(batch.get(BAD_DATA_KEY) or []) if isinstance(batch, dict) else 0


def _drain(batches: Iterable[Any], count: int, step: Callable[[], None]) -> tuple[int, int]:
    """Take ``count`` batches; returns (clips, bad samples)."""
    clips = bad = 0
    for i, batch in enumerate(batches):
        if i >= count:
            break
        clips += count_clips(batch)
        bad += _bad(batch)
        step()
    return clips, bad


def plan_batches(loader: Any, batches: int) -> tuple[int, int, int]:
    """(warm-up, timed, one-process) batch counts of the two passes for ``loader``."""
    warmup = 1 + (loader.prefetch_factor or 0) * loader.num_workers
    if len(loader) < warmup + 1:
        raise BenchError(f"sce bench data: the train loader yields {len(loader)} batch(es); it "
                         f"needs at least {warmup + 1} (a smaller global_batch_size?)")
    timed = min(batches, len(loader) - warmup)
    return warmup, timed, max(2, timed // 4)


def measure_loader(loader: Any, batches: int, progress: Callable[[], None]) -> DataReport:
    """Run both passes (module docstring) on a train loader: one process first, then the loader."""
    warmup, batches, count = plan_batches(loader, batches)
    worker = _one_process(loader, count, progress)
    iterator = iter(loader)
    first = next(iterator)  # worker start-up, not timed
    progress()
    _drain(iterator, warmup - 1, progress)  # what the workers prepared while starting
    start = time.perf_counter()
    clips, bad = _drain(iterator, batches, progress)
    total_rate = clips / (time.perf_counter() - start)
    return DataReport(
        batch_size=int(loader.batch_size),
        clips_per_batch=count_clips(first),
        workers=int(loader.num_workers),
        batches=batches,
        total_clips_per_s=total_rate,
        bad_samples=bad + _bad(first) + worker.pop("bad"),
        device_decode_ms_per_batch=_time_device_decode(first),
        **worker,
    )


def _one_process(loader: Any, count: int, progress: Callable[[], None]) -> dict[str, Any]:
    """What one worker does: ``count`` batches in this process on one thread, stages timed in
    CPU seconds of this process (robust on a shared machine)."""
    dataset = loader.dataset
    decode, crop, collate = _Timer(), _Timer(), _Timer()
    decoder, transform = dataset.decoder, dataset.transform
    dataset.decoder = _TimedDecoder(decoder, decode)
    if transform is not None:
        dataset.transform = crop.wrap(transform)
    single = torch.utils.data.DataLoader(dataset, batch_size=loader.batch_size, sampler=loader.sampler,
                                         collate_fn=collate.wrap(loader.collate_fn), num_workers=0,
                                         drop_last=loader.drop_last)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.process_time()
        clips, bad = _drain(single, count, progress)
        elapsed = time.process_time() - start
    finally:
        dataset.decoder, dataset.transform = decoder, transform
        torch.set_num_threads(threads)
    per_clip = 1000.0 / max(clips, 1)
    other = elapsed - decode.seconds - crop.seconds - collate.seconds
    return {
        "worker_clips_per_s": clips / elapsed,
        "decode_ms_per_clip": decode.seconds * per_clip,
        "crop_ms_per_clip": crop.seconds * per_clip,
        "collate_ms_per_batch": collate.seconds * 1000.0 / count,
        "other_ms_per_clip": max(other, 0.0) * per_clip,
        "bad": bad,
    }


def _time_device_decode(batch: Any) -> float | None:
    """Milliseconds to decode a batch's encoded clips on the GPU (``decode_on: gpu``), else None."""
    deferred = _deferred(batch)
    if not deferred or not torch.cuda.is_available():
        return None
    device = torch.device("cuda")
    for view in deferred:  # warm-up: nvJPEG handles, cuDNN
        view.to(device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for view in deferred:
        view.to(device)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000.0
