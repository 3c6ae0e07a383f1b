"""Config -> datamodule, model, Trainer: ``sce pretrain`` and ``sce evaluate PROTOCOL``.

The runner stays thin: Lightning does devices, precision, DDP, SLURM, checkpointing and
logging. What it adds: whole-config validation first, the resolved config in the run folder,
run-relative paths, CSV + TensorBoard logs, a checkpoint for ``resume=auto`` and a clean
stop with a checkpoint on SIGTERM (SLURM preemption).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sce_core.building import build
from sce_core.config import load_config, save_config
from sce_core.errors import ConfigError, RunInterrupted, SCEError
from sce_core.hooks import collect_callbacks, declared, pick, plugin_manager
from sce_core.nodes import NAME_KEY
from sce_core.run_dir import CLAIM_FILE, launcher_job
from sce_core.validate import validate_config

log = logging.getLogger("sce")

RESOLVED_CONFIG = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
RESUME_CHECKPOINT = "last.ckpt"
DEFAULT_CHECKPOINT_MINUTES = 30.0
DEFAULT_RUN_ROOT = "runs"


def prepare(config: str | Path, overrides: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """Load, validate (every problem at once) and resolve a run config.

    Returns ``(resolved, plain)``: the config to save (environment values kept as
    ``${oc.env:...}``) and the same config as plain data with real values, to build from.
    """
    from omegaconf import OmegaConf

    from sce_core.resolved import resolve_run_config

    cfg = load_config(config, overrides)
    plain_for_hooks = OmegaConf.to_container(cfg, resolve=False)
    plugin_manager().hook.sce_configure.call_historic(kwargs={"config": plain_for_hooks})
    issues = validate_config(cfg, complete=True)
    if issues:
        raise ConfigError(issues)
    return resolve_run_config(cfg)


def run_dir_of(plain: dict[str, Any]) -> Path:
    """``dir.run`` of the config, else ``runs/<config name>``."""
    run = (plain.get("dir") or {}).get("run")
    return Path(run if run else Path(DEFAULT_RUN_ROOT) / str(plain.get("name", "run"))).expanduser()


def _checkpoint_dirpath(node: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Checkpoint callbacks write inside the run's one checkpoint folder.

    No ``dirpath`` (or ``checkpoints``): ``<run>/checkpoints``; another relative path (the
    seed's ``pretrain_checkpoints``) a folder inside it; absolute paths are kept.
    """
    out = dict(node)
    dirpath = out.get("dirpath")
    if dirpath is None or (isinstance(dirpath, str) and not os.path.isabs(dirpath)):
        folder = run_dir / CHECKPOINT_DIR
        if dirpath and Path(dirpath) != Path(CHECKPOINT_DIR):
            folder = folder / dirpath
        out["dirpath"] = str(folder)
    return out


def build_callbacks(plain: dict[str, Any], run_dir: Path) -> list[Any]:
    """Callbacks of the ``callbacks`` section plus those of ``sce_callbacks`` hooks."""
    callbacks = []
    for key, node in (plain.get("callbacks") or {}).items():
        if node is None:
            continue
        if _takes_dirpath(node):
            node = _checkpoint_dirpath(node if isinstance(node, dict) else {NAME_KEY: node}, run_dir)
        callbacks.append(build("callbacks", node, path=f"callbacks.{key}"))
    callbacks += collect_callbacks(plain)
    return callbacks


def _takes_dirpath(node: Any) -> bool:
    """A callback whose component has a ``dirpath`` parameter writes checkpoints."""
    from sce_core.registries import registry
    from sce_core.signature import component_spec

    name = node.get(NAME_KEY) if isinstance(node, dict) else node
    if not isinstance(name, str):
        return False
    entry = registry("callbacks").resolve(name.split("/")[-1])
    return "dirpath" in component_spec(entry.load(), "callbacks").params


