"""What `sce pretrain` prints: our summary lines and progress, none of Lightning's noise."""

from __future__ import annotations

import csv
import re

from tiny_demo import TINY, sce

WITH_PROGRESS = [a for a in TINY if not a.startswith("trainer.enable_progress_bar")]

NOISE = (
    "litlogger", "Tip:", "LeafSpec", "broadcast_buffers", "on_after_batch_transfer",
    "log_every_n_steps", "v_num", "sync_dist", "weights_only", "GPU available", "TPU available",
    "Seed set", "Warning", "warn(",
)


def run(*args: str) -> str:
    proc = sce("pretrain", "demo", *WITH_PROGRESS, *args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_ddp_demo_prints_summaries_and_no_lightning_noise(cache, tmp_path):
    out = run(f"dir.root={tmp_path}", "trainer.devices=2", "trainer.strategy=ddp",
              "callbacks.knn_monitor.every_n_epochs=1")
    noise = [line for line in out.splitlines() if any(n in line for n in NOISE)]
    assert noise == []
    run_dir = tmp_path / "demo"
    assert f"sce: demo | run {run_dir} | 2 x cpu (nodes 1) | 2 epochs, 6 steps" in out
    assert re.search(r"^sce: trained 6 steps in [\d.]+s \([\d.]+ clips/s\) \| "
                     r"knn/top1 [\d.]+  pretrain/loss [\d.]+$", out, re.M), out
    assert "kNN top-1 (held-out synthetic videos): learned" in out
    # the last lines name the pictures, the run's figures and where everything is
    last = out.splitlines()[-3:]
    pictures = ("loss.png", "lr.png", "momentum.png", "accuracy.png", "embedding.png")
    assert last[0] == f"sce: plots {run_dir / 'plots'}/ ({', '.join(pictures)})"
    assert last[1].startswith("sce: trained 6 steps") and last[2].startswith(f"sce: run folder {run_dir}")
    assert all((run_dir / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in pictures)
    # the kNN monitor makes accuracy.png a learning curve: one point per monitored epoch
    with (run_dir / "logs" / "metrics.csv").open() as handle:
        curve = [row["knn/top1"] for row in csv.DictReader(handle) if row.get("knn/top1")]
    assert len(curve) == 2
    # not a terminal: progress is lines (the last step always has one), never a bar
    assert re.search(r"^sce: step 6/6  epoch 2/2  loss [\d.]+  lr [\d.e-]+  clips/s [\d.]+  ETA 0\.0s$",
                     out, re.M), out
    assert "\r" not in out and "it/s" not in out


def test_progress_lines_every_n_steps_and_verbose_shows_lightning(cache, tmp_path):
    out = run(f"dir.root={tmp_path}", "callbacks.progress._name_=progress_lines",
              "callbacks.progress.every_steps=2", "--verbose")
    steps = re.findall(r"^sce: step (\d)/6  epoch (\d)/2  loss [\d.]+  lr [\d.e-]+  clips/s [\d.]+"
                       r"  ETA [\d.]+s$", out, re.M)
    assert steps == [("2", "1"), ("4", "2"), ("6", "2")], out
    assert "GPU available" in out and "Seed set to 0" in out  # Lightning's lines are back


def test_log_lines_default_to_every_100_steps_or_30_seconds_and_evaluate_takes_verbose():
    from sce_core.console import LineProgress

    lines = LineProgress()
    assert (lines.every_steps, lines.every_seconds) == (100, 30.0)
    proc = sce("evaluate", "knn", "--help")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "--verbose" in out


def test_the_demo_monitors_knn_every_4_epochs_and_the_readme_shows_its_pictures():
    from pathlib import Path

    import sce_core

    assert sce_core.load_config("demo").callbacks.knn_monitor.every_n_epochs == 4
    readme = Path(__file__).parents[1] / "README.md"
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme.read_text())
    assert pictures == ["docs/images/demo_accuracy.png", "docs/images/demo_embedding.png"]
    assert all((readme.parent / p).read_bytes()[:4] == b"\x89PNG" for p in pictures)


def test_the_terminal_bar_redraws_at_most_twice_a_second_and_at_the_end(monkeypatch):
    from sce_core import console

    clock = iter([0.0, 0.1, 0.2, 0.6, 0.7, 0.8])
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    bar = console.Bar()
    assert [bar._should_update(n, 6) for n in range(1, 7)] == [True, False, False, True, False, True]


def test_the_terminal_bar_shows_the_training_loss_read_at_redraw():
    from types import SimpleNamespace

    import torch

    from sce_core import console

    trainer = SimpleNamespace(loggers=[], progress_bar_metrics={}, training=True,
                              callback_metrics={"online/train_loss_step": torch.tensor(9.0),
                                                "pretrain/loss_step": torch.tensor(2.5)})
    assert console.Bar().get_metrics(trainer, None) == {"loss": "2.5"}
    trainer.training = False  # validation and test bars show no training loss
    assert console.Bar().get_metrics(trainer, None) == {}
