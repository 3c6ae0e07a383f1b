"""``sce bench step``: the speed of a config's training step on its configured device.

The config's model is trained by a Lightning ``Trainer`` on one device of the configured
accelerator, with the config's precision and ``benchmark`` flag, on synthetic uint8 batches of
the configured shape (``(B, 3, T, H, W)`` per view: B the per-device batch, T the frame filter's
``num_samples``, H x W the train transform's output size, one view per clip of a sample), so the
GPU augmentations, the step, the optimizer and the EMA all run as in a real run. Steps:
``warmup`` untimed, one counted with ``torch.utils.flop_counter.FlopCounterMode`` (forward,
backward and optimizer, not timed), then ``steps`` timed (device synchronised after each).
Peak memory is the device's ``max_memory_allocated`` on CUDA, the process's peak RSS on CPU.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule

from sce_builtins.tools.bench import BenchError

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's datasheets, matched on the device name.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
)
TRAINER_KEYS = ("accelerator", "precision", "benchmark", "gradient_clip_val",
                "gradient_clip_algorithm", "deterministic")


@dataclass
class StepReport:
    """What ``sce bench step`` measured."""

    device: str
    precision: str
    input_shape: tuple[int, ...]
    views: int
    steps: int
    step_ms: float
    clips_per_s: float
    peak_memory_mib: float
    memory_kind: str
    flops_per_step: float
    achieved_tflops: float
    peak_fraction: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_tflops(device_name: str) -> float | None:
    """bf16 dense peak of a known GPU (first matching entry of :data:`BF16_PEAK_TFLOPS`)."""
    for key, value in BF16_PEAK_TFLOPS:
        if key in device_name:
            return value
    return None


def _find(node: Any, keys: tuple[str, ...]) -> Mapping[str, Any] | None:
    """First mapping (depth first) holding all ``keys``."""
    if isinstance(node, Mapping):
        if all(k in node for k in keys):
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find(child, keys)
        if found is not None:
            return found
    return None


def _crop_size(transform: Any) -> tuple[int, int] | None:
    node = _find(transform, ("target_height", "target_width"))
    if node is not None:
        return int(node["target_height"]), int(node["target_width"])
    for key in ("crop_size", "size"):
        node = _find(transform, (key,))
        if node is not None:
            size = node[key]
            return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    return None


def input_shape(plain: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(T, H, W)`` of one training clip, read from the config (``ValueError`` when it cannot be)."""
    dm = plain.get("datamodule") or {}
    train = dm.get("train") or {}
    candidates = (train.get("decoder_args"), train.get("decoder"), dm.get("decoder_args"),
                  dm.get("decoder"))
    decoder = next((c for c in candidates if isinstance(c, Mapping) and "frame_filter" in c), {})
    frames = (decoder.get("frame_filter") or {}).get("num_samples")
    size = _crop_size(train.get("transform"))
    if not isinstance(frames, int) or size is None:
        raise BenchError("sce bench step: cannot read the clip shape from the config (frame_filter."
                         "num_samples and the train transform's output size); pass --input-shape T,H,W")
    return frames, size[0], size[1]


def local_batch(plain: Mapping[str, Any], devices: int) -> int:
    """The per-device batch: ``datamodule.train.global_batch_size`` over the configured devices."""
    train = (plain.get("datamodule") or {}).get("train") or {}
    size = train.get("global_batch_size")
    if not isinstance(size, int) or size < 1:
        raise BenchError("sce bench step: datamodule.train.global_batch_size is not set; pass --batch-size")
    return max(size // max(devices, 1), 1)


def configured_devices(trainer: Mapping[str, Any]) -> int:
    """Devices per node the config asks for (``-1``/``auto``: every visible GPU, else 1)."""
    from sce_builtins.hooks import explicit_devices

    devices = explicit_devices({"devices": 1, **trainer})
    if devices is not None:
        return devices
    if trainer.get("accelerator") in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1


class _SyntheticBatches(torch.utils.data.Dataset):
    """The same pre-built batch ``length`` times (``batch_size=None`` loaders)."""

    def __init__(self, batch: dict[str, Any], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.batch


class SyntheticData(LightningDataModule):
    """Random uint8 clips of the configured shape; the global batch size the model scales by."""

    def __init__(self, shape: tuple[int, ...], views: int, steps: int, global_batch_size: int,
                 pin: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        clips = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen) for _ in range(views)]
        batch = {"input": clips, "label": torch.zeros(shape[0], dtype=torch.long),
                 "idx": torch.arange(shape[0])}
        self.dataset = _SyntheticBatches(batch, steps)
        self.train_global_batch_size = global_batch_size
        self.train_num_samples = steps * shape[0]
        self.pin = pin

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.dataset, batch_size=None, pin_memory=self.pin)