def build_trainer(plain: dict[str, Any], run_dir: Path, callbacks: list[Any],
                  resume_step: int | None = None, **extra: Any) -> Any:
    """``lightning.Trainer`` from the ``trainer`` section (a ``strategy`` node is built).

    Checkpoints are written atomically; ``sync_batchnorm`` uses
    :class:`~sce_core.sync_batchnorm.BatchNormSync`; the CSV log appends to an earlier run's rows when
    resuming (``resume_step``: the step of the checkpoint resumed from).
    """
    from lightning.pytorch import Trainer
    from lightning.pytorch.plugins.layer_sync import LayerSync

    from sce_core.checkpoint_files import AtomicCheckpointIO
    from sce_core.sync_batchnorm import BatchNormSync

    kwargs = {k: v for k, v in dict(plain.get("trainer") or {}).items() if not k.startswith("_")}
    strategy = kwargs.get("strategy")
    if isinstance(strategy, dict):
        kwargs["strategy"] = build("strategies", strategy, path="trainer.strategy")
    if "logger" not in kwargs:
        kwargs["logger"] = build_loggers(plain, run_dir, resume_step)
    plugins = kwargs.get("plugins") or []
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(type(p).__name__.endswith("CheckpointIO") for p in plugins):
        plugins = [*plugins, AtomicCheckpointIO()]
    if kwargs.get("sync_batchnorm") and not any(isinstance(p, LayerSync) for p in plugins):
        plugins = [*plugins, BatchNormSync()]  # no host syncs; shuffle-BN's layers stay local
    kwargs["plugins"] = plugins
    kwargs.setdefault("default_root_dir", str(run_dir))
    kwargs.update(extra)
    callbacks = _with_progress(callbacks, kwargs.get("enable_progress_bar", True))
    try:
        return Trainer(callbacks=callbacks, **kwargs)
    except Exception as exc:  # Lightning's device/strategy errors, with the config keys named
        if type(exc).__name__ != "MisconfigurationException":
            raise
        hint = ""
        if "gpu" in str(exc).lower() or "cuda" in str(exc).lower():
            hint = "; on a machine without a GPU set trainer.accelerator=cpu (and trainer.precision=32)"
        raise SCEError(f"trainer: {str(exc).strip()}{hint}") from exc


def build_loggers(plain: dict[str, Any], run_dir: Path, resume_step: int | None) -> list[Any]:
    """The ``loggers`` section (a list or ``name: node`` mapping); none: CSV + TensorBoard."""
    from sce_core.run_dir import csv_logger, tensorboard_logger

    section = plain.get("loggers")
    if section is None:
        return [csv_logger(run_dir, resume_step), tensorboard_logger(run_dir)]
    items = ([(f"loggers.{k}", n) for k, n in section.items()] if isinstance(section, dict)
             else [(f"loggers[{i}]", n) for i, n in enumerate(section)])
    return [build("loggers", node, path=path, save_dir=run_dir, resume_step=resume_step)
            for path, node in items if node is not None]


def _with_progress(callbacks: list[Any], enabled: Any) -> list[Any]:
    """Our progress display (bar on a terminal, lines in a log) unless one is configured."""
    from lightning.pytorch.callbacks import ProgressBar

    from sce_core.console import progress_bar

    if enabled is False or any(isinstance(c, ProgressBar) for c in callbacks):
        return callbacks
    return [*callbacks, progress_bar()]


RUN_DIR_ENV = "SCE_RUN_DIR"
RESUME_ENV = "SCE_RESUME_FROM"


def _launched_rank() -> bool:
    """A rank that Lightning started for this run (rank 0 chose the folder and checkpoint)."""
    return bool(os.environ.get(RUN_DIR_ENV))


RESUME_AUTO = (True, "auto", "last")


def resume_requested(resume: Any) -> bool:
    """Whether the config asks to resume (``auto`` or a path)."""
    return resume not in (None, False, "", "none", "null")


