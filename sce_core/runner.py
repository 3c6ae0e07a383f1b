"""Config -> datamodule, model, Trainer: ``sce pretrain``, ``sce evaluate``, ``sce export``.

The runner stays thin: Lightning does devices, precision, DDP, SLURM, checkpointing and
logging. What it adds: whole-config validation first, the resolved config in the run folder,
run-relative paths, CSV + TensorBoard logs, a checkpoint for ``resume=auto`` and a clean
stop with a checkpoint on SIGTERM (SLURM preemption).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sce_core.build import build
from sce_core.config import load_config, save_config
from sce_core.errors import ConfigError, SCEError
from sce_core.hooks import collect_callbacks, plugin_manager
from sce_core.resolved import resolved_config
from sce_core.validate import validate_config

log = logging.getLogger("sce")

RESOLVED_CONFIG = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
RESUME_CHECKPOINT = "last.ckpt"
DEFAULT_RUN_ROOT = "runs"
EXPORT_CONFIG_SUFFIX = ".yaml"


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
    issues = validate_config(cfg)
    if issues:
        raise ConfigError(issues)
    return resolve_run_config(cfg)


def run_dir_of(plain: dict[str, Any]) -> Path:
    """``dir.run`` of the config, else ``runs/<config name>``."""
    run = (plain.get("dir") or {}).get("run")
    return Path(run if run else Path(DEFAULT_RUN_ROOT) / str(plain.get("name", "run"))).expanduser()


def _absolute_dirpaths(node: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Callback paths such as the seed's ``dirpath: pretrain_checkpoints`` live in the run."""
    out = dict(node)
    if isinstance(out.get("dirpath"), str) and not os.path.isabs(out["dirpath"]):
        out["dirpath"] = str(run_dir / out["dirpath"])
    return out


def build_callbacks(plain: dict[str, Any], run_dir: Path) -> list[Any]:
    """Callbacks of the ``callbacks`` section plus those of ``sce_callbacks`` hooks."""
    callbacks = []
    for key, node in (plain.get("callbacks") or {}).items():
        if node is None:
            continue
        if isinstance(node, dict):
            node = _absolute_dirpaths(node, run_dir)
        callbacks.append(build("callbacks", node, path=f"callbacks.{key}"))
    callbacks += collect_callbacks(plain)
    return callbacks


def build_trainer(plain: dict[str, Any], run_dir: Path, callbacks: list[Any], **extra: Any) -> Any:
    """``lightning.Trainer`` from the ``trainer`` section (a ``strategy`` node is built)."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    kwargs = {k: v for k, v in dict(plain.get("trainer") or {}).items() if not k.startswith("_")}
    strategy = kwargs.get("strategy")
    if isinstance(strategy, dict):
        kwargs["strategy"] = build("strategies", strategy, path="trainer.strategy")
    if "logger" not in kwargs:
        kwargs["logger"] = [CSVLogger(run_dir, name="", version="logs"),
                            TensorBoardLogger(run_dir, name="", version="tensorboard")]
    kwargs.setdefault("default_root_dir", str(run_dir))
    kwargs.update(extra)
    try:
        return Trainer(callbacks=callbacks, **kwargs)
    except Exception as exc:  # Lightning's device/strategy errors, with the config keys named
        if type(exc).__name__ != "MisconfigurationException":
            raise
        hint = ""
        if "gpu" in str(exc).lower() or "cuda" in str(exc).lower():
            hint = "; on a machine without a GPU set trainer.accelerator=cpu (and trainer.precision=32)"
        raise SCEError(f"trainer: {str(exc).strip()}{hint}") from exc


RUN_DIR_ENV = "SCE_RUN_DIR"
MULTI_PROCESS_ENV = ("LOCAL_RANK", "WORLD_SIZE", "SLURM_NTASKS")


def _one_of_several_processes() -> bool:
    """Started by torchrun/srun/Lightning as one rank of many: every rank must use one folder."""
    return any(os.environ.get(k) not in (None, "", "0", "1") or (k == "LOCAL_RANK" and k in os.environ)
               for k in MULTI_PROCESS_ENV)


def fresh_run_dir(run_dir: Path, resume: Any) -> Path:
    """The run folder, never the folder of an earlier run unless resuming (no data lost).

    When ``run_dir`` already holds a run and no resume is asked for, ``<run_dir>-1``,
    ``-2``, ... is used instead. Ranks started by a launcher use the folder rank 0 chose
    (``SCE_RUN_DIR``) or, under torchrun/srun, the configured one as is.
    """
    chosen = os.environ.get(RUN_DIR_ENV)
    if chosen:
        return Path(chosen)
    if find_resume_checkpoint_requested(resume) or _one_of_several_processes():
        return run_dir
    if not (run_dir / RESOLVED_CONFIG).exists():
        return run_dir
    index = 1
    while (run_dir.parent / f"{run_dir.name}-{index}").exists():
        index += 1
    fresh = run_dir.parent / f"{run_dir.name}-{index}"
    log.warning("run folder %s holds an earlier run; this run goes to %s (resume=auto continues "
                "the earlier one)", run_dir, fresh)
    return fresh


def find_resume_checkpoint_requested(resume: Any) -> bool:
    """Whether the config asks to resume (``auto`` or a path)."""
    return resume not in (None, False, "", "none", "null")


def find_resume_checkpoint(resume: Any, run_dir: Path) -> str | None:
    """``resume=auto`` -> the run's last checkpoint if any; a path -> that path; else None."""
    if not find_resume_checkpoint_requested(resume):
        return None
    if resume in (True, "auto", "last"):
        last = run_dir / CHECKPOINT_DIR / RESUME_CHECKPOINT
        if last.is_file():
            return str(last)
        log.warning("resume=auto: no checkpoint at %s yet, starting from scratch", last)
        return None
    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise SCEError(f"resume checkpoint '{path}' does not exist; give a .ckpt path or resume=auto")
    return str(path)


