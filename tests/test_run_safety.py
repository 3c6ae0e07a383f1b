"""Run safety as a user meets it: kills in the middle of writes, kill -9 mid-run, second
signals, signals before training, simultaneous runs, resuming another run's checkpoint."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import torch
from tiny_demo import TINY, sce

from sce_core.checkpoint_files import atomic_torch_save, is_resumable, newest_checkpoint
from sce_core.run_dir import CLAIM_FILE, claim_run_dir, keep_rows_before

DATA = Path(__file__).parent / "data"


def step_of(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def test_kill_during_a_checkpoint_write_keeps_the_previous_one_and_resume_continues(cache, tmp_path):
    # saves: step 1, step 2, step 3 (also the epoch end) ...; the 3rd write is cut and the process killed
    args = ["pretrain", "demo", *TINY, f"dir.root={tmp_path}", "checkpoint.every_n_steps=1"]
    proc = sce(*args, "--code", str(DATA / "kill_during_save.py"), env={"SCE_TEST_KILL_AT_SAVE": "3"})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    folder = tmp_path / "demo" / "checkpoints"
    assert is_resumable(folder / "last.ckpt") and step_of(folder / "last.ckpt") == 2
    assert [p.name for p in folder.glob(".last.ckpt.*.tmp")] != []  # the cut file was a temp file
    resumed = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}", "resume=auto")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert f"resuming from {folder / 'last.ckpt'}" in out
    assert step_of(folder / "last.ckpt") == 6
    assert list(folder.glob(".*.tmp")) == []  # the dead process' temp file was cleaned up


def test_kill_9_mid_run_resumes_from_the_newest_checkpoint_in_the_one_folder(cache, tmp_path):
    args = [*TINY, f"dir.root={tmp_path}", "trainer.max_epochs=30", "checkpoint.every_n_steps=2",
            "callbacks.model_checkpoint._name_=model_checkpoint",
            "callbacks.model_checkpoint.every_n_epochs=1", "callbacks.model_checkpoint.save_top_k=-1"]
    proc = sce("pretrain", "demo", *args)
    folder = tmp_path / "demo" / "checkpoints"
    deadline = time.monotonic() + 240
    while not list(folder.glob("epoch=1*.ckpt")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    assert not (tmp_path / "demo" / "logs" / "checkpoints").exists()  # one checkpoint folder
    newest = newest_checkpoint(folder)
    assert newest is not None and step_of(newest) >= 6
    resumed = sce("pretrain", "demo", *args, "trainer.max_epochs=4", "resume=auto")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert f"resuming from {newest}" in out
    assert step_of(folder / "last.ckpt") == 4 * 3
    earlier = tmp_path / "demo" / "config.before-resume-1.yaml"  # the resume changed max_epochs
    assert "max_epochs: 30" in earlier.read_text()
    assert "max_epochs: 4" in (tmp_path / "demo" / "config.yaml").read_text()


def test_newest_checkpoint_skips_a_truncated_file(tmp_path):
    atomic_torch_save({"state_dict": {}, "loops": {}, "global_step": 1}, tmp_path / "a.ckpt")
    (tmp_path / "b.ckpt").write_bytes((tmp_path / "a.ckpt").read_bytes()[:50])
    os.utime(tmp_path / "a.ckpt", (1, 1))
    assert not is_resumable(tmp_path / "b.ckpt")
    assert newest_checkpoint(tmp_path) == tmp_path / "a.ckpt"


def test_a_second_signal_during_the_save_ends_the_run_at_once(cache, tmp_path):
    marker = tmp_path / "saving"
    proc = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}", "trainer.max_epochs=200",
               "--code", str(DATA / "slow_save.py"),
               env={"SCE_TEST_SLOW_SAVE_S": "120", "SCE_TEST_SAVING_MARKER": str(marker)})
    metrics = tmp_path / "demo" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not metrics.exists() and time.monotonic() < deadline:  # first epoch saved
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.2)  # past the window in which a repeated delivery is ignored
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 143, out[-3000:]
    assert "second SIGTERM: stopping now" in out
    assert is_resumable(metrics)


def test_signal_before_training_stops_at_once_with_143(cache, tmp_path):
    proc = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}",
               "datamodule.synthetic.train_per_class=400")  # a long dataset generation
    config = tmp_path / "demo" / "config.yaml"
    deadline = time.monotonic() + 120
    while not config.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out[-3000:]
    assert "stopped by SIGTERM before training started; nothing to save" in out


def _claim(root: str, queue) -> None:
    queue.put(str(claim_run_dir(Path(root) / "run")))


def test_simultaneous_runs_claim_different_folders(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(tmp_path), queue)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    claimed = sorted(queue.get(timeout=5) for _ in procs)
    assert len(set(claimed)) == 8
    assert all((Path(c) / CLAIM_FILE).is_file() for c in claimed)


def test_a_failed_start_leaves_no_claimed_folder(cache, tmp_path):
    proc = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}", "model.trunk._name_=small_3d_cnn",
               "datamodule.train.global_batch_size=7", "trainer.devices=2", "trainer.strategy=ddp")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out[-3000:]
    assert not (tmp_path / "demo").exists()


def test_a_folder_with_user_files_is_never_taken(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert claim_run_dir(tmp_path / "run") == tmp_path / "run-1"
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "run" / CLAIM_FILE).exists()


def test_resume_from_another_runs_checkpoint_never_writes_into_either_run(cache, tmp_path):
    for root in ("a", "b"):
        proc = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path / root}", "trainer.max_epochs=1")
        assert proc.wait(timeout=300) == 0
    runs = [tmp_path / "a" / "demo", tmp_path / "b" / "demo"]
    before = {p: p.read_bytes() for run in runs for p in run.rglob("*") if p.is_file()}
    other = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path / 'b'}",
                f"resume={runs[0] / 'checkpoints' / 'last.ckpt'}")
    out, _ = other.communicate(timeout=300)
    assert other.returncode == 0, out[-3000:]
    assert {p: p.read_bytes() for run in runs for p in run.rglob("*") if p.is_file()} == before
    assert step_of(tmp_path / "b" / "demo-1" / "checkpoints" / "last.ckpt") == 6
    # a checkpoint of dir.run itself continues in that folder
    own = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path / 'a'}", "trainer.max_epochs=2",
              f"resume={runs[0] / 'checkpoints' / 'last.ckpt'}")
    out, _ = own.communicate(timeout=300)
    assert own.returncode == 0, out[-3000:]
    assert step_of(runs[0] / "checkpoints" / "last.ckpt") == 6
    assert not (tmp_path / "a" / "demo-1").exists()


def test_run_checkpoint_defaults_to_every_30_minutes_and_counts_steps(monkeypatch):
    from types import SimpleNamespace

    from sce_core import checkpointing
    from sce_core.checkpointing import RunCheckpoint
    from sce_core.runner import _checkpoint_options
    from sce_core.stop import StopRequest

    options = _checkpoint_options({})
    assert options == {"every_n_steps": None, "every_minutes": 30.0}
    clock = [1000.0]
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: clock[0])
    callback = RunCheckpoint(Path("unused"), StopRequest(), **options)
    trainer = SimpleNamespace(global_step=7)
    assert not callback._due(trainer)
    clock[0] += 30 * 60 - 1
    assert not callback._due(trainer)
    clock[0] += 1
    assert callback._due(trainer)
    by_steps = RunCheckpoint(Path("unused"), StopRequest(), every_n_steps=4, every_minutes=None)
    assert [by_steps._due(SimpleNamespace(global_step=s)) for s in (3, 4, 5, 8)] == [False, True, False, True]


def test_keep_rows_before_drops_only_rows_that_a_resume_redoes(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss,step\n0,1.0,0\n0,0.5,1\n0,0.25,2\n0,0.1,3\n")
    assert keep_rows_before(path, 2) == 2
    assert path.read_text().splitlines() == ["epoch,loss,step", "0,1.0,0", "0,0.5,1"]


def _join(folder: str, job: str, rank: int, queue) -> None:
    from sce_core.run_dir import join_run_dir

    try:
        queue.put((rank, str(join_run_dir(Path(folder), job, rank, wait_s=20))))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        queue.put((rank, f"error: {exc}"))


def _join_all(folder: Path, job: str, ranks: int = 3) -> dict[int, str]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_join, args=(str(folder), job, r, queue)) for r in reversed(range(ranks))]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    return results


def test_ranks_of_one_srun_job_share_a_new_folder_and_refuse_an_earlier_run(tmp_path):
    first = _join_all(tmp_path / "run", "slurm 11.0.0")
    assert set(first.values()) == {str(tmp_path / "run")}
    (tmp_path / "run" / "config.yaml").write_text("earlier run\n")
    second = _join_all(tmp_path / "run", "slurm 12.0.0")  # another job, same dir.run
    assert all(v.startswith(f"error: run folder {tmp_path / 'run'} already holds an earlier run")
               for v in second.values()), second
    assert (tmp_path / "run" / "config.yaml").read_text() == "earlier run\n"


def test_launcher_job_key_differs_between_requeues(monkeypatch):
    from sce_core.run_dir import launcher_job

    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    first = launcher_job()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert first[1] == 3 and launcher_job()[0] != first[0]
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert launcher_job() is None


def test_environment_secrets_stay_out_of_the_run_folder(cache, tmp_path):
    proc = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}", "trainer.max_epochs=1",
               "+dir.token=${oc.env:SCE_TEST_SECRET}", env={"SCE_TEST_SECRET": "s3cret-value"})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    run = tmp_path / "demo"
    written = [p for p in run.rglob("*") if p.is_file()]
    assert (run / "config.yaml") in written and (run / "checkpoints" / "last.ckpt") in written
    assert not [p for p in written if b"s3cret-value" in p.read_bytes()]
    assert "${oc.env:SCE_TEST_SECRET}" in (run / "config.yaml").read_text()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["sce_config"]["dir"]["token"] == "${oc.env:SCE_TEST_SECRET}"


def test_an_empty_config_is_one_line_and_no_run_folder(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    proc = sce("pretrain", str(empty), f"dir.run={tmp_path / 'run'}")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in out and "KeyError" not in out
    assert "datamodule" in out and "model" in out
    assert not (tmp_path / "run").exists()


def test_two_sce_pretrain_started_together_get_two_folders(cache, tmp_path):
    warm = sce("pretrain", "demo", *TINY, f"dir.root={tmp_path / 'warm'}", "trainer.max_epochs=1")
    assert warm.wait(timeout=300) == 0  # the dataset exists: both runs reach the claim together
    runs = [sce("pretrain", "demo", *TINY, f"dir.root={tmp_path}", "trainer.max_epochs=1")
            for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    folders = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("demo"))
    assert folders == ["demo", "demo-1"]
    for name in folders:
        config = (tmp_path / name / "config.yaml").read_text()
        assert f"run: {tmp_path / name}\n" in config
        assert step_of(tmp_path / name / "checkpoints" / "last.ckpt") == 3
