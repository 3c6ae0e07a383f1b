"""One feature per video of a split, on one or many processes: what ``sce extract`` runs.

The videos of a split are embedded as the evaluation of the config embeds them: as the bank of
a model that has one for that split (``video_retrieval``, ``knn_classifier``), else with the
test split's clip sampler and CPU transform; then the model's ``test_transform`` on the device and
its frozen ``trunk`` in eval mode. The views of a video are averaged exactly on any number of
processes (:class:`~sce_builtins.evaluation.views.ViewRows`), in the split's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.utils.data import DataLoader

from sce_builtins.evaluation._common import first_view
from sce_builtins.evaluation.features import split_loader
from sce_builtins.evaluation.ranks import world_info
from sce_builtins.evaluation.views import ViewRows
from sce_builtins.transforms.stage import transform_batch
from sce_core.errors import SCEError

_OWNER = "sce extract"


@dataclass
class ExtractedFeatures:
    """``features (N, D) float32``, ``labels (N,) int64``, ``paths (N,)`` in the split's order."""

    features: np.ndarray
    labels: np.ndarray
    paths: np.ndarray


def extraction_spec(model: Any, datamodule: Any, split: str) -> dict[str, Any]:
    """The split spec ``{split, clip_sampler, transform, batch_size, num_workers}`` to embed ``split``."""
    bank = getattr(model, "bank_spec", None)
    if isinstance(bank, Mapping) and bank.get("split") == split:
        return dict(model.bank_spec_for(datamodule))  # the bank exactly as the evaluation embeds it
    test = (getattr(datamodule, "splits", None) or {}).get("test")
    if test is None:
        raise SCEError(f"{_OWNER}: the config has no datamodule.test split; its clip_sampler and "
                       f"transform say how videos are embedded (add one, e.g. from eval/retrieval_r3d18_ucf101)")
    loader = test.get("loader") or {}
    return {"split": split, "clip_sampler": test.get("clip_sampler"), "transform": test.get("transform"),
            "batch_size": int(test.get("global_batch_size") or 1),
            "num_workers": int(loader.get("num_workers", 0))}


class FeatureExtraction(LightningModule):
    """``trainer.test`` of this module embeds every video of ``spec["split"]``.

    Args:
        trunk: the trunk (eval mode during the test loop).
        transform: GPU batch transform of the inputs (the model's ``test_transform``).
        datamodule: the config's datamodule, the source of the split.
        spec: the split spec (:func:`extraction_spec`).
    """

    def __init__(self, trunk: nn.Module, transform: Any, datamodule: Any, spec: Mapping[str, Any]) -> None:
        super().__init__()
        self.trunk = trunk
        self.transform = transform
        self.source = datamodule
        self.spec = dict(spec)
        self.view_rows = ViewRows()
        self.records: list[Any] = []
        self.result: tuple[Tensor, Tensor, Tensor] | None = None

    def prepare_data(self) -> None:
        """The datamodule's preparation (e.g. the synthetic set generated, the layout checked)."""
        self.source.prepare_data()

    def test_dataloader(self) -> DataLoader:
        """A sequential loader of the split, sharded over the processes."""
        world, _ = world_info()
        spec = {**self.spec, "batch_size": max(int(self.spec.get("batch_size", 1)) // world, 1)}
        loader = split_loader(self.source, spec, _OWNER)
        self.records = list(loader.dataset.records)
        return loader

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the model's test transform to ``batch["input"]``."""
        return transform_batch(self, batch, None, None, self.transform)

    @torch.no_grad()
    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Keep the trunk features of every view of the batch."""
        self.view_rows.add(self.trunk(first_view(batch["input"])).float().flatten(1), batch)

    def on_test_epoch_end(self) -> None:
        """Combine the views of every video (gathered from every process)."""
        self.result = self.view_rows.videos("mean")

    def extracted(self) -> ExtractedFeatures:
        """The features, labels and annotation paths of the split's videos."""
        if self.result is None:
            raise RuntimeError(f"{_OWNER}: no features yet (run trainer.test first)")
        features, labels, ids = self.result
        paths = [self.records[i].name or self.records[i].path for i in ids.tolist()]
        return ExtractedFeatures(features.cpu().numpy().astype(np.float32),
                                 labels.cpu().numpy().astype(np.int64), np.array(paths, dtype=str))
