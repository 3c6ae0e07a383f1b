"""Preemption-safe exact resume through the real `sce pretrain` command.

A run gets a real SIGTERM from outside at a known optimizer step (every rank, as SLURM sends
it), must exit 143 after saving, and the same command with resume=auto must end with the same
weights, optimizer state, queue and logged metrics as an uninterrupted run, bit for bit.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tiny_demo import TINY, sce

STOP_HELPER = Path(__file__).parent / "data" / "stop_at_step.py"
TIMED_COLUMNS = ("throughput", "clips_per_s", "time")


def finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def run_stopped_at(step: int, root: Path, args: list[str], ranks: int,
                   signalled: tuple[int, ...] = (0, 1)) -> tuple[int, str, float]:
    """Start a run, SIGTERM the ``signalled`` ranks once every rank reached ``step``; (exit
    code, output, seconds from the signal to the exit)."""
    markers = root / "markers"
    proc = sce("pretrain", "demo", *args, f"dir.root={root}", "--code", str(STOP_HELPER),
               env={"SCE_TEST_STOP_STEP": str(step), "SCE_TEST_MARKERS": str(markers),
                    "SCE_TEST_SIGNALLED_RANKS": ",".join(map(str, signalled))})
    deadline = time.monotonic() + 300
    while len(list(markers.glob("rank*"))) < ranks:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never reached the stop step"
        time.sleep(0.1)
    for rank in signalled:
        if (markers / f"rank{rank}").exists():
            os.kill(int((markers / f"rank{rank}").read_text()), signal.SIGTERM)
    sent = time.monotonic()
    out = finish(proc, timeout=120)
    return proc.returncode, out, time.monotonic() - sent


def flat(obj, prefix=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from flat(value, f"{prefix}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from flat(value, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def assert_same_training_state(a: Path, b: Path) -> None:
    ckpt_a = torch.load(a / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ckpt_b = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt_a["global_step"] == ckpt_b["global_step"]
    assert ckpt_a["state_dict"].keys() == ckpt_b["state_dict"].keys()
    different = [k for k, v in ckpt_a["state_dict"].items() if not torch.equal(v, ckpt_b["state_dict"][k])]
    assert different == []
    assert any(k.startswith("queue.") for k in ckpt_a["state_dict"])
    opt_a, opt_b = dict(flat(ckpt_a["optimizer_states"])), dict(flat(ckpt_b["optimizer_states"]))
    assert opt_a.keys() == opt_b.keys()
    for key, value in opt_a.items():
        other = opt_b[key]
        assert torch.equal(value, other) if torch.is_tensor(value) else value == other, key


def metric_rows(run: Path) -> list[dict[str, str]]:
    with (run / "logs" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMED_COLUMNS)} for row in rows]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("step", [2, 4], ids=["mid-epoch-0", "mid-epoch-1"])
def test_sigterm_then_resume_auto_is_bit_exact_on_one_process(cache, tmp_path, step):
    args = [*TINY, "trainer.log_every_n_steps=1"]
    full = sce("pretrain", "demo", *args, f"dir.root={tmp_path / 'full'}")
    assert full.wait(timeout=400) == 0, finish(full)[-3000:]

    code, out, _ = run_stopped_at(step, tmp_path / "cut", args, ranks=1)
    assert code == 143, out[-3000:]
    assert f"saved {tmp_path / 'cut' / 'demo' / 'checkpoints' / 'last.ckpt'} at step {step}" in out
    saved = torch.load(tmp_path / "cut" / "demo" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == step

    resumed = sce("pretrain", "demo", *args, f"dir.root={tmp_path / 'cut'}", "resume=auto")
    out = finish(resumed)
    assert resumed.returncode == 0, out[-3000:]
    assert f"resuming from {tmp_path / 'cut' / 'demo' / 'checkpoints' / 'last.ckpt'}" in out
    assert_same_training_state(tmp_path / "full" / "demo", tmp_path / "cut" / "demo")
    full_rows = metric_rows(tmp_path / "full" / "demo")
    assert any(r.get("pretrain/loss_epoch") for r in full_rows)
    assert metric_rows(tmp_path / "cut" / "demo") == full_rows


DDP = ["trainer.devices=2", "trainer.strategy=ddp"]


@pytest.mark.timeout(900)
def test_sigterm_to_both_ddp_ranks_exits_promptly_and_resume_is_bit_exact(cache, tmp_path):
    args = [*TINY, "trainer.log_every_n_steps=1", *DDP]
    full = sce("pretrain", "demo", *args, f"dir.root={tmp_path / 'full'}")
    assert full.wait(timeout=600) == 0, finish(full)[-3000:]

    code, out, seconds = run_stopped_at(4, tmp_path / "cut", args, ranks=2)
    assert code == 143, out[-3000:]
    assert seconds < 60, f"the ranks took {seconds:.0f} s to exit after SIGTERM"
    assert out.count("sce: stopped by a signal; saved") == 1  # one line, not one per rank
    saved = torch.load(tmp_path / "cut" / "demo" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4
    assert len(saved["callbacks"]["RNGStateCallback"]["ranks"]) == 2

    resumed = sce("pretrain", "demo", *args, f"dir.root={tmp_path / 'cut'}", "resume=auto")
    out = finish(resumed, timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert_same_training_state(tmp_path / "full" / "demo", tmp_path / "cut" / "demo")
    assert metric_rows(tmp_path / "cut" / "demo") == metric_rows(tmp_path / "full" / "demo")


@pytest.mark.timeout(900)
def test_mid_epoch_resume_with_loader_workers_is_bit_exact(cache, tmp_path):
    args = [*TINY, "datamodule.train.loader.num_workers=2", "trainer.max_epochs=3"]
    full = sce("pretrain", "demo", *args, f"dir.root={tmp_path / 'full'}")
    assert full.wait(timeout=600) == 0, finish(full)[-3000:]
    code, out, _ = run_stopped_at(5, tmp_path / "cut", args, ranks=1)
    assert code == 143, out[-3000:]
    resumed = sce("pretrain", "demo", *args, f"dir.root={tmp_path / 'cut'}", "resume=auto")
    assert resumed.wait(timeout=600) == 0, finish(resumed)[-3000:]
    assert_same_training_state(tmp_path / "full" / "demo", tmp_path / "cut" / "demo")


@pytest.mark.timeout(900)
def test_sigterm_to_one_ddp_rank_stops_both_and_another_process_count_is_refused(cache, tmp_path):
    args = [*TINY, *DDP]
    code, out, seconds = run_stopped_at(2, tmp_path, args, ranks=2, signalled=(1,))
    assert code == 143, out[-3000:]
    assert seconds < 60
    last = tmp_path / "demo" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    one = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}", "resume=auto")
    out = finish(one)
    assert one.returncode == 1
    assert ("sce: error: the checkpoint was written by 2 process(es) and this run has 1; resume "
            "with the same number of devices (trainer.devices x trainer.num_nodes = 2)") in out
    assert torch.load(last, weights_only=True)["global_step"] == 2


@pytest.mark.timeout(600)
def test_sigterm_to_every_process_of_the_job_loader_workers_included_saves_and_stops(cache, tmp_path):
    """As SLURM's scancel does: the signal reaches the loader workers too."""
    import sys

    markers = tmp_path / "markers"
    args = [*TINY, "datamodule.train.loader.num_workers=2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sce_core.cli", "pretrain", "demo", *args, f"dir.root={tmp_path}",
         "--code", str(STOP_HELPER)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
        env={**os.environ, "SCE_TEST_STOP_STEP": "3", "SCE_TEST_MARKERS": str(markers),
             "SCE_TEST_SIGNALLED_RANKS": "0"})
    deadline = time.monotonic() + 300
    while not (markers / "rank0").exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)  # the main process and its loader workers
    out = finish(proc, timeout=120)
    assert proc.returncode == 143, out[-3000:]
    assert f"saved {tmp_path / 'demo' / 'checkpoints' / 'last.ckpt'} at step 3" in out
    assert torch.load(tmp_path / "demo" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
