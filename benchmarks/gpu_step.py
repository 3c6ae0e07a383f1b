"""The recipe's SCE training step, sce-core's way against an eztorch-style step, in the same run.

Both steps train the recipe's networks, built from the shipped config
``pretrain_r3d18_sce_kinetics200``: R3D-18 trunk (+ its pooling head), projector and predictor,
a momentum copy of trunk + projector, the queue, the symmetric SCE loss, LARS and the EMA. One
step: the two uint8 views' GPU augmentations (the recipe's ``train_transform``), the target
forward, the online forward + backward, the optimizer, the enqueue and the EMA update.

* **ours**: uint8 clips moved to the device (the uint8 crop path), the recipe's precision
  (``16`` = fp16 autocast + GradScaler on CUDA; float32 on CPU unless ``--precision``),
  channels-last 3-D memory format for the networks and clips (on CUDA; ``--channels-last on``
  forces it on the CPU, where it made the step slower here), foreach LARS
  (``sce_builtins.optim.lars``) and foreach EMA (``ema_update_``), the separable 23x23 blur,
  ``torch.compile`` of the networks with ``--compile``;
* **eztorch-style**: float32 clips moved to the device (what the float32 crop path delivers),
  the same precision, contiguous memory format, per-parameter LARS and EMA loops
  (``step_overhead.py``'s ``naive_lars_step`` and ``naive_ema``), torchaug's full 2-D blur.

cuDNN's autotuner (``torch.backends.cudnn.benchmark``) is on for both (the recipe sets
``trainer.benchmark: true``, as eztorch's config did). The steps alternate (ours, eztorch,
eztorch, ours, ...) after ``--warmup`` untimed steps each; the device is synchronised around
each step; medians are reported with the ratio eztorch / ours. Also in the same run:
  * the CPU crop of one clip (``random_resized_crop`` to the output size): uint8 fast path vs
    float32 (``decode_float: true``), the worker-side half of the "float32 crop path";
  * the trunk alone (forward + backward, ours' settings): its convolution FLOPs (counted with
    ``FlopCounterMode``) per second and, on a GPU listed in ``sce bench``'s table, the fraction
    of the bf16 dense peak.

The defaults are the recipe's sizes on CUDA (a local batch of 64 samples: 512 over 8 GPUs) and
a reduced size on the CPU (2 samples of 4x64x64, queue 4096); the test suite runs a smaller one
still so the script does not rot. Usage::

    python benchmarks/gpu_step.py [--batch 64] [--frames 8] [--size 224] [--steps 10]
        [--warmup 3] [--device cuda|cpu] [--precision 16|bf16|32] [--compile] [--queue 32768]
        [--channels-last auto|on|off] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from sce_builtins.losses.sce import SCELoss
from sce_builtins.models.momentum import ema_update_
from sce_builtins.models.queue import FeatureQueue
from sce_builtins.optim.lars import LARS
from sce_builtins.tools.bench_step import peak_tflops
from sce_builtins.transforms.cpu_video import RandomResizedCrop
from step_overhead import naive_ema, naive_lars_step
from torch import nn

import sce_core

RECIPE = "pretrain_r3d18_sce_kinetics200"
LR, MOM, WD, ETA, EMA_M = 4.8, 0.9, 1e-6, 1e-3, 0.99  # as step_overhead.py (naive_lars_step)
CONV_OPS = ("convolution", "convolution_backward")


def recipe_model_node() -> dict[str, Any]:
    cfg = sce_core.load_config(RECIPE, ["dir.data=/unused"])
    return OmegaConf.to_container(cfg.model, resolve=True)


def _set_blur(node: Any, separable: bool) -> Any:
    """The transform node with every ``batch_random_gaussian_blur`` set to ``separable``."""
    if isinstance(node, dict):
        out = {k: _set_blur(v, separable) for k, v in node.items()}
        if out.get("_name_") == "batch_random_gaussian_blur":
            out["separable"] = separable
        return out
    if isinstance(node, list):
        return [_set_blur(v, separable) for v in node]
    return node


class Networks(nn.Module):
    """Online trunk + projector + predictor and the momentum trunk + projector."""

    def __init__(self, node: dict[str, Any], queue: int) -> None:
        super().__init__()
        self.trunk = sce_core.build("trunks", node["trunk"])
        self.projector = sce_core.build("heads", node["projector"])
        self.predictor = sce_core.build("heads", node["predictor"])
        self.target = copy.deepcopy(nn.ModuleDict({"trunk": self.trunk, "projector": self.projector}))
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.queue = FeatureQueue(queue, node["queue"]["feature_dim"])
        self.loss_fn = SCELoss(node["coeff"], node["temp"], node["temp_m"], node["use_keys"])

    def online_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.trunk, self.projector, self.predictor) for p in m.parameters()]

    def ema_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        online = nn.ModuleDict({"trunk": self.trunk, "projector": self.projector})
        return list(self.target.parameters()), list(online.parameters())


class Step:
    """One training step of one style (see the module docstring)."""

    def __init__(self, style: str, args: argparse.Namespace, node: dict[str, Any]) -> None:
        self.style, self.device = style, torch.device(args.device)
        ours = style == "ours"
        torch.manual_seed(0)
        self.nets = Networks(node, args.queue).to(self.device)
        self.fmt = torch.channels_last_3d if ours and args.channels_last else torch.contiguous_format
        self.nets.to(memory_format=self.fmt)
        self.augment = sce_core.build("transforms", _set_blur(node["train_transform"], ours)).to(self.device)
        self.params = self.nets.online_parameters()
        self.forward_online = self._online
        self.forward_target = self._target
        if ours and args.compile:
            self.forward_online = torch.compile(self._online)
            self.forward_target = torch.compile(self._target)
        if ours:
            self.optimizer = LARS(self.params, lr=LR, momentum=MOM, weight_decay=WD, trust_coefficient=ETA)
        else:
            self.unscaler = _ParamsAsOptimizer(self.params)
        self.lars_state: dict[int, torch.Tensor] = {}
        self.targets, self.onlines = self.nets.ema_pairs()
        self.dtype = {"16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        shape = (args.batch, 3, args.frames, args.size, args.size)
        gen = torch.Generator().manual_seed(1)
        clips = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen) for _ in range(2)]
        self.host = [c if ours else c.float() for c in clips]  # float32: eztorch's crop output
        if self.device.type == "cuda":
            self.host = [c.pin_memory() for c in self.host]
        self.timings: dict[str, list[float]] = {"step": [], "ema": [], "lars": [], "augment": []}

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.nets.predictor(self.nets.projector(self.nets.trunk(x))), dim=1)

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.nets.target["projector"](self.nets.target["trunk"](x)), dim=1)

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def __call__(self, record: bool) -> None:
        t0 = self._sync()
        views = [c.to(self.device, non_blocking=True) for c in self.host]
        views = [v.contiguous(memory_format=self.fmt) for v in self.augment(views)]
        t1 = self._sync()
        with self._autocast():
            with torch.no_grad():
                keys = [self.forward_target(v) for v in views]
            preds = [self.forward_online(v) for v in views]
            snapshot = self.nets.queue.snapshot()
            loss = 0.5 * (self.nets.loss_fn(preds[0], keys[1], snapshot)
                          + self.nets.loss_fn(preds[1], keys[0], snapshot))
        self.scaler.scale(loss).backward()
        t2 = self._sync()
        self._optimizer_step()
        t3 = self._sync()
        self.nets.queue.enqueue(torch.cat(keys).float())
        t4 = self._sync()
        if self.style == "ours":
            ema_update_(self.targets, self.onlines, EMA_M)
        else:
            naive_ema(self.nets.target, nn.ModuleDict({"trunk": self.nets.trunk,
                                                       "projector": self.nets.projector}), EMA_M)
        t5 = self._sync()
        if record:
            for name, value in (("step", t5 - t0), ("augment", t1 - t0), ("lars", t3 - t2),
                                ("ema", t5 - t4)):
                self.timings[name].append(value)

    def _optimizer_step(self) -> None:
        if self.style == "ours":
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            return
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.unscaler)
        naive_lars_step(self.params, self.lars_state)
        if self.scaler.is_enabled():
            self.scaler.update()
        for p in self.params:
            p.grad = None


class _ParamsAsOptimizer(torch.optim.SGD):
    """A do-nothing optimizer over ``params`` so GradScaler can unscale the naive LARS's grads."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__(params, lr=0.0)


