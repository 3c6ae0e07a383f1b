"""End-of-pretraining kNN report: learned trunk vs the same trunk at random initialisation."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from sce_builtins.evaluation.features import check_split_spec
from sce_builtins.evaluation.knn import DEFAULT_K, DEFAULT_TEMPERATURE, check_knn_args
from sce_builtins.evaluation.monitor import SplitFeatures, default_batch_transform
from sce_core.slots import Component

_NAME = "knn_report"
LEARNED, RANDOM_INIT = "learned", "random_init"


def format_report(top1: Mapping[str, float], description: str) -> str:
    """``kNN top-1 (<description>): learned 71.3%  random init 40.2%  (+31.1 points)``."""
    learned, init = 100 * top1[LEARNED], 100 * top1[RANDOM_INIT]
    return (f"kNN top-1 ({description}): learned {learned:.1f}%  random init {init:.1f}%  "
            f"({learned - init:+.1f} points)")


class KNNReport(Callback):
    """Prints and saves weighted-kNN top-1 of the learned trunk next to its random init.

    When fit is set up (before any checkpoint is restored, so the copy is the freshly
    initialised trunk, identical for a given seed) the online trunk ``pl_module.trunk`` is
    deep-copied. When fit ends, both trunks (eval mode, no grad, one pass over the data)
    embed the ``bank`` split (with labels) and the ``query`` split; each query video gets the
    weighted-kNN label of its ``k`` nearest bank videos. The two top-1 accuracies are logged
    (``knn_report/learned_top1``, ``knn_report/random_init_top1``) to every logger, printed on
    rank 0 as two lines, and written to ``<output_dir>/<output_file>`` as JSON.

    Args:
        k: neighbours per query.
        temperature: temperature of the vote weights.
        bank: bank split ``{split: train, clip_sampler, transform, batch_size, num_workers,
            dataset}``; unset clip_sampler = one clip per video from its start, unset
            transform = none (no augmentation).
        query: query split, same keys (default split ``val``).
        batch_transform: device transform of the clips (default: the model's
            ``val_transform``, else ``div_255_normalize``).
        description: what the query videos are, shown in the printed line.
        output_dir: folder of the JSON file (default: the run folder, ``default_root_dir``).
        output_file: JSON file name.
        embedding_plot: also draw ``<run>/plots/embedding.png``: t-SNE of the query videos'
            features, learned next to random init, coloured by class (one more pass over the
            query split).
    """

    def __init__(
        self,
        k: int = DEFAULT_K,
        temperature: float = DEFAULT_TEMPERATURE,
        bank: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        batch_transform: Component("transforms") = None,  # type: ignore[valid-type]
        description: str = "held-out videos",
        output_dir: str | None = None,
        output_file: str = "knn.json",
        embedding_plot: bool = True,
    ) -> None:
        check_knn_args(k, temperature, _NAME)
        if not output_file:
            raise ValueError(f"{_NAME}: output_file must be a file name such as knn.json")
        self.k = int(k)
        self.temperature = float(temperature)
        self.bank_spec = check_split_spec(bank, _NAME, "train")
        self.query_spec = check_split_spec(query, _NAME, "val")
        self.splits = SplitFeatures(self.bank_spec, self.query_spec, _NAME)
        self.batch_transform = batch_transform
        self.description = description
        self.output_dir = output_dir
        self.output_file = output_file
        self.embedding_plot = bool(embedding_plot)
        self.initial_trunk: nn.Module | None = None
        self.results: dict[str, Any] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Keep a copy of the untrained online trunk."""
        if stage == "fit" and self.initial_trunk is None:
            trunk = getattr(pl_module, "trunk", None)
            if not isinstance(trunk, nn.Module):
                raise ValueError(f"{_NAME}: the model has no `trunk` module to evaluate")
            self.initial_trunk = copy.deepcopy(trunk)
            self.initial_trunk.requires_grad_(False)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute, log, print and save the report."""
        if self.initial_trunk is None:
            return
        initial = self.initial_trunk.to(pl_module.device)
        result = self.splits.evaluate(
            {LEARNED: pl_module.trunk, RANDOM_INIT: initial}, trainer.datamodule, pl_module.device,
            default_batch_transform(self.batch_transform, pl_module), self.k, self.temperature,
        )
        self.results = {
            "description": self.description,
            "learned_top1": result.top1[LEARNED],
            "random_init_top1": result.top1[RANDOM_INIT],
            "gain_points": 100 * (result.top1[LEARNED] - result.top1[RANDOM_INIT]),
            "learned_top5": result.top5[LEARNED],
            "random_init_top5": result.top5[RANDOM_INIT],
            "k": self.k,
            "temperature": self.temperature,
            "bank": {"split": self.bank_spec["split"], "videos": result.bank_videos},
            "query": {"split": self.query_spec["split"], "videos": result.query_videos},
            "global_step": int(trainer.global_step),
        }
        metrics = {f"{_NAME}/{name}_top1": result.top1[name] for name in (LEARNED, RANDOM_INIT)}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()
        if trainer.is_global_zero:
            path = os.path.join(self.output_dir or trainer.default_root_dir, self.output_file)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self.results, f, indent=2)
            print(format_report(result.top1, self.description))
            print(f"kNN details: k={self.k}, T={self.temperature:g}, bank {result.bank_videos} "
                  f"{self.bank_spec['split']} videos, query {result.query_videos} "
                  f"{self.query_spec['split']} videos; saved to {path}")
        if self.embedding_plot:
            self._draw_embedding(trainer, pl_module, initial, result.top1)
        self.initial_trunk = initial.cpu()

    def _draw_embedding(self, trainer: Trainer, pl_module: LightningModule, initial: nn.Module,
                        top1: Mapping[str, float]) -> None:
        """``<run>/plots/embedding.png`` of the query split (every rank extracts, rank 0 draws)."""
        from sce_builtins.evaluation.features import extract_features
        from sce_builtins.tools.plots import plot_embedding

        _bank, query_loader = self.splits.loaders(trainer.datamodule)
        query = extract_features({LEARNED: pl_module.trunk, RANDOM_INIT: initial}, query_loader,
                                 pl_module.device, default_batch_transform(self.batch_transform, pl_module))
        if not trainer.is_global_zero:
            return
        known = query.labels != -1
        titles = {LEARNED: f"learned (kNN top-1 {100 * top1[LEARNED]:.1f}%)",
                  RANDOM_INIT: f"random init (kNN top-1 {100 * top1[RANDOM_INIT]:.1f}%)"}
        plot_embedding({name: f[known].cpu().numpy() for name, f in query.features.items()},
                       query.labels[known].cpu().numpy(),
                       Path(trainer.default_root_dir) / "plots" / "embedding.png", titles)
