"""Frozen-trunk weighted-kNN evaluation as a LightningModule: ``knn_classifier``.

``sce evaluate knn CONFIG`` runs ``trainer.test`` only. At test start the bank is built from
the ``bank`` split (default: the train split, one un-augmented clip per video) with the frozen
trunk in eval mode; every test batch (the datamodule's test split, possibly several clips and
crops per video) gives per-video mean features, and at test end each video is classified by a
weighted kNN vote against the bank.
"""

from __future__ import annotations

from torch import Tensor

from sce_builtins.evaluation.bank_eval import BankEvaluation
from sce_builtins.evaluation.features import SplitSpec
from sce_builtins.evaluation.knn import DEFAULT_K, DEFAULT_TEMPERATURE, check_knn_args, knn_accuracy
from sce_core.slots import Component

_NAME = "knn_classifier"


class KNNClassifierEvaluation(BankEvaluation):
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

    owner = _NAME

    def __init__(
        self,
        trunk: Component("trunks"),  # type: ignore[valid-type]
        k: int = DEFAULT_K,
        temperature: float = DEFAULT_TEMPERATURE,
        bank: SplitSpec | None = None,
        test_transform: Component("transforms") = None,  # type: ignore[valid-type]
    ) -> None:
        check_knn_args(k, temperature, _NAME)
        super().__init__(trunk, bank, test_transform)
        self.k = int(k)
        self.temperature = float(temperature)

    def score(self, query: Tensor, labels: Tensor, bank: Tensor, bank_labels: Tensor) -> dict[str, float]:
        """``knn_top1``, ``knn_top5`` and ``num_videos`` (labelled test videos)."""
        acc = knn_accuracy(query, labels, bank, bank_labels, self.k, self.temperature, topk=(1, 5))
        return {"knn_top1": acc[1], "knn_top5": acc[5], "num_videos": float((labels != -1).sum())}