def pretrain(config: str | Path, overrides: Sequence[str] = (), code_files: Sequence[str] = ()) -> Any:
    """Run pretraining from a config; returns the fitted Lightning Trainer."""

    trainer, model, datamodule, run_dir, plain = setup_run(config, overrides, code_files)
    ckpt_path = find_resume_checkpoint(plain.get("resume"), run_dir)
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # ranks Lightning launches during fit use this folder
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    if not trainer.interrupted:
        trainer.save_checkpoint(run_dir / CHECKPOINT_DIR / RESUME_CHECKPOINT)
    if trainer.global_rank == 0:
        print(f"sce: run folder {run_dir.resolve()} (config.yaml, logs/, tensorboard/, "
              f"{CHECKPOINT_DIR}/{RESUME_CHECKPOINT}; plots: `sce plot {run_dir}`)")
    return trainer


def setup_run(config: str | Path, overrides: Sequence[str] = (), code_files: Sequence[str] = ()
              ) -> tuple[Any, Any, Any, Path, dict[str, Any]]:
    """Validate, resolve and save the config, seed, then build datamodule, model and Trainer."""
    from lightning.pytorch import seed_everything

    from sce_core.run_callbacks import ConfigInCheckpoint, PreemptionCheckpoint, RNGStateCallback

    resolved, plain = prepare(config, overrides)
    run_dir = fresh_run_dir(run_dir_of(plain), plain.get("resume"))
    run_dir.mkdir(parents=True, exist_ok=True)
    if "dir" in resolved and resolved.dir.get("run") not in (None, str(run_dir)):
        resolved.dir.run = str(run_dir)
    if code_files:
        resolved.code = [str(Path(p).resolve()) for p in code_files]
    save_config(resolved, run_dir / RESOLVED_CONFIG)
    seed = dict(plain.get("seed") or {})
    if "seed" in seed:
        seed_everything(seed["seed"], workers=bool(seed.get("workers", True)))
    datamodule = build("datamodules", plain["datamodule"], path="datamodule")
    model = build("models", plain["model"], path="model")
    callbacks = build_callbacks(plain, run_dir)
    callbacks += [RNGStateCallback(), ConfigInCheckpoint(plain),
                  PreemptionCheckpoint(run_dir / CHECKPOINT_DIR / RESUME_CHECKPOINT)]
    trainer = build_trainer(plain, run_dir, callbacks)
    return trainer, model, datamodule, run_dir, plain


def evaluate(protocol: str, config: str | Path, overrides: Sequence[str] = (),
             code_files: Sequence[str] = ()) -> Any:
    """Linear or kNN evaluation of a pretrained trunk (``sce evaluate linear|knn``)."""
    trainer, model, datamodule, run_dir, _plain = setup_run(config, overrides, code_files)
    ckpt_path = None
    if protocol == "linear":
        trainer.fit(model, datamodule=datamodule)
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best and getattr(trainer.checkpoint_callback, "monitor", None):
            ckpt_path = "best"  # spec 6.5: the best validation checkpoint is tested
    results = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    if trainer.global_rank == 0:
        print(f"sce: {protocol} evaluation results {results} (run folder {run_dir.resolve()})")
    return results


def export(checkpoint: str | Path, output: str | Path) -> Path:
    """Write the online trunk's weights and its resolved config beside them."""
    from sce_core.export import export_trunk

    return export_trunk(Path(checkpoint), Path(output))


def plot(run_dir: str | Path) -> list[Path]:
    """PNG plots of the curves a run logged (loss, lr, momentum, accuracies)."""
    from sce_core.plots import plot_run

    return plot_run(Path(run_dir))