def crop_ms(size: int, frames: int, repeats: int) -> tuple[float, float]:
    """Median ms to crop one 256x340 clip to ``size``: uint8 fast path, float32 path."""
    gen = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (frames, 256, 340, 3), dtype=torch.uint8, generator=gen)
    out = []
    for fast, x in ((True, clip), (False, clip.float())):
        crop = RandomResizedCrop(size, size, scale=(0.2, 0.766), fast_uint8=fast)
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            crop(x, generator=gen)
            times.append(time.perf_counter() - start)
        out.append(statistics.median(times[1:]) * 1000)
    return out[0], out[1]


def trunk_conv_tflops(step: Step, repeats: int) -> tuple[float, float]:
    """(conv TFLOP per trunk forward+backward, achieved conv TFLOP/s) with ours' settings."""
    from torch.utils.flop_counter import FlopCounterMode

    x = step.host[0].to(step.device).float().contiguous(memory_format=step.fmt)
    trunk = step.nets.trunk

    def run() -> None:
        with step._autocast():
            out = trunk(x)
        out.float().sum().backward()

    run()
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    flops = counter.get_flop_counts().get("Global", {})
    conv = sum(v for k, v in flops.items() if str(k).split(".")[-1] in CONV_OPS
               or any(op in str(k) for op in CONV_OPS))
    times = []
    for _ in range(repeats):
        t0 = step._sync()
        run()
        times.append(step._sync() - t0)
    trunk.zero_grad(set_to_none=True)
    return conv / 1e12, conv / 1e12 / statistics.median(times)


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, help="per-device samples, 2 views each "
                        "(default 64 on CUDA, 2 on CPU)")
    parser.add_argument("--frames", type=int, help="default 8 on CUDA, 4 on CPU")
    parser.add_argument("--size", type=int, help="default 224 on CUDA, 64 on CPU")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--queue", type=int, help="default 32768 on CUDA, 4096 on CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["16", "bf16", "32"], default=None,
                        help="default: the recipe's (16) on CUDA, 32 on CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile ours' networks")
    parser.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                        help="ours' memory format: auto = channels-last 3-D on CUDA only (on "
                        "this project's CPU it slowed the conv3d step)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    for name, (gpu, cpu) in {"batch": (64, 2), "frames": (8, 4), "size": (224, 64),
                             "queue": (32768, 4096)}.items():
        if getattr(args, name) is None:
            setattr(args, name, gpu if cuda else cpu)
    if args.precision is None:
        recipe = sce_core.load_config(RECIPE, ["dir.data=/unused"]).trainer.precision
        args.precision = str(recipe) if args.device.startswith("cuda") else "32"
    args.channels_last = args.channels_last == "on" or (
        args.channels_last == "auto" and args.device.startswith("cuda"))
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    node = recipe_model_node()
    steps = {style: Step(style, args, node) for style in ("ours", "eztorch")}
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"device {device}; precision {args.precision}; batch {args.batch} x 2 views of "
          f"3x{args.frames}x{args.size}x{args.size}; queue {args.queue}; compile {args.compile}; "
          f"channels-last {args.channels_last}")
    for _ in range(args.warmup):
        for step in steps.values():
            step(record=False)
    order: list[Callable[[bool], None]] = [steps["ours"], steps["eztorch"]]
    for i in range(args.steps):
        for step in order if i % 2 == 0 else order[::-1]:
            step(record=True)
    ours, ez = steps["ours"].timings, steps["eztorch"].timings
    print(f"\n{'part':<10}{'ours ms':>10}{'eztorch ms':>12}{'ratio':>8}")
    for name in ("step", "augment", "lars", "ema"):
        a, b = _median_ms(ours[name]), _median_ms(ez[name])
        print(f"{name:<10}{a:>10.3f}{b:>12.3f}{b / a:>7.2f}x")
    u8, f32 = crop_ms(args.size, args.frames, max(args.steps, 3))
    print(f"{'crop/clip':<10}{u8:>10.3f}{f32:>12.3f}{f32 / u8:>7.2f}x   (CPU, one clip, worker side)")
    clips = 2 * args.batch / (_median_ms(ours["step"]) / 1000)
    print(f"\nours: {clips:.1f} clips/s; eztorch-style / ours step time: "
          f"{_median_ms(ez['step']) / _median_ms(ours['step']):.2f}x (target on an H200: >= 2x)")
    conv, rate = trunk_conv_tflops(steps["ours"], max(args.steps // 2, 2))
    peak = peak_tflops(device) if device != "cpu" else None
    share = f", {100 * rate / peak:.0f}% of the bf16 dense peak {peak:g} (target >= 40%)" if peak else ""
    print(f"trunk convolutions: {conv * 1000:.2f} GFLOP per forward+backward, {rate:.3f} TFLOP/s{share}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
