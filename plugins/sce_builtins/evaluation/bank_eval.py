"""Frozen-trunk evaluations that compare test videos with a bank of videos (kNN, retrieval).

At test start the bank split is embedded (one feature per video, the mean over its clips) with
the frozen trunk in eval mode; every test batch adds the features of its views, and at test end
each test video's feature (the mean over its views) is scored against the bank by
:meth:`BankEvaluation.score`. Both sides are combined per video exactly on any number of
processes (:class:`~sce_builtins.evaluation.views.ViewRows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sce_builtins.evaluation._common import FrozenTrunkModule, first_view
from sce_builtins.evaluation.features import check_split_spec, extract_features, split_loader
from sce_builtins.evaluation.views import SAME_ON_EVERY_RANK, ViewRows
from sce_builtins.transforms.dtype import to_float
from sce_builtins.transforms.stage import transform_batch


class BankEvaluation(FrozenTrunkModule):
    """Base of ``knn_classifier`` and ``video_retrieval``; subclasses implement :meth:`score`.

    Args:
        trunk: the pretrained trunk (set its ``pretrained:`` to a file of ``sce export``).
        bank: where the bank comes from: ``{split, clip_sampler, transform, batch_size,
            num_workers, dataset}`` (unset keys: see the subclass).
        test_transform: GPU batch transform of bank and test inputs (e.g. ``div_255_normalize``).
    """

    owner = "bank evaluation"

    def __init__(self, trunk: nn.Module, bank: Mapping[str, Any] | None, test_transform: Any) -> None:
        super().__init__()
        if not isinstance(trunk, nn.Module):
            raise ValueError(f"{self.owner}: trunk must be an nn.Module (a config node with _name_)")
        self.freeze_trunk(trunk)
        self.bank_spec = check_split_spec(bank, self.owner, "train")
        self.test_transform = test_transform
        self.bank: tuple[Tensor, Tensor] | None = None
        self.view_rows = ViewRows()

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

    def bank_spec_for(self, datamodule: Any) -> dict[str, Any]:
        """The bank's split spec (subclasses may fill unset keys from the datamodule)."""
        return self.bank_spec

    def on_test_start(self) -> None:
        """Compute the features of the bank split's videos."""
        datamodule = self.trainer.datamodule
        if datamodule is None:
            raise ValueError(f"{self.owner}: needs a datamodule to build the bank (trainer.test(datamodule=...))")
        loader = split_loader(datamodule, self.bank_spec_for(datamodule), self.owner)
        feats = extract_features({"trunk": self.trunk}, loader, self.device, self._bank_transform)
        self.bank = (feats.features["trunk"], feats.labels)
        self.view_rows.clear()

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Keep the features of every view of the batch."""
        self.view_rows.add(self(first_view(batch["input"])), batch)

    def on_test_epoch_end(self) -> None:
        """Score every test video (the mean feature of its views) against the bank."""
        if self.bank is None or not len(self.view_rows):
            return
        query, labels, _ids = self.view_rows.videos("mean")
        self.view_rows.clear()
        for name, value in self.score(query, labels, *self.bank).items():
            self.log(f"test/{name}", value, **SAME_ON_EVERY_RANK)

    def score(self, query: Tensor, labels: Tensor, bank: Tensor, bank_labels: Tensor) -> dict[str, float]:
        """Metrics of the test videos ``query (Q, D)`` against the bank ``(N, D)``."""
        raise NotImplementedError