def _resume_path(resume: Any) -> Path | None:
    """``resume=<path>``: the checkpoint path (checked); ``auto``/none: None."""
    if not resume_requested(resume) or resume in RESUME_AUTO:
        return None
    from sce_core.checkpoint_files import is_resumable

    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise SCEError(f"resume checkpoint '{path}' does not exist; give a .ckpt path or resume=auto")
    if not is_resumable(path):
        raise SCEError(f"resume checkpoint '{path}' is not a complete training checkpoint "
                       f"(truncated, or written with save_weights_only); give another .ckpt")
    return path


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def choose_run(run_dir: Path, resume: Any) -> tuple[Path, Path | None]:
    """The run folder (claimed) and the checkpoint to resume from (None: from scratch).

    Without ``resume``, a new folder (``<run>-N`` when ``<run>`` is taken). ``resume=auto``:
    the run's own folder and its newest complete checkpoint. ``resume=<path>``: the run's own
    folder when the path lies in it, else a new folder (never another run's).
    """
    from sce_core.checkpoint_files import newest_checkpoint
    from sce_core.run_dir import claim_run_dir, is_run_dir, join_run_dir, own_run_dir

    if _launched_rank():
        chosen = os.environ.get(RESUME_ENV)
        return Path(os.environ[RUN_DIR_ENV]), Path(chosen) if chosen else None
    path = _resume_path(resume)
    job = launcher_job()
    if job is not None:  # srun/torchrun: every rank uses the configured folder
        if resume in RESUME_AUTO:
            return run_dir, newest_checkpoint(run_dir / CHECKPOINT_DIR)
        if path is not None and _inside(path, run_dir):
            return run_dir, path
        return join_run_dir(run_dir, *job), path
    if path is not None:
        own = _inside(path, run_dir) and (is_run_dir(run_dir) or (run_dir / RESOLVED_CONFIG).is_file())
        return (run_dir if own else claim_run_dir(run_dir)), path
    if resume_requested(resume):
        run_dir = own_run_dir(run_dir)
        found = newest_checkpoint(run_dir / CHECKPOINT_DIR)
        if found is None:
            log.warning("resume=auto: no checkpoint in %s yet, starting from scratch",
                        run_dir / CHECKPOINT_DIR)
        return run_dir, found
    return claim_run_dir(run_dir), None


def _save_run_config(resolved: Any, run_dir: Path) -> None:
    """Write ``config.yaml``; a resumed run with another config keeps the earlier one aside."""
    from omegaconf import OmegaConf

    target = run_dir / RESOLVED_CONFIG
    if target.is_file() and target.read_text() != OmegaConf.to_yaml(resolved):
        index = 1
        while (run_dir / f"config.before-resume-{index}.yaml").exists():
            index += 1
        os.replace(target, run_dir / f"config.before-resume-{index}.yaml")
    save_config(resolved, target)


class RunSetup(NamedTuple):
    """What :func:`setup_run` built."""

    trainer: Any
    model: Any
    datamodule: Any
    run_dir: Path
    plain: dict[str, Any]
    resume_from: Path | None
    stop: Any
    fresh: bool = False  # the folder was claimed by this run (given back if it fails at once)

    def fit(self, **kwargs: Any) -> None:
        """``trainer.fit`` from the resume checkpoint, with the run's stop handling."""
        kwargs.setdefault("ckpt_path", str(self.resume_from) if self.resume_from else None)
        _fit(self, **kwargs)

    def test(self, **kwargs: Any) -> list[dict[str, float]]:
        """``trainer.test`` of the run's model and datamodule (ranks it launches join this run)."""
        kwargs.setdefault("verbose", False)  # the protocol reports its results
        with _ranks_use(self):
            return self.trainer.test(self.model, datamodule=self.datamodule, weights_only=True, **kwargs)


def _build_checked(plain: dict[str, Any]) -> tuple[Any, Any]:
    """The datamodule and the model, with the kind contracts' run-start checks passed."""
    from sce_core.building import build_parts
    from sce_core.contracts import run_start_problems

    datamodule, data_parts = build_parts("datamodules", plain["datamodule"], path="datamodule")
    model, model_parts = build_parts("models", plain["model"], path="model")
    problems = run_start_problems([*data_parts, *model_parts])
    if problems:
        raise SCEError("; ".join(problems) + " (fix the component; `sce plugin validate DIST` "
                       "runs the same checks)")
    return datamodule, model


