"""Loggers by name (``loggers: [csv, tensorboard, wandb]``): Lightning's loggers, writing into
the run folder. ``csv`` and ``tensorboard`` are what a run gets without a ``loggers`` section;
``wandb`` and ``mlflow`` need their package (``pip install 'sce-core[wandb]'`` / ``[mlflow]``).

Each receives the run folder (``save_dir``) and, when resuming, the checkpoint's step
(``resume_step``) from the runner; the YAML names only the other options.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from sce_core.errors import SCEError


def _require(logger: str, module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SCEError(f"the {logger} logger needs the {module} package: pip install {module} "
                       f"(or pip install 'sce-core[{logger}]')")


def csv(save_dir: Path, resume_step: int | None = None) -> Any:
    """``<run>/logs/metrics.csv``; a resumed run appends to it (rows logged at or after the
    checkpoint's step are dropped: the resumed run logs them again)."""
    from sce_core.run_dir import csv_logger

    return csv_logger(Path(save_dir), resume_step)


def tensorboard(save_dir: Path, resume_step: int | None = None) -> Any:
    """TensorBoard event files in ``<run>/tensorboard/`` (``tensorboard --logdir <run>``)."""
    from sce_core.run_dir import tensorboard_logger

    return tensorboard_logger(Path(save_dir))


def wandb(save_dir: Path, resume_step: int | None = None, project: str = "sce", name: str | None = None,
          entity: str | None = None, offline: bool = False, tags: list[str] | None = None) -> Any:
    """Weights & Biases (``pip install wandb``; ``wandb login`` or ``WANDB_API_KEY``).

    Args:
        project: the W&B project.
        name: the run's name (W&B picks one when None).
        entity: the team or user (your default when None).
        offline: write locally under ``<run>/wandb`` and sync later (``wandb sync``).
        tags: tags of the W&B run.
    """
    _require("wandb", "wandb")
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(save_dir=str(save_dir), project=project, name=name, entity=entity,
                       offline=offline, tags=tags)


def mlflow(save_dir: Path, resume_step: int | None = None, experiment_name: str = "sce",
           run_name: str | None = None, tracking_uri: str | None = None) -> Any:
    """MLflow (``pip install mlflow``).

    Args:
        experiment_name: the MLflow experiment.
        run_name: the MLflow run's name.
        tracking_uri: the tracking server; None: files in ``<run>/mlruns``.
    """
    _require("mlflow", "mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    uri = tracking_uri or (Path(save_dir).resolve() / "mlruns").as_uri()
    return MLFlowLogger(experiment_name=experiment_name, run_name=run_name, tracking_uri=uri)
