"""End to end through `sce pretrain`: the demo config in a reduced size, exact resume, export,
plots, preemption, and a 2-process CPU DDP run (gloo)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback
from tiny_demo import TINY, sce

import sce_core
from sce_core.runner import pretrain, setup_run


def run_tiny(root: Path, *extra: str):
    return pretrain("demo", [*TINY, f"dir.root={root}", *extra])


def online_state(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_tiny_demo_run_writes_everything(cache, tmp_path):
    trainer = run_tiny(tmp_path)
    run = tmp_path / "demo"
    assert trainer.current_epoch == 2
    assert (run / "config.yaml").is_file()
    resolved = sce_core.load_config(run / "config.yaml")
    assert resolved.model.trunk._provider_ == "sce-core==0.1.0"
    assert resolved.trainer.max_epochs == 2
    metrics = (run / "logs" / "metrics.csv").read_text()
    assert "pretrain/loss" in metrics
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 2 * 3  # 24 videos / batch 8 = 3 steps
    assert "sce_config" in ckpt and ckpt["sce_config"]["model"]["_name_"] == "sce"
    report = json.loads((run / "knn.json").read_text())
    assert 0.0 <= report["learned_top1"] <= 1.0 and 0.0 <= report["random_init_top1"] <= 1.0
    assert report["bank"] == {"split": "train", "videos": 24}
    assert report["query"] == {"split": "val", "videos": 12}
    assert any(k.startswith("queue.") for k in ckpt["state_dict"])


class StopAfterFirstEpoch(Callback):
    """Ends fit after epoch 0 as a preemption at the epoch boundary would."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def test_resume_continues_exactly(cache, tmp_path):
    run_tiny(tmp_path / "a")
    # the interrupted run: same config (2 epochs, same schedules), stopped after epoch 0
    run = setup_run("demo", [*TINY, f"dir.root={tmp_path / 'b'}"])
    run.trainer.callbacks.append(StopAfterFirstEpoch())
    run.trainer.fit(run.model, datamodule=run.datamodule)
    assert run.trainer.current_epoch == 1
    run.trainer.save_checkpoint(run.run_dir / "checkpoints" / "last.ckpt")
    first_half = online_state(tmp_path / "b" / "demo" / "checkpoints" / "last.ckpt")
    run_tiny(tmp_path / "b", "resume=auto")
    full = online_state(tmp_path / "a" / "demo" / "checkpoints" / "last.ckpt")
    resumed = online_state(tmp_path / "b" / "demo" / "checkpoints" / "last.ckpt")
    assert full.keys() == resumed.keys()
    changed = [k for k in full if not torch.equal(full[k], first_half[k])]
    assert len(changed) > 10  # the second epoch did train
    different = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert different == []


def test_resume_path_must_exist(cache, tmp_path):
    with pytest.raises(sce_core.SCEError, match="does not exist"):
        run_tiny(tmp_path, f"resume={tmp_path / 'nope.ckpt'}")


def test_export_then_build_pretrained_trunk(cache, tmp_path):
    run_tiny(tmp_path, "trainer.max_epochs=1")
    ckpt = tmp_path / "demo" / "checkpoints" / "last.ckpt"
    out = tmp_path / "export" / "trunk.pt"
    proc = subprocess.run([sys.executable, "-m", "sce_core.cli", "export", str(ckpt), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    node = sce_core.load_config(out.with_suffix(".yaml"))
    assert node._name_ == "small_3d_cnn" and node.pretrained == str(out.resolve())
    trunk = sce_core.build("trunks", node)
    state = online_state(ckpt)
    expected = {k[len("trunk."):]: v for k, v in state.items() if k.startswith("trunk.")}
    got = trunk.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)


def test_every_run_writes_its_plots_and_sce_plot_redraws_them_with_force(cache, tmp_path):
    run_tiny(tmp_path, "trainer.max_epochs=1", "trainer.log_every_n_steps=1")
    pngs = sorted(p.name for p in (tmp_path / "demo" / "plots").glob("*.png"))
    assert {"loss.png", "lr.png", "momentum.png", "accuracy.png"} <= set(pngs)  # kNN report included
    assert all((tmp_path / "demo" / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    proc = subprocess.run([sys.executable, "-m", "sce_core.cli", "plot", str(tmp_path / "demo"), "--force"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_sigterm_saves_checkpoint_then_resume_auto(cache, tmp_path):
    # many short epochs so the signal arrives mid-run
    args = ["pretrain", "demo", *TINY, f"dir.root={tmp_path}", "trainer.max_epochs=200"]
    proc = sce(*args)
    metrics = tmp_path / "demo" / "logs" / "metrics.csv"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    assert "stop requested by a signal" in out, out[-2000:]
    ckpt = torch.load(tmp_path / "demo" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)
    assert 0 < ckpt["global_step"] < 600
    # the restart picks the checkpoint up
    resumed = pretrain("demo", [*TINY, f"dir.root={tmp_path}", "resume=auto",
                                f"trainer.max_epochs={ckpt['epoch'] + 2}"])
    assert resumed.global_step > ckpt["global_step"]


def test_two_process_ddp_pretraining(cache, tmp_path):
    proc = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}", "trainer.devices=2",
                "trainer.strategy=ddp", "datamodule.train.global_batch_size=8")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    ckpt = torch.load(tmp_path / "demo" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)
    # 24 videos, global batch 8 = 4 per rank: 3 steps per epoch on each rank
    assert ckpt["global_step"] == 6
    queue = ckpt["state_dict"]["queue.queue"]
    assert queue.shape == (32, 64) and torch.isfinite(queue).all()


def test_recipe_with_a_wrong_data_root_fails_at_start_naming_the_path(tmp_path):
    proc = sce("pretrain", "pretrain_r3d18_sce_kinetics200", f"dir.data={tmp_path / 'missing'}",
                f"dir.root={tmp_path}", "trainer.accelerator=cpu", "trainer.devices=1",
                "trainer.precision=32", "trainer.strategy=auto", "trainer.sync_batchnorm=false")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1
    errors = [line for line in out.splitlines() if line.startswith("sce: error:")]
    assert errors == [f"sce: error: kinetics200: data root not found: {tmp_path / 'missing'}"]


def test_second_run_in_the_same_folder_keeps_the_first(cache, tmp_path):
    run_tiny(tmp_path, "trainer.max_epochs=1")
    first = (tmp_path / "demo" / "checkpoints" / "last.ckpt").read_bytes()
    run_tiny(tmp_path, "trainer.max_epochs=1")
    assert (tmp_path / "demo" / "checkpoints" / "last.ckpt").read_bytes() == first
    second = tmp_path / "demo-1"
    assert (second / "checkpoints" / "last.ckpt").is_file()
    assert sce_core.load_config(second / "config.yaml").dir.run == str(second)
