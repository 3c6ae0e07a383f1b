"""Run folders: claimed atomically, never another run's, logs appended on resume.

A folder belongs to a run when it holds the claim file :data:`CLAIM_FILE`, created with
``O_EXCL`` so that two runs started at the same moment cannot take the same folder. A run
never writes into a folder it did not create or claim: an existing folder with other content
(an earlier run, a user's notes) makes the run go to ``<run>-1``, ``<run>-2``, ...
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

from sce_core.errors import SCEError
from sce_core.outputs import atomic_write_text

log = logging.getLogger("sce")

CLAIM_FILE = ".sce-run"
MAX_SIBLINGS = 10_000


def _claim(folder: Path, owner: str = "") -> bool:
    """Take ``folder`` if it does not exist or is empty; False when it is taken."""
    try:
        folder.mkdir()
    except FileExistsError:
        if not folder.is_dir() or any(p.name != CLAIM_FILE for p in folder.iterdir()):
            return False
    try:
        fd = os.open(folder / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(owner or f"pid {os.getpid()}\n")
    return True


def claim_run_dir(run_dir: Path) -> Path:
    """``run_dir`` if free, else the first free ``<run_dir>-N``; claimed before returning."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    if _claim(run_dir):
        return run_dir
    for index in range(1, MAX_SIBLINGS):
        candidate = run_dir.parent / f"{run_dir.name}-{index}"
        if _claim(candidate):
            log.warning("run folder %s is taken (an earlier run or other files); this run goes to "
                        "%s (resume=auto continues the earlier run)", run_dir, candidate)
            return candidate
    raise RuntimeError(f"no free run folder next to {run_dir}")


STARTUP_FILES = ("config.yaml", "logs/hparams.yaml", "logs/metrics.csv",
                 "tensorboard/events.out.tfevents.*")


def launcher_job() -> tuple[str, int] | None:
    """``(job key, global rank)`` when srun or torchrun started this process as one rank of
    several (None otherwise). The key differs between jobs and between requeues of one job."""
    env = os.environ
    if int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in env:
        key = ".".join(env.get(k, "") for k in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_RESTART_COUNT"))
        return f"slurm {key}", int(env["SLURM_PROCID"])
    if int(env.get("WORLD_SIZE", "1") or 1) > 1 and "RANK" in env:
        parts = ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")
        return "torchrun " + ":".join(env.get(k, "") for k in parts), int(env["RANK"])
    return None


def join_run_dir(folder: Path, job: str, rank: int, wait_s: float = 120.0) -> Path:
    """All ranks of one launcher job use ``folder``: rank 0 claims it for ``job``, the others
    wait for that claim. A folder held by anything else is refused on every rank alike."""
    import time

    owner = f"job {job}\n"
    taken = SCEError(f"run folder {folder} already holds an earlier run or other files; ranks "
                     f"started by srun/torchrun all use dir.run as given, so set dir.run to a new "
                     f"folder (or resume=auto to continue that run)")
    if rank == 0:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if not _claim(folder, owner):
            raise taken
        return folder
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        claim = folder / CLAIM_FILE
        if claim.is_file() and claim.read_text() == owner:
            return folder
        if (claim.is_file() and claim.read_text() not in ("", owner)) or (
                folder.is_dir() and not claim.exists() and any(folder.iterdir())):
            raise taken
        time.sleep(0.2)
    raise SCEError(f"rank {rank}: rank 0 did not claim the run folder {folder} within {wait_s:.0f} s")


def release_run_dir(folder: Path) -> bool:
    """Give back a folder this run claimed when it failed before writing any checkpoint.

    Removes only what a start writes (the claim file, ``config.yaml``, empty logs) and then
    the folders left empty; a folder holding anything else (a checkpoint, a user's file) is
    kept as it is. Returns whether the folder is gone, so a retry can use the same name.
    """
    if not is_run_dir(folder) or any((folder / "checkpoints").glob("**/*.ckpt")):
        return False
    for pattern in (CLAIM_FILE, *STARTUP_FILES):
        for path in folder.glob(pattern):
            if path.is_file():
                path.unlink()
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        (folder / CLAIM_FILE).touch()  # something else is in it: it stays this run's folder
        return False
    return True


def is_run_dir(folder: Path) -> bool:
    """Whether ``folder`` was created by an sce run (it holds the claim file)."""
    return (folder / CLAIM_FILE).is_file()


def own_run_dir(run_dir: Path) -> Path:
    """For ``resume=auto``: the run's folder, created and claimed when new.

    A folder that exists without the claim file (not made by ``sce``, or by a version
    before claim files) is used only if it holds an earlier run's ``config.yaml``.
    """
    if run_dir.is_dir() and (is_run_dir(run_dir) or (run_dir / "config.yaml").is_file()):
        return run_dir
    return claim_run_dir(run_dir)


def keep_rows_before(metrics_csv: Path, step: int) -> int:
    """Drop the rows of a metrics CSV logged at ``step`` or later (redone by a resumed run).

    Returns the number of rows kept. The file is rewritten atomically.
    """
    if not metrics_csv.is_file():
        return 0
    with metrics_csv.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if _step(r) < step]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(metrics_csv, text.getvalue())
    return len(rows)


def _step(row: dict[str, Any]) -> int:
    try:
        return int(float(row.get("step") or 0))
    except ValueError:
        return 0


def csv_logger(run_dir: Path, resume_step: int | None) -> Any:
    """Lightning's CSV logger writing ``<run>/logs/metrics.csv``; on resume it appends to the
    earlier rows (those before the checkpoint's step) instead of deleting the file."""
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class AppendingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            path = Path(self.metrics_file_path)
            if not path.is_file():
                return
            if resume_step is not None:
                keep_rows_before(path, resume_step)
            with path.open(newline="") as handle:
                self.metrics_keys = sorted(csv.DictReader(handle).fieldnames or [])

    class AppendingCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self) -> Any:
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = AppendingWriter(log_dir=self.log_dir)
            return self._experiment

    return AppendingCSVLogger(run_dir, name="", version="logs")


def tensorboard_logger(run_dir: Path) -> Any:
    """Lightning's TensorBoard logger writing ``<run>/tensorboard/``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(run_dir, name="", version="tensorboard")
