"""Weighted-kNN monitor during pretraining: ``knn/top1`` on a feature bank, every n epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from lightning.pytorch import Callback, LightningModule, Trainer

from sce_builtins.evaluation.features import check_split_spec
from sce_builtins.evaluation.knn import DEFAULT_K, DEFAULT_TEMPERATURE, check_knn_args
from sce_builtins.evaluation.monitor import SplitFeatures, default_batch_transform
from sce_core.slots import Component

_NAME = "knn_monitor"


class KNNMonitor(Callback):
    """Weighted kNN (cosine, ``exp(sim / T)`` votes) of the online trunk; logs ``knn/top1``.

    At the end of every ``every_n_epochs``-th validation epoch (or training epoch, see
    ``when``), features of the bank split (labelled videos only) and of the query split are
    computed with the online trunk in eval mode, without gradients, sharded over ranks and
    gathered; each query video is classified by its ``k`` most similar bank videos. Logs
    ``knn/top1`` and ``knn/top5``. Loaders are built once from the trainer's datamodule.

    Args:
        k: neighbours per query (20 or 200 are common).
        temperature: temperature of the vote weights.
        every_n_epochs: run every n epochs.
        bank: bank split ``{split: train, clip_sampler, transform, batch_size, num_workers,
            dataset}``; unset clip_sampler = one clip per video from its start (as long as the
            split's own clips), unset transform = none.
        query: query split, same keys (default split ``val``).
        batch_transform: device transform of the clips (default: the model's
            ``val_transform``, else ``div_255_normalize``).
        when: ``validation_epoch_end`` or ``train_epoch_end`` (runs without a val split).
    """

    def __init__(
        self,
        k: int = DEFAULT_K,
        temperature: float = DEFAULT_TEMPERATURE,
        every_n_epochs: int = 1,
        bank: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        batch_transform: Component("transforms") = None,  # type: ignore[valid-type]
        when: Literal["validation_epoch_end", "train_epoch_end"] = "validation_epoch_end",
    ) -> None:
        check_knn_args(k, temperature, _NAME)
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"{_NAME}: every_n_epochs must be a positive integer, got {every_n_epochs!r}")
        if when not in ("validation_epoch_end", "train_epoch_end"):
            raise ValueError(f"{_NAME}: when must be 'validation_epoch_end' or 'train_epoch_end'")
        self.k = int(k)
        self.temperature = float(temperature)
        self.every_n_epochs = every_n_epochs
        self.splits = SplitFeatures(check_split_spec(bank, _NAME, "train"),
                                    check_split_spec(query, _NAME, "val"), _NAME)
        self.batch_transform = batch_transform
        self.when = when
        self.history: list[tuple[int, float]] = []

    def _run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        result = self.splits.evaluate(
            {"trunk": pl_module.trunk}, trainer.datamodule, pl_module.device,
            default_batch_transform(self.batch_transform, pl_module), self.k, self.temperature,
        )
        self.history.append((trainer.current_epoch, result.top1["trunk"]))
        pl_module.log("knn/top1", result.top1["trunk"], on_step=False, on_epoch=True, sync_dist=True)
        pl_module.log("knn/top5", result.top5["trunk"], on_step=False, on_epoch=True, sync_dist=True)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Run the kNN evaluation (when ``when`` is ``validation_epoch_end``)."""
        if self.when == "validation_epoch_end":
            self._run(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Run the kNN evaluation (when ``when`` is ``train_epoch_end``)."""
        if self.when == "train_epoch_end":
            self._run(trainer, pl_module)