def _checkpoint_options(plain: dict[str, Any]) -> dict[str, Any]:
    options = dict(plain.get("checkpoint") or {})
    return {"every_n_steps": options.get("every_n_steps"),
            "every_minutes": options.get("every_minutes", DEFAULT_CHECKPOINT_MINUTES)}


def setup_run(config: str | Path, overrides: Sequence[str] = (), code_files: Sequence[str] = (),
              stop: Any = None) -> RunSetup:
    """Validate, resolve and save the config, seed, then build datamodule, model and Trainer."""
    import torch
    from lightning.pytorch import seed_everything
    from omegaconf import OmegaConf

    from sce_core.checkpointing import RunCheckpoint
    from sce_core.console import RunSummary, quiet_lightning
    from sce_core.run_callbacks import (
        ConfigInCheckpoint,
        RNGStateCallback,
        check_process_count,
        saved_process_count,
    )
    from sce_core.run_dir import release_run_dir
    from sce_core.stop import StopRequest, replace_lightning_signals

    stop = stop if stop is not None else StopRequest()
    quiet_lightning()
    resolved, plain = prepare(config, overrides)
    seed = dict(plain.get("seed") or {})
    if "seed" in seed:
        seed_everything(seed["seed"], workers=bool(seed.get("workers", True)))
    datamodule, model = _build_checked(plain)  # before the run folder exists
    run_dir, resume_from = choose_run(run_dir_of(plain), plain.get("resume"))
    job = launcher_job()
    fresh = (not _launched_rank() and (job is None or job[1] == 0)
             and [p.name for p in run_dir.iterdir()] == [CLAIM_FILE])
    try:
        if "dir" in resolved and resolved.dir.get("run") not in (None, str(run_dir)):
            resolved.dir.run = str(run_dir)
        if code_files:
            resolved.code = [str(Path(p).resolve()) for p in code_files]
        callbacks = build_callbacks(plain, run_dir)
        saved_config = OmegaConf.to_container(resolved)  # environment values stay ${oc.env:...}
        callbacks += [RNGStateCallback(), ConfigInCheckpoint(saved_config),
                      RunCheckpoint(run_dir / CHECKPOINT_DIR, stop, **_checkpoint_options(plain)),
                      RunSummary(str(plain.get("name", config)), run_dir)]
        saved = {} if resume_from is None else torch.load(
            resume_from, map_location="cpu", weights_only=True, mmap=True)
        trainer = build_trainer(plain, run_dir, callbacks,
                                resume_step=int(saved.get("global_step", 0)) if saved else None)
        processes = saved_process_count(saved)
        if processes is not None:
            check_process_count(processes, int(trainer.world_size))
        replace_lightning_signals(trainer, stop)
        if not _launched_rank():
            _save_run_config(resolved, run_dir)
            if resume_from is not None:
                print(f"sce: resuming from {resume_from}", flush=True)
    except BaseException:
        if fresh:
            release_run_dir(run_dir)  # a failed start leaves no folder behind
        raise
    return RunSetup(trainer, model, datamodule, run_dir, plain, resume_from, stop, fresh)


