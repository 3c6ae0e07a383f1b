"""The GPU benchmarks at a reduced CPU size, so they do not rot: gpu_step.py builds the recipe's
networks, runs both steps and prints every ratio; gpu_decode.py runs both decode paths."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "gpu_step.py"


def test_gpu_step_benchmark_runs_at_cpu_size():
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--batch", "2", "--frames", "2",
           "--size", "32", "--steps", "1", "--warmup", "0", "--queue", "64"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("device cpu; precision 32; batch 2 x 2 views of 3x2x32x32; queue 64; "
                          "compile False; channels-last False")
    for part in ("step", "augment", "lars", "ema", "crop/clip"):
        row = re.search(rf"^{re.escape(part)}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x", out, re.M)
        ours, ez, ratio = (float(v) for v in row.groups())
        rounding = ratio * (0.0005 / ours + 0.0005 / ez) + 0.005  # printed: 3 and 2 decimals
        assert ours > 0 and ez > 0 and abs(ratio - ez / ours) <= rounding
    # R3D-18 convolutions, 2 clips of 2x32x32: about 1.2 GFLOP forward+backward
    gflop = float(re.search(r"trunk convolutions: ([\d.]+) GFLOP", out).group(1))
    assert 0.5 < gflop < 3
    assert "eztorch-style / ours step time:" in out and "(target on an H200: >= 2x)" in out


def test_gpu_decode_benchmark_runs_on_the_cpu(tmp_path):
    """On the CPU the decode-after-transfer path gives the worker path's pixels exactly."""
    cmd = [sys.executable, str(BENCHMARKS / "gpu_decode.py"), "--device", "cpu", "--corpus",
           str(tmp_path / "corpus"), "--videos", "1", "--batch", "2", "--batches", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "device cpu; 1 batches of 2 samples (4 clips of 8x224x224)" in out
    cpu, gpu, ratio = (float(v) for v in re.search(
        r"decode_on cpu ([\d.]+) ms, decode_on gpu ([\d.]+) ms: ([\d.]+)x", out).groups())
    assert abs(ratio - cpu / gpu) <= 0.05 + ratio * (0.005 / cpu + 0.005 / gpu)
    assert "largest pixel difference between the paths: 0 (uint8 levels)" in out
