"""Lightning callback reporting bad samples per epoch and at the end of the run.

It reads the counts the datamodule keeps (``trainer.datamodule.health``, a
:class:`~sce_builtins.data.health.DataHealth`); the datamodule itself enforces the
``max_bad_samples`` limit, so the callback only reports.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from lightning.pytorch import Callback

from sce_builtins.data.health import format_summary

log = logging.getLogger("sce.data")


class DataHealthCallback(Callback):
    """Report unreadable/replaced samples: one line per epoch, a summary at the end.

    Args:
        log_metrics: also log ``data/bad_samples_<split>`` per epoch (summed over ranks).
        max_paths: paths listed in the end-of-run summary.
        write_json: write ``data_health.json`` (totals, by reason, by path) in the log folder.
    """

    def __init__(self, log_metrics: bool = True, max_paths: int = 20, write_json: bool = True) -> None:
        self.log_metrics = bool(log_metrics)
        self.max_paths = int(max_paths)
        self.write_json = bool(write_json)
        self.epoch_reports: list[dict[str, Any]] = []

    @staticmethod
    def _health(trainer: Any) -> Any:
        return getattr(getattr(trainer, "datamodule", None), "health", None)

    def _epoch_report(self, trainer: Any, pl_module: Any, split: str) -> None:
        health = self._health(trainer)
        if health is None:
            return
        epoch = trainer.current_epoch
        summary = health.epoch_summary(split, epoch)
        self.epoch_reports.append({"split": split, "epoch": epoch, **summary})
        if summary["total"]:
            log.warning(format_summary(f"data health, {split} epoch {epoch}", summary, max_paths=5))
        if self.log_metrics and pl_module is not None and not trainer.sanity_checking:
            pl_module.log(
                f"data/bad_samples_{split}", float(summary["total"]),
                on_step=False, on_epoch=True, sync_dist=True, reduce_fx="sum",
            )

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Report the training epoch's bad samples."""
        self._epoch_report(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Report the validation epoch's bad samples."""
        self._epoch_report(trainer, pl_module, "val")

    def _final(self, trainer: Any) -> None:
        health = self._health(trainer)
        if health is None:
            return
        summary = health.total_summary()
        text = format_summary("data health, whole run", summary, max_paths=self.max_paths)
        (log.warning if summary["total"] else log.info)(text)
        if self.write_json and trainer.is_global_zero and trainer.log_dir:
            os.makedirs(trainer.log_dir, exist_ok=True)
            with open(os.path.join(trainer.log_dir, "data_health.json"), "w", encoding="utf-8") as f:
                json.dump({"total": summary, "epochs": self.epoch_reports}, f, indent=2)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """End-of-training summary."""
        self._final(trainer)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        """End-of-test summary."""
        self._final(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Summary also when the run stops (e.g. the bad-sample limit was exceeded)."""
        self._final(trainer)