@contextmanager
def _ranks_use(run: RunSetup) -> Iterator[None]:
    """Ranks Lightning launches during fit use this run's folder and checkpoint."""
    saved = {k: os.environ.get(k) for k in (RUN_DIR_ENV, RESUME_ENV)}
    os.environ[RUN_DIR_ENV] = str(run.run_dir)
    os.environ[RESUME_ENV] = str(run.resume_from or "")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fit(run: RunSetup, **kwargs: Any) -> None:
    """``trainer.fit``; a stop signal ends it with :class:`RunInterrupted` after the save."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from sce_core.run_dir import release_run_dir

    try:
        with _ranks_use(run):
            run.trainer.fit(run.model, datamodule=run.datamodule, weights_only=True, **kwargs)
    except BaseException as exc:
        if run.fresh and run.trainer.is_global_zero and run.trainer.global_step == 0:
            release_run_dir(run.run_dir)  # failed before training: the retry takes the same name
        if not isinstance(exc, SIGTERMException) or not run.stop.confirmed:
            raise
        raise RunInterrupted(f"stopped by a signal; saved {run.run_dir / CHECKPOINT_DIR / RESUME_CHECKPOINT} "
                             f"(restart the same command with resume=auto)", run.stop.exit_code) from None


def pretrain(config: str | Path, overrides: Sequence[str] = (), code_files: Sequence[str] = ()) -> Any:
    """Run pretraining from a config; returns the fitted Lightning Trainer.

    A stop signal (SIGTERM) saves the run's checkpoint and raises
    :class:`~sce_core.errors.RunInterrupted` (``sce`` exits 143).
    """
    from sce_core.stop import StopRequest

    stop = StopRequest()
    with stop.installed():
        run = setup_run(config, overrides, code_files, stop=stop)
        run.fit()
        trainer = run.trainer
        if not trainer.interrupted:
            trainer.save_checkpoint(run.run_dir / CHECKPOINT_DIR / RESUME_CHECKPOINT, weights_only=False)
        if trainer.global_rank == 0:
            print(run_summary(trainer).end_line(trainer))
            print(f"sce: run folder {run.run_dir.resolve()} ({_contents(run.run_dir)})")
        if stop.requested:
            raise RunInterrupted("stopped by a signal after training ended; the run's checkpoint "
                                 "is complete", stop.exit_code)
    return trainer


def _contents(run_dir: Path) -> str:
    """What a finished run folder holds, for the last line: ``config.yaml, logs/, ...``."""
    names = [RESOLVED_CONFIG, "logs/", "tensorboard/", "plots/", f"{CHECKPOINT_DIR}/{RESUME_CHECKPOINT}"]
    return ", ".join(n for n in names if (run_dir / n).exists())


def run_summary(trainer: Any) -> Any:
    """The run's :class:`~sce_core.console.RunSummary` callback."""
    from sce_core.console import RunSummary

    return next(c for c in trainer.callbacks if isinstance(c, RunSummary))


def evaluation_protocols() -> dict[str, Any]:
    """Every protocol the ``sce_evaluation_protocols`` hooks declare, by name."""
    return declared("sce_evaluation_protocols", "evaluation protocol")


def find_protocol(name: str) -> Any:
    """The protocol called ``name``; a one-line error with the closest names if none is."""
    from sce_core.walk import suggest

    protocols = evaluation_protocols()
    if name not in protocols:
        known = ", ".join(sorted(protocols)) or "none (no installed plugin declares one)"
        raise SCEError(f"unknown evaluation protocol '{name}'{suggest(name, protocols)} "
                       f"(protocols: {known})")
    return pick(protocols, name)


def evaluate(protocol: str, config: str | Path, overrides: Sequence[str] = (),
             code_files: Sequence[str] = ()) -> Any:
    """Run evaluation ``protocol`` (declared by a plugin) on a prepared run; its results.

    The protocol receives the :class:`RunSetup`; a stop signal is handled as in pretraining.
    A protocol that returns a record ``{"metrics": {...}, ...}`` has it written, with the
    protocol's name, to ``<run>/results.json`` (what ``sce results`` reads).
    """
    from sce_core.stop import StopRequest

    run_protocol = find_protocol(protocol)
    stop = StopRequest()
    with stop.installed():
        run = setup_run(config, overrides, code_files, stop=stop)
        results = run_protocol(run)
    if run.trainer.global_rank == 0:
        if isinstance(results, Mapping) and "metrics" in results:
            path = write_results(run.run_dir, protocol, results)
            shown = "  ".join(f"{k} {v:.4f}" for k, v in results["metrics"].items())
            print(f"sce: {protocol} results: {shown} (saved to {path})")
        else:
            print(f"sce: {protocol} evaluation results {results} (run folder {run.run_dir.resolve()})")
    return results


RESULTS_FILE = "results.json"


def write_results(run_dir: Path, protocol: str, results: Mapping[str, Any]) -> Path:
    """``<run>/results.json``: ``{"protocol": ..., **results}`` (a protocol's record), atomically."""
    import json

    from sce_core.outputs import atomic_write_text

    record = {"protocol": protocol, **results}
    return atomic_write_text(run_dir / RESULTS_FILE, json.dumps(record, indent=1) + "\n")
