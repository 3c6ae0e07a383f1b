"""Lightning's own callbacks under short registry names (kind ``callbacks``).

Thin factories with plain, YAML-checkable parameters; each returns the Lightning object
unchanged, so nothing here re-implements what Lightning does.

Registered names: ``model_checkpoint``, ``lr_monitor``, ``early_stopping``,
``progress_bar`` (tqdm) and ``model_summary``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    TQDMProgressBar,
)

__all__ = ["early_stopping", "lr_monitor", "model_checkpoint", "model_summary", "progress_bar"]


def model_checkpoint(
    dirpath: str | None = None,
    filename: str | None = None,
    monitor: str | None = None,
    verbose: bool = False,
    save_last: bool | Literal["link"] | None = None,
    save_top_k: int = 1,
    save_on_exception: bool = False,
    save_weights_only: bool = False,
    mode: Literal["min", "max"] = "min",
    auto_insert_metric_name: bool = True,
    every_n_train_steps: int | None = None,
    train_time_interval_s: float | None = None,
    every_n_epochs: int | None = None,
    save_on_train_epoch_end: bool | None = None,
    enable_version_counter: bool = True,
) -> ModelCheckpoint:
    """Lightning ``ModelCheckpoint``: save checkpoints during training.

    Args:
        dirpath: directory of the checkpoints (relative paths are relative to the run dir).
        filename: name pattern, e.g. ``'{epoch}'``.
        monitor: logged metric deciding the best checkpoints (None: keep the last ones).
        verbose: print a line per save.
        save_last: also write ``last.ckpt`` (``"link"``: as a symbolic link).
        save_top_k: how many checkpoints to keep (-1: all, 0: none).
        save_on_exception: save when training stops on an exception.
        save_weights_only: save only the model weights (no optimizer, no loops: cannot resume).
        mode: whether the monitored metric is better when lower (``min``) or higher (``max``).
        auto_insert_metric_name: write ``name=value`` in the file name.
        every_n_train_steps: save every n optimizer steps.
        train_time_interval_s: save every so many seconds of training.
        every_n_epochs: save every n epochs.
        save_on_train_epoch_end: check at the end of the training epoch instead of validation.
        enable_version_counter: append ``-v1`` etc. instead of overwriting an existing file.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"model_checkpoint: mode must be 'min' or 'max', got {mode!r}")
    interval = None if train_time_interval_s is None else timedelta(seconds=train_time_interval_s)
    return ModelCheckpoint(
        dirpath=dirpath,
        filename=filename,
        monitor=monitor,
        verbose=verbose,
        save_last=save_last,
        save_top_k=save_top_k,
        save_on_exception=save_on_exception,
        save_weights_only=save_weights_only,
        mode=mode,
        auto_insert_metric_name=auto_insert_metric_name,
        every_n_train_steps=every_n_train_steps,
        train_time_interval=interval,
        every_n_epochs=every_n_epochs,
        save_on_train_epoch_end=save_on_train_epoch_end,
        enable_version_counter=enable_version_counter,
    )


def lr_monitor(
    logging_interval: Literal["step", "epoch"] | None = None,
    log_momentum: bool = False,
    log_weight_decay: bool = False,
) -> LearningRateMonitor:
    """Lightning ``LearningRateMonitor``: log the learning rate of every optimizer group.

    Args:
        logging_interval: ``step``, ``epoch``, or None to follow each scheduler's interval.
        log_momentum: also log the optimizer momentum (or Adam's beta1).
        log_weight_decay: also log the weight decay.
    """
    return LearningRateMonitor(
        logging_interval=logging_interval,
        log_momentum=log_momentum,
        log_weight_decay=log_weight_decay,
    )


def early_stopping(
    monitor: str,
    min_delta: float = 0.0,
    patience: int = 3,
    verbose: bool = False,
    mode: Literal["min", "max"] = "min",
    strict: bool = True,
    check_finite: bool = True,
    stopping_threshold: float | None = None,
    divergence_threshold: float | None = None,
    check_on_train_epoch_end: bool | None = None,
    log_rank_zero_only: bool = False,
) -> EarlyStopping:
    """Lightning ``EarlyStopping``: stop when a logged metric stops improving.

    Args:
        monitor: logged metric to watch, e.g. ``online/val_acc_1``.
        min_delta: smallest change counted as an improvement.
        patience: checks without improvement before stopping.
        verbose: print a line per check.
        mode: ``min`` (lower is better) or ``max``.
        strict: fail when the metric is not logged.
        check_finite: stop when the metric becomes NaN or infinite.
        stopping_threshold: stop at once when the metric reaches this value.
        divergence_threshold: stop at once when the metric gets worse than this value.
        check_on_train_epoch_end: check at the end of the training epoch instead of validation.
        log_rank_zero_only: log the stopping reason on rank 0 only.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"early_stopping: mode must be 'min' or 'max', got {mode!r}")
    return EarlyStopping(
        monitor=monitor,
        min_delta=min_delta,
        patience=patience,
        verbose=verbose,
        mode=mode,
        strict=strict,
        check_finite=check_finite,
        stopping_threshold=stopping_threshold,
        divergence_threshold=divergence_threshold,
        check_on_train_epoch_end=check_on_train_epoch_end,
        log_rank_zero_only=log_rank_zero_only,
    )


def progress_bar(refresh_rate: int = 1, process_position: int = 0, leave: bool = False) -> TQDMProgressBar:
    """Lightning ``TQDMProgressBar``: the console progress bar.

    Args:
        refresh_rate: update the bar every n batches (0 disables it).
        process_position: line offset, for several bars at once.
        leave: keep the finished bar of each epoch on screen.
    """
    return TQDMProgressBar(refresh_rate=refresh_rate, process_position=process_position, leave=leave)


def model_summary(max_depth: int = 1) -> ModelSummary:
    """Lightning ``ModelSummary``: print the layer table at fit start.

    Args:
        max_depth: depth of nested modules shown (-1: all, 0: none).
    """
    return ModelSummary(max_depth=max_depth)
