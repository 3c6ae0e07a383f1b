"""Frozen-trunk weighted-kNN evaluation as a LightningModule: ``knn_classifier``.

``sce evaluate knn CONFIG`` runs ``trainer.test`` only. At test start the bank is built from
the ``bank`` split (default: the train split, one un-augmented clip per video) with the frozen
trunk in eval mode; every test batch (the datamodule's test split, possibly several clips and
crops per video) gives per-video mean features, and at test end each video is classified by a
weighted kNN vote against the bank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sce_builtins.evaluation._common import FrozenTrunkModule, first_view
from sce_builtins.evaluation.features import (
    check_split_spec,
    extract_features,
    gather_rows,
    reduce_by_id,
    split_loader,
)
from sce_builtins.evaluation.knn import DEFAULT_K, DEFAULT_TEMPERATURE, check_knn_args, knn_accuracy
from sce_builtins.transforms.dtype import to_float
from sce_builtins.transforms.stage import transform_batch
from sce_core.slots import Component

_NAME = "knn_classifier"


class KNNClassifierEvaluation(FrozenTrunkModule):
    """Weighted-kNN evaluation of a frozen trunk: bank from a split, queries from the test split.

    Logs ``test/knn_top1``, ``test/knn_top5`` and ``test/num_videos``.

    Args:
        trunk: the pretrained trunk (set its ``pretrained:`` to a file of ``sce export``).
        k: neighbours per query.
        temperature: temperature of the ``exp(cos / temperature)`` vote weights.
        bank: where the bank comes from: ``{split: train, clip_sampler, transform, batch_size,
            num_workers, dataset}``; unset clip_sampler = one clip per video from its start,
            unset transform = none (give e.g. ``scale_center_crop`` for real videos).
        test_transform: GPU batch transform of bank and test inputs (e.g. ``div_255_normalize``).
    """

    def __init__(
        self,
        trunk: Component("trunks"),  # type: ignore[valid-type]
        k: int = DEFAULT_K,
        temperature: float = DEFAULT_TEMPERATURE,
        bank: Mapping[str, Any] | None = None,
        test_transform: Component("transforms") = None,  # type: ignore[valid-type]
    ) -> None:
        super().__init__()
        if not isinstance(trunk, nn.Module):
            raise ValueError(f"{_NAME}: trunk must be an nn.Module (a config node with _name_)")
        check_knn_args(k, temperature, _NAME)
        self.freeze_trunk(trunk)
        self.k = int(k)
        self.temperature = float(temperature)
        self.bank_spec = check_split_spec(bank, _NAME, "train")
        self.test_transform = test_transform
        self.bank: tuple[Tensor, Tensor] | None = None
        self._videos: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Frozen trunk features ``(B, D)``."""
        return self.trunk(x).float().flatten(1)

    def configure_optimizers(self) -> Any:
        """Nothing is trained."""
        return None

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply ``test_transform`` to test inputs."""
        return transform_batch(self, batch, None, self.test_transform, self.test_transform)

    def _bank_transform(self, x: Any) -> Any:
        return to_float(self.test_transform(x) if self.test_transform is not None else x)

    def on_test_start(self) -> None:
        """Compute the bank features of the ``bank`` split."""
        datamodule = self.trainer.datamodule
        if datamodule is None:
            raise ValueError(f"{_NAME}: needs a datamodule to build the bank (trainer.test(datamodule=...))")
        loader = split_loader(datamodule, self.bank_spec, _NAME)
        feats = extract_features({"trunk": self.trunk}, loader, self.device, self._bank_transform)
        self.bank = (feats.features["trunk"], feats.labels)
        self._videos = []

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Per-video feature sums of the batch (views of a video are averaged at the end)."""
        x = first_view(batch["input"])
        idx = torch.as_tensor(batch["idx"], device=self.device).long()
        labels = torch.as_tensor(batch["label"], device=self.device).long()
        feats = self(x)
        sums, ids = reduce_by_id(feats, idx, "sum")
        counts, _ = reduce_by_id(torch.ones_like(idx, dtype=feats.dtype)[:, None], idx, "sum")
        video_labels, _ = reduce_by_id(labels[:, None], idx, "amax")
        self._videos.append((sums, counts[:, 0], video_labels[:, 0], ids))

    def on_test_epoch_end(self) -> None:
        """Classify every test video against the bank; log top-1 / top-5."""
        if self.bank is None or not self._videos:
            return
        sums, counts, labels, ids = (gather_rows(torch.cat(p)) for p in zip(*self._videos))
        self._videos = []
        total, _ = reduce_by_id(sums, ids, "sum")
        n, _ = reduce_by_id(counts[:, None], ids, "sum")
        video_labels, _ = reduce_by_id(labels[:, None], ids, "amax")
        query = total / n
        bank, bank_labels = self.bank
        acc = knn_accuracy(query, video_labels[:, 0], bank, bank_labels, self.k, self.temperature,
                           topk=(1, 5))
        self.log("test/knn_top1", acc[1])
        self.log("test/knn_top5", acc[5])
        self.log("test/num_videos", float((video_labels[:, 0] != -1).sum()))