class _StepTimer(Callback):
    """Times steps after ``warmup`` (+ one counted step) and counts that step's FLOPs."""

    def __init__(self, warmup: int, progress: Callable[[], None]) -> None:
        self.warmup, self.progress = warmup, progress
        self.times: list[float] = []
        self.flops = 0.0
        self._counter: Any = None
        self._last = 0.0

    def _sync(self, module: Any) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            from torch.utils.flop_counter import FlopCounterMode

            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._sync(module)
        now = time.perf_counter()
        if batch_idx == self.warmup:
            self._counter.__exit__(None, None, None)
            self.flops = float(self._counter.get_total_flops())
            if module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(module.device)
        elif batch_idx > self.warmup:
            self.times.append(now - self._last)
        self._last = now
        self.progress()


def check_accelerator(trainer: Mapping[str, Any]) -> None:
    """A GPU config on a machine without a CUDA GPU: one line saying how to time it on the CPU."""
    accelerator = trainer.get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise BenchError(f"sce bench step: the config trains on trainer.accelerator={accelerator} "
                         "and this machine has no CUDA GPU; time it on the CPU with "
                         "trainer.accelerator=cpu trainer.precision=32 and a small --batch-size")


def measure_step(plain: Mapping[str, Any], model: Any, shape: tuple[int, ...], views: int,
                 warmup: int, steps: int, progress: Callable[[], None]) -> StepReport:
    """Train ``model`` on synthetic batches of ``shape`` (B, 3, T, H, W) and time its steps."""
    import lightning.pytorch as pl

    trainer_cfg = dict(plain.get("trainer") or {})
    kwargs = {k: trainer_cfg[k] for k in TRAINER_KEYS if trainer_cfg.get(k) is not None}
    check_accelerator(trainer_cfg)
    total = warmup + 1 + steps
    timer = _StepTimer(warmup, progress)
    trainer = pl.Trainer(**kwargs, devices=1, max_epochs=1, max_steps=total, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         callbacks=[timer])
    device_type = trainer.strategy.root_device.type
    global_batch = ((plain.get("datamodule") or {}).get("train") or {}).get("global_batch_size")
    data = SyntheticData(shape, views, total, int(global_batch or shape[0]), device_type == "cuda")
    try:
        trainer.fit(model, datamodule=data)
    except torch.OutOfMemoryError:
        raise BenchError(f"sce bench step: out of memory at a per-device batch of {shape[0]} "
                         f"clips x {views} views; pass a smaller --batch-size") from None
    if len(timer.times) < steps:
        raise RuntimeError(f"sce bench step: only {len(timer.times)} of {steps} steps ran")
    step_s = statistics.median(timer.times)
    device = trainer.strategy.root_device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory, kind = torch.cuda.max_memory_allocated(device) / 2**20, "device"
    else:
        name = "cpu"
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        memory, kind = rss / (2**20 if sys.platform == "darwin" else 2**10), "process RSS"
    achieved = timer.flops / step_s / 1e12
    peak = peak_tflops(name) if device.type == "cuda" else None
    return StepReport(
        device=name,
        precision=str(trainer.precision),
        input_shape=tuple(shape),
        views=views,
        steps=len(timer.times),
        step_ms=step_s * 1000.0,
        clips_per_s=shape[0] * views / step_s,
        peak_memory_mib=memory,
        memory_kind=kind,
        flops_per_step=timer.flops,
        achieved_tflops=achieved,
        peak_fraction=None if peak is None or math.isnan(achieved) else achieved / peak,
    )
