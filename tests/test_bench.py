"""`sce bench data` and `sce bench step` as a user runs them (the real command in a subprocess),
on the demo and on the Kinetics-200 recipe (reduced to CPU size)."""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
from PIL import Image
from sce_builtins.tools.bench import bound_line
from sce_builtins.tools.bench_step import input_shape, local_batch, peak_tflops
from tiny_demo import TINY, sce

RECIPE = "pretrain_r3d18_sce_kinetics200"
NUM_FRAMES = 80


def _run(*args: str, timeout: int = 300) -> str:
    proc = sce(*args)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _run_on_terminal(*args: str, timeout: int = 300) -> tuple[str, str]:
    """The command with its stderr on a 100-column pseudo-terminal: (stdout, what it showed)."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import sys
    import termios

    main_fd, term_fd = pty.openpty()
    fcntl.ioctl(term_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "sce_core.cli", *args], stdout=subprocess.PIPE,
                            stderr=term_fd, text=True)
    os.close(term_fd)
    chunks = []
    while True:  # drain the terminal while the command runs (its buffer is small)
        ready, _, _ = select.select([main_fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # closed: the command has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    out, _ = proc.communicate(timeout=timeout)
    os.close(main_fd)
    assert proc.returncode == 0, out
    return out, b"".join(chunks).decode(errors="replace")


def _value(out: str, label: str) -> float:
    return float(re.search(rf"^  {label}\s+([\d.]+)", out, re.M).group(1))


def _saved(cache, what: str) -> dict:
    return json.loads((cache / "bench" / f"{what}.json").read_text())


def test_bench_data_then_step_on_the_demo_print_the_bound(cache):
    tiny = [o for o in TINY if not o.startswith("trainer.")]
    data, terminal = _run_on_terminal("bench", "data", "demo", *tiny, "--batches", "2")
    assert re.search(r"sce bench data: +\d+%\|.*\| \d+/5 ", terminal)  # 1 + 2 + 2 batches
    assert "sce bench data demo: 2 batches of 8 samples (16 clips), 0 worker(s)" in data
    saved = _saved(cache, "data")
    assert saved["config"] == "demo" and saved["clips_per_batch"] == 16 and saved["bad_samples"] == 0
    assert saved["total_clips_per_s"] > 0 and saved["worker_clips_per_s"] > 0
    assert _value(data, "loader total") == pytest.approx(saved["total_clips_per_s"], abs=0.06)
    assert _value(data, "per worker") == pytest.approx(saved["worker_clips_per_s"], abs=0.06)
    assert saved["decode_ms_per_clip"] > 0 and saved["crop_ms_per_clip"] > 0
    assert saved["collate_ms_per_batch"] > 0 and re.search(r"^  bad samples\s+0$", data, re.M)
    assert "run `sce bench step demo` for the workers the step needs" in data

    step = _run("bench", "step", "demo", *tiny, "--steps", "2", "--warmup", "0")
    assert "sce bench step demo: cpu, precision 32-true, 2 view(s) of 8 x 3 x 4 x 16 x 16 uint8" in step
    result = _saved(cache, "step")
    assert result["steps"] == 2 and result["peak_memory_mib"] > 0 and result["flops_per_step"] > 0
    assert result["clips_per_s"] == pytest.approx(16 / (result["step_ms"] / 1000))
    assert result["achieved_tflops"] == pytest.approx(
        result["flops_per_step"] / (result["step_ms"] / 1000) / 1e12)
    assert result["peak_fraction"] is None  # a CPU has no listed peak
    need = math.ceil(result["clips_per_s"] / saved["worker_clips_per_s"])
    (line,) = [ln for ln in step.splitlines() if ln.startswith("data: need")]
    assert line == bound_line(result["clips_per_s"], saved["worker_clips_per_s"], 0)
    assert line.startswith(f"data: need ~{need} workers per device for this step rate")
    assert "set datamodule.train.loader.num_workers=" in line  # 0 workers: loading stalls the step


def test_bound_line_says_what_to_do():
    assert bound_line(600, 150, 2) == (
        "data: need ~4 workers per device for this step rate (600 clips/s per device; one worker "
        "loads 150 clips/s); 2 configured: the run is data-bound; set "
        "datamodule.train.loader.num_workers=4 (or decode_on: gpu for JPEG frames)")
    assert bound_line(600, 150, 5).endswith("5 configured: enough, the run is bound by the step")
    assert peak_tflops("NVIDIA H200") == 989.4 and peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.4  # SXM
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("NVIDIA L40S") == 362.1 and peak_tflops("NVIDIA L4") == 121.0
    assert peak_tflops("NVIDIA L40") == 181.0
    assert peak_tflops("cpu") is None


def _k200(root, bad_classes=()):
    """A Kinetics-200 layout: 200 class folders per split linking to one real video of frames
    (64x86 JPEGs), and ``bad_classes`` linking to a video whose frames are not JPEGs."""
    good, bad = root / "frames" / "good", root / "frames" / "bad"
    good.mkdir(parents=True)
    bad.mkdir()
    rng = np.random.default_rng(0)
    for i in range(NUM_FRAMES):
        Image.fromarray(rng.integers(0, 256, (64, 86, 3), dtype=np.uint8)).save(
            good / f"{i + 1:08d}.jpg", quality=90)
        (bad / f"{i + 1:08d}.jpg").write_bytes(b"not a jpeg")
    for split in ("train", "val"):
        lines = []
        for c in range(200):
            (root / split / f"class_{c:03d}").mkdir(parents=True)
            os.symlink(bad if c in bad_classes else good, root / split / f"class_{c:03d}" / "v")
            lines.append(f"class_{c:03d}/v {c} {NUM_FRAMES}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def test_recipe_config_shape_and_batch_are_read():
    from sce_core.runner import prepare

    _resolved, plain = prepare(RECIPE, ["dir.data=/nowhere"])
    assert input_shape(plain) == (8, 224, 224)
    assert local_batch(plain, 8) == 64  # 512 over 8 GPUs
    node_form = {"datamodule": {"decoder": {"_name_": "frame", "frame_filter": {"num_samples": 4}},
                                "train": {"transform": {"_name_": "center_crop", "size": [96, 128]}}}}
    assert input_shape(node_form) == (4, 96, 128)


def test_bench_on_the_recipe_at_cpu_size(tmp_path, cache):
    root = _k200(tmp_path / "k200", bad_classes=set(range(0, 200, 2)))
    common = [f"dir.data={root}", "datamodule.train.global_batch_size=2",
              "datamodule.train.loader.num_workers=1"]
    data = _run("bench", "data", RECIPE, *common, "--batches", "2")
    saved = _saved(cache, "data")
    assert saved["clips_per_batch"] == 4 and saved["workers"] == 1
    assert saved["bad_samples"] > 0  # half the videos are unreadable: counted, replaced
    assert re.search(rf"^  bad samples\s+{saved['bad_samples']}$", data, re.M)

    step = _run("bench", "step", RECIPE, *common, "trainer.accelerator=cpu", "trainer.precision=32",
                "trainer.devices=1", "model.queue.size=64", "--input-shape", "2,32,32",
                "--steps", "1", "--warmup", "0", "--no-progress")
    assert f"sce bench step {RECIPE}: cpu, precision 32-true, 2 view(s) of 2 x 3 x 2 x 32 x 32" in step
    result = _saved(cache, "step")
    assert result["flops_per_step"] > 1e9  # R3D-18: online forward+backward and target forward
    assert bound_line(result["clips_per_s"], saved["worker_clips_per_s"], 1) in step


def test_a_gpu_config_on_a_cpu_machine_is_one_line(cache):
    """The recipe asks for a GPU: on a machine without one, one line says how to time it on the CPU."""
    import torch

    proc = sce("bench", "step", RECIPE, "dir.data=/nowhere", "--steps", "1", "--batch-size", "2",
               "--input-shape", "2,32,32", "model.queue.size=64")
    out, _ = proc.communicate(timeout=300)
    if torch.cuda.is_available():  # a GPU machine times the recipe's step instead
        assert proc.returncode == 0, out
        return
    assert proc.returncode == 1
    assert out.strip().splitlines()[-1] == (
        "sce: error: sce bench step: the config trains on trainer.accelerator=gpu and this machine "
        "has no CUDA GPU; time it on the CPU with trainer.accelerator=cpu trainer.precision=32 "
        "and a small --batch-size")


def test_bad_usage_is_one_line(cache):
    proc = sce("bench", "step", "demo", "--input-shape", "4,16")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert out.strip().splitlines() == [
        "sce: error: sce bench step: --input-shape must be T,H,W (three integers), got '4,16'"]
