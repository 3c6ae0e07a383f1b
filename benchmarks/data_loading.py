"""Clip-loading throughput for the recipe's sampling, against naive baselines measured in the same run.

Sampling (the SCE Kinetics200 recipe): per sample one random video, ``random_multi_clip`` with
2 clips of 2.56 s, 8 uniformly subsampled frames per clip at 30 fps, frames with short side 256,
then the uint8 ``random_resized_crop`` to 224x224 (scale 0.2-0.766) on every clip.

Methods (all load the same seeded plan of windows and apply the same crop):
  * ``frames``: the ``frame`` decoder with its default ``jpeg_backend: auto`` (reads and decodes
    only the 8 needed JPEGs per clip); ``frames_<backend>`` (``--jpeg-backends``) the same
    decoder with one backend forced, e.g. ``frames_torchvision`` (libjpeg-turbo through
    ``torchvision.io.decode_jpeg``) against ``frames_simplejpeg``;
  * ``frames_naive``: PIL ``Image.open().convert("RGB")`` on every frame of each clip window
    (about 77 per clip), then the 8 frames are picked;
  * ``mp4``: the ``pyav`` decoder (keyframe index, forward-only decoding, converts needed frames);
  * ``mp4_naive``: what ``torchvision.io.read_video`` did: PyAV decodes the whole file from its
    start, converts every frame to RGB and assembles the video array (``np.stack``), then the 8
    frames per clip are picked.
Targets (research anchors, ``shared/research/video_io.md`` section 7): frames >= 11x
``frames_naive``, mp4 (keyframe interval 250) >= 3x ``mp4_naive``.

The test corpus is generated here (no download): ``--videos`` videos of 10 s at 30 fps, sizes
alternating 340x256 and 456x256, with a panning multi-scale texture, low-frequency colour, moving
shapes, sensor noise (sigma 3) and a scene cut in every other video; H.264 ``crf 23``, preset
medium, keyframe interval 250 (PyAV/libx264); frames extracted with ``sce data frames`` at
``-q:v 1`` (the recipe's quality). The corpus is cached in ``--corpus`` (default: a temp folder).

Timing: single process, one torch thread (per-core numbers; DataLoader scaling is a separate
question on this 2-vCPU machine). Each method: 3 warm-up samples, then samples until
``--seconds`` have passed; methods are interleaved over ``--repeats`` rounds and the median is
reported. clips/s = 2 x samples/s.

The JPEG backend ``auto`` picks, and whether a default install (no extras) has it, is printed.

Usage: ``python benchmarks/data_loading.py [--videos 6] [--seconds 5] [--repeats 3]
[--jpeg-backends simplejpeg,torchvision]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sce_builtins.data.clip_samplers import RandomMultiClipSampler  # noqa: E402
from sce_builtins.data.decoders.frame import FrameDecoder  # noqa: E402
from sce_builtins.data.decoders.pyav import PyAVDecoder  # noqa: E402
from sce_builtins.data.types import ClipWindow, VideoRecord  # noqa: E402
from sce_builtins.tools.frames import extract_frames  # noqa: E402
from sce_builtins.tools.synth import write_mp4  # noqa: E402

try:
    from sce_builtins.transforms.cpu_video import RandomResizedCrop
except ImportError:  # transforms area not available: a plain uint8 crop + bilinear resize
    RandomResizedCrop = None

FPS = 30
SECONDS = 10
CLIP = 2.56
NUM_SAMPLES = 8
TARGETS = {"frames": ("frames_naive", 11.0), "mp4": ("mp4_naive", 3.0)}
CORPUS_VERSION = 1


# --------------------------------------------------------------------------------------------
# corpus
# --------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Random field with features of about ``cell`` pixels, values roughly in [-1, 1]."""
    small = rng.standard_normal((max(2, height // cell + 2), max(2, width // cell + 2)))
    img = Image.fromarray(small.astype(np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.BICUBIC), dtype=np.float32)


def _scene(rng: np.random.Generator, height: int, width: int) -> dict:
    big_h, big_w = height + 2 * SECONDS * FPS, width + 2 * SECONDS * FPS
    texture = sum(
        w * _smooth_noise(rng, big_h, big_w, c)
        for w, c in ((0.5, 64), (0.3, 16), (0.25, 4), (0.15, 2))
    )
    colour = np.stack([_smooth_noise(rng, height, width, 128) for _ in range(3)], -1)
    gradient = np.linspace(-1, 1, width, dtype=np.float32)[None, :, None] * rng.uniform(-30, 30, 3)
    shapes = [
        dict(
            pos=rng.uniform([0, 0], [height, width]),
            vel=rng.uniform(-3, 3, 2),
            radius=rng.uniform(10, 40),
            colour=rng.uniform(0, 255, 3),
            square=bool(rng.random() < 0.5),
        )
        for _ in range(int(rng.integers(4, 9)))
    ]
    return dict(
        texture=texture.astype(np.float32),
        colour=colour.astype(np.float32),
        gradient=gradient.astype(np.float32),
        pan=rng.uniform(-1.0, 1.0, 2),
        shapes=shapes,
        base=rng.uniform(90, 160),
        drift=rng.uniform(-20, 20),
    )


def _render(scene: dict, t: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    oy = int(SECONDS * FPS + scene["pan"][0] * t)
    ox = int(SECONDS * FPS + scene["pan"][1] * t)
    lum = scene["texture"][oy : oy + height, ox : ox + width, None] * 60
    img = scene["base"] + scene["drift"] * t / (SECONDS * FPS) + lum + scene["colour"] * 35
    img = img + scene["gradient"]
    for s in scene["shapes"]:
        cy, cx = s["pos"] + s["vel"] * t
        cy, cx, r = cy % height, cx % width, s["radius"]
        y0, y1 = max(0, int(cy - r - 2)), min(height, int(cy + r + 3))
        x0, x1 = max(0, int(cx - r - 2)), min(width, int(cx + r + 3))
        yy, xx = np.ogrid[y0:y1, x0:x1]
        if s["square"]:
            dist = np.maximum(np.abs(yy - cy), np.abs(xx - cx))
        else:
            dist = np.hypot(yy - cy, xx - cx)
        alpha = np.clip(r - dist + 0.5, 0, 1)[..., None]  # anti-aliased edge
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - alpha) + s["colour"] * alpha
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_corpus(root: Path, videos: int, seed: int = 0) -> Path:
    """Write ``root/mp4/<class>/vNNN.mp4`` and ``root/frames/<class>/vNNN/00000001.jpg`` (cached)."""
    marker = root / "corpus.json"
    spec = dict(version=CORPUS_VERSION, videos=videos, seed=seed)
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return root
    (root / "mp4" / "bench").mkdir(parents=True, exist_ok=True)
    for v in range(videos):
        width, height = (340, 256) if v % 2 == 0 else (456, 256)
        rng = np.random.default_rng([seed, v])
        scenes = [_scene(rng, height, width)]
        if v % 2 == 1:
            scenes.append(_scene(rng, height, width))
        n = SECONDS * FPS
        frames = np.stack(
            [
                _render(scenes[min(len(scenes) - 1, t * len(scenes) // n)], t, height, width, rng)
                for t in range(n)
            ]
        )
        write_mp4(
            root / "mp4" / "bench" / f"v{v:03d}.mp4", frames, FPS, gop=250, crf=23, preset="medium"
        )
        print(f"  corpus: video {v + 1}/{videos} encoded", file=sys.stderr)
    report = extract_frames(
        root / "mp4", root / "frames", fps=FPS, short_side=256, quality=1, workers=1, progress=False
    )
    if report.failed:
        raise RuntimeError(f"corpus extraction failed: {report.failed}")
    marker.write_text(json.dumps(spec))
    return root


# --------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------
def _window_ids(window: ClipWindow, num_frames: int) -> np.ndarray:
    """Frame ids of a window ([ceil(fps*start), ceil(fps*end))) subsampled uniformly to 8."""
    end = min(window.end, Fraction(num_frames, FPS))
    first, last = math.ceil(FPS * window.start), math.ceil(FPS * end)
    span = np.arange(first, last)
    return span, np.linspace(0, len(span) - 1, NUM_SAMPLES).astype(np.int64)


def _make_crop(fast: bool) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    if RandomResizedCrop is not None:
        rrc = RandomResizedCrop(
            224, 224, scale=(0.2, 0.766), aspect_ratio=(0.75, 1.3333), fast_uint8=fast
        )
        return lambda clip, g: rrc(clip, generator=g)

    def crop(clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:  # fallback
        t, h, w, _ = clip.shape
        side = int(min(h, w) * 0.7)
        top = int(torch.randint(0, h - side + 1, (1,), generator=g))
        left = int(torch.randint(0, w - side + 1, (1,), generator=g))
        x = clip[:, top : top + side, left : left + side].permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(
            x, size=(224, 224), mode="bilinear", align_corners=False
        )
        return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    return crop


class Bench:
    """Shared plan: which video and which windows each sample uses."""

    def __init__(
        self,
        corpus: Path,
        num_plan: int = 400,
        seed: int = 0,
        fast_crop: bool = True,
        backends: tuple[str, ...] = (),
    ) -> None:
        self.mp4s = sorted((corpus / "mp4" / "bench").glob("*.mp4"))
        self.frame_dirs = [corpus / "frames" / "bench" / p.stem for p in self.mp4s]
        self.num_frames = [len(os.listdir(d)) for d in self.frame_dirs]
        sampler = RandomMultiClipSampler(CLIP, num_clips=2)
        rng = np.random.default_rng(seed)
        self.plan = []
        for _ in range(num_plan):
            v = int(rng.integers(len(self.mp4s)))
            self.plan.append((v, sampler(Fraction(self.num_frames[v], FPS), rng)))
        self.crop = _make_crop(fast_crop)
        self.gen = torch.Generator().manual_seed(seed)
        filt = {"subsample_type": "uniform", "num_samples": NUM_SAMPLES}
        self.frame_decoder = FrameDecoder(fps=FPS, frame_filter=filt)
        self.backend_decoders = {
            name: FrameDecoder(fps=FPS, frame_filter=filt, jpeg_backend=name)
            for name in backends
        }
        self.pyav_decoder = PyAVDecoder(frame_filter=filt, thread_count=1)

    # each method loads sample i and returns the list of cropped clips
    def frames(self, i: int, decoder: FrameDecoder | None = None) -> list[torch.Tensor]:
        v, windows = self.plan[i]
        rec = VideoRecord(path=str(self.frame_dirs[v]), label=0, num_frames=self.num_frames[v])
        clips = (decoder or self.frame_decoder).decode(rec, windows)
        return [self.crop(c.frames, self.gen) for c in clips]

    def method(self, name: str) -> Callable[[int], list[torch.Tensor]]:
        """The loader called ``name`` (``frames_<backend>``: the frame decoder on that backend)."""
        if name.startswith("frames_") and name[7:] in self.backend_decoders:
            decoder = self.backend_decoders[name[7:]]
            return lambda i: self.frames(i, decoder)
        return getattr(self, name)

    def frames_naive(self, i: int) -> list[torch.Tensor]:
        v, windows = self.plan[i]
        out = []
        for w in windows:
            span, pick = _window_ids(w, self.num_frames[v])
            window = [
                np.asarray(Image.open(self.frame_dirs[v] / f"{j + 1:08d}.jpg").convert("RGB"))
                for j in span
            ]
            clip = torch.from_numpy(np.stack([window[k] for k in pick]))
            out.append(self.crop(clip, self.gen))
        return out

    def mp4(self, i: int) -> list[torch.Tensor]:
        v, windows = self.plan[i]
        rec = VideoRecord(path=str(self.mp4s[v]), label=0)
        return [self.crop(c.frames, self.gen) for c in self.pyav_decoder.decode(rec, windows)]

    def mp4_naive(self, i: int) -> list[torch.Tensor]:
        v, windows = self.plan[i]
        with av.open(str(self.mp4s[v])) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = 1
            video = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        out = []
        for w in windows:
            span, pick = _window_ids(w, len(video))
            clip = torch.from_numpy(video[span[pick]])
            out.append(self.crop(clip, self.gen))
        return out


def _run(
    fn: Callable[[int], list[torch.Tensor]], start: int, seconds: float, plan_len: int
) -> tuple[float, float]:
    """(clips per wall second, clips per CPU second of this process)."""
    for k in range(3):  # warm-up
        fn((start + k) % plan_len)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        clips = fn((start + 3 + n) % plan_len)
        assert len(clips) == 2 and clips[0].shape == (NUM_SAMPLES, 224, 224, 3)
        n += 1
    return 2 * n / (time.perf_counter() - t0), 2 * n / (time.process_time() - c0)


def check_same_frames(bench: Bench, samples: int = 3) -> None:
    """The fast loaders return the frames of the naive ones (JPEG, every backend: exact; mp4: exact)."""
    crop = bench.crop
    bench.crop = lambda clip, g: clip  # compare uncropped clips
    pairs = [("frames", "frames_naive"), ("mp4", "mp4_naive")]
    pairs += [(f"frames_{b}", "frames_naive") for b in bench.backend_decoders]
    try:
        for i in range(samples):
            for fast, naive in pairs:
                for a, b in zip(bench.method(fast)(i), bench.method(naive)(i)):
                    if not torch.equal(a, b):
                        raise AssertionError(f"{fast} differs from {naive} on sample {i}")
    finally:
        bench.crop = crop


def _default_install_note() -> str:
    """Whether sce-core's metadata lists simplejpeg as a plain (no-extra) dependency."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        deps = requires("sce-core") or []
    except PackageNotFoundError:
        return "sce-core is not installed (metadata unknown)"
    default = any(r.startswith("simplejpeg") and "extra" not in r for r in deps)
    return "simplejpeg is a default dependency" if default else "simplejpeg needs an extra"


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the corpus, time the four loaders, print clips/s and ratios."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "sce_bench_corpus")
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--crop",
        choices=["fast", "exact"],
        default="fast",
        help="uint8 crop kernel: torch's native uint8 resize (fast, as the research "
        "anchor) or float resize rounded to uint8 (exact reference values)",
    )
    p.add_argument(
        "--jpeg-backends",
        default="simplejpeg,torchvision",
        help="comma-separated frame-decoder backends also timed as frames_<backend> ('' for none)",
    )
    args = p.parse_args(argv)
    backends = tuple(b for b in args.jpeg_backends.split(",") if b)
    torch.set_num_threads(1)
    t0 = time.time()
    make_corpus(args.corpus, args.videos)
    bench = Bench(args.corpus, fast_crop=args.crop == "fast", backends=backends)
    jpg_kb = np.mean([f.stat().st_size for f in bench.frame_dirs[0].iterdir()]) / 1024
    mp4_kb = np.mean([m.stat().st_size for m in bench.mp4s]) / 1024
    print(
        f"corpus: {len(bench.mp4s)} videos in {args.corpus} ({time.time() - t0:.0f} s); "
        f"mean JPEG {jpg_kb:.1f} kB/frame, mp4 {mp4_kb:.0f} kB/video"
    )
    crop_name = "random_resized_crop" if RandomResizedCrop is not None else "fallback crop"
    print(
        f"crop: {crop_name} ({args.crop}); load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    )
    print(f"jpeg: auto picks {bench.frame_decoder.backend_name}; {_default_install_note()}")
    check_same_frames(bench)
    methods = ["frames_naive", "frames", *(f"frames_{b}" for b in backends), "mp4_naive", "mp4"]
    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    start = 0
    for r in range(args.repeats):
        for m in methods:
            w, c = _run(bench.method(m), start, args.seconds, len(bench.plan))
            wall[m].append(w)
            cpu[m].append(c)
            start += 37
        print(
            f"  round {r + 1}: " + ", ".join(f"{m} {wall[m][-1]:.1f}" for m in methods),
            file=sys.stderr,
        )
    print(f"\n{'method':<20}{'clips/s':>10}{'clips/CPU-s':>13}   runs (clips/s)")
    for m in methods:
        runs = " ".join(f"{x:.1f}" for x in wall[m])
        print(
            f"{m:<20}{statistics.median(wall[m]):>10.1f}{statistics.median(cpu[m]):>13.1f}   {runs}"
        )
    for b in backends:
        print(f"frames_{b} / frames_naive (clips/CPU-s): "
              f"{statistics.median(cpu[f'frames_{b}']) / statistics.median(cpu['frames_naive']):.1f}x")
    ok = True
    print()
    for fast, (naive, target) in TARGETS.items():
        ratios = []
        for label, table in (("clips/s", wall), ("clips/CPU-s", cpu)):
            per_round = [a / b for a, b in zip(table[fast], table[naive])]
            ratio = statistics.median(per_round)
            ratios.append(ratio)
            print(
                f"{fast} / {naive} ({label}): {ratio:.1f}x "
                f"(rounds {', '.join(f'{x:.1f}' for x in per_round)})"
            )
        best = max(ratios)
        status = "OK" if best >= target else "BELOW TARGET"
        ok &= best >= target
        print(f"  target >= {target:g}x: {status}")
    print(
        "\nclips/CPU-s (this process's CPU time) is the robust figure on a shared machine; "
        "clips/s is wall time."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
