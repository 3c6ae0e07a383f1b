"""``decode_on: gpu`` against decoding in the workers, on the recipe's sampling, in the same run.

Per sample (as ``data_loading.py``): one random video of the generated corpus, 2 clips of
2.56 s, 8 uniformly subsampled frames each, ``random_resized_crop`` to 224x224 (uint8).

* ``cpu`` (the default path): the worker reads and decodes the 8 JPEGs per clip
  (simplejpeg) and crops them; the main process only collates.
* ``gpu``: the worker reads the bytes and checks the headers, the crop is drawn and recorded
  (:mod:`sce_builtins.data.deferred`); the batch is decoded and cropped on ``--device`` by
  ``DeferredBatch.to`` (nvJPEG on CUDA; libjpeg-turbo through torchvision on the CPU).

Printed: worker-side CPU milliseconds per clip of each path and their ratio (what decides the
cores a GPU needs), the device milliseconds per batch of the ``gpu`` path, and the largest pixel
difference between the two paths' batches (0 on the CPU; nvJPEG is not bit-exact).

Usage: ``python benchmarks/gpu_decode.py [--batch 32] [--batches 5] [--device cuda|cpu]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from data_loading import FPS, NUM_SAMPLES, Bench, make_corpus
from sce_builtins.data.collate import default_collate_fn
from sce_builtins.data.decoders.frame import FrameDecoder
from sce_builtins.data.types import VideoRecord
from sce_builtins.transforms.cpu_video import RandomResizedCrop


def worker_batch(bench: Bench, decoder: FrameDecoder, crop: RandomResizedCrop, samples: range,
                 seed: int) -> tuple[dict, float]:
    """What a worker does for one batch (decode or read, crop or record, collate) and its CPU s."""
    start = time.process_time()
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in samples:
        v, windows = bench.plan[i % len(bench.plan)]
        rec = VideoRecord(path=str(bench.frame_dirs[v]), label=0, num_frames=bench.num_frames[v])
        clips = [crop(c.frames, generator=gen) for c in decoder.decode(rec, windows)]
        items.append({"input": [c if not isinstance(c, torch.Tensor) else c.permute(3, 0, 1, 2)
                                for c in clips]})
    batch = default_collate_fn(items)
    return batch, time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "sce_bench_corpus")
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--batch", type=int, default=32, help="samples per batch (2 clips each)")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    make_corpus(args.corpus, args.videos)
    bench = Bench(args.corpus)
    filt = {"subsample_type": "uniform", "num_samples": NUM_SAMPLES}
    decoders = {on: FrameDecoder(fps=FPS, frame_filter=filt, decode_on=on) for on in ("cpu", "gpu")}
    crop = RandomResizedCrop(224, 224, scale=(0.2, 0.766), aspect_ratio=(0.75, 1.3333))
    cpu_s: dict[str, list[float]] = {"cpu": [], "gpu": []}
    device_ms: list[float] = []
    max_diff = 0
    for b in range(args.batches + 1):  # batch 0 warms up (pools, nvJPEG handles)
        samples = range(b * args.batch, (b + 1) * args.batch)
        ref, t_cpu = worker_batch(bench, decoders["cpu"], crop, samples, seed=b)
        deferred, t_gpu = worker_batch(bench, decoders["gpu"], crop, samples, seed=b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        views = [view.to(device) for view in deferred["input"]]
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        for got, want in zip(views, ref["input"]):
            diff = (got.cpu().to(torch.int16) - want.to(torch.int16)).abs().max().item()
            max_diff = max(max_diff, int(diff))
        if b:
            cpu_s["cpu"].append(t_cpu)
            cpu_s["gpu"].append(t_gpu)
            device_ms.append(elapsed * 1000)
    clips = 2 * args.batch
    per_clip = {k: statistics.median(v) * 1000 / clips for k, v in cpu_s.items()}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}; {args.batches} batches of {args.batch} samples ({clips} clips of "
          f"{NUM_SAMPLES}x224x224)")
    print(f"worker CPU per clip: decode_on cpu {per_clip['cpu']:.2f} ms, decode_on gpu "
          f"{per_clip['gpu']:.2f} ms: {per_clip['cpu'] / per_clip['gpu']:.1f}x less worker CPU")
    print(f"device decode + crop per batch (decode_on gpu): {statistics.median(device_ms):.1f} ms "
          f"({clips / (statistics.median(device_ms) / 1000):.0f} clips/s)")
    print(f"largest pixel difference between the paths: {max_diff} (uint8 levels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
