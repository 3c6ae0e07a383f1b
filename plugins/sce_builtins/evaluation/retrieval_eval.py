"""Video retrieval of a frozen trunk as a LightningModule: ``video_retrieval``.

``sce evaluate retrieval CONFIG`` runs ``trainer.test`` only: the test split's videos (one
feature each, the mean over the config's clips) query the bank of the train split's videos and
``test/R@k`` is logged for each k (:mod:`~sce_builtins.evaluation.retrieval`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from sce_builtins.evaluation.bank_eval import BankEvaluation
from sce_builtins.evaluation.features import SplitSpec
from sce_builtins.evaluation.retrieval import DEFAULT_KS, check_ks, retrieval_recall
from sce_core.slots import Component

_NAME = "video_retrieval"


class VideoRetrievalEvaluation(BankEvaluation):
    """Test videos as queries against a bank of videos: recall at k (``test/R@1`` ...).

    Args:
        trunk: the pretrained trunk (``pretrained:`` a file of ``sce export``; null: random init).
        ks: the recalls reported.
        center: subtract the bank's mean feature from bank and queries before normalising.
        bank: ``{split: train, clip_sampler, transform, batch_size, num_workers, dataset}``;
            an unset clip_sampler or transform is the test split's, so bank and queries are
            embedded the same way (and ``sce extract`` gives the same features).
        test_transform: GPU batch transform of bank and test inputs (e.g. ``div_255_normalize``).
    """

    owner = _NAME

    def __init__(
        self,
        trunk: Component("trunks"),  # type: ignore[valid-type]
        ks: Sequence[int] = DEFAULT_KS,
        center: bool = True,
        bank: SplitSpec | None = None,
        test_transform: Component("transforms") = None,  # type: ignore[valid-type]
    ) -> None:
        checked = check_ks(ks, _NAME)
        super().__init__(trunk, bank, test_transform)
        self.ks = checked
        self.center = bool(center)

    def bank_spec_for(self, datamodule: Any) -> dict[str, Any]:
        """The bank spec with the test split's clip sampler and transform where unset."""
        return views_like_test(self.bank_spec, datamodule)

    def score(self, query: Tensor, labels: Tensor, bank: Tensor, bank_labels: Tensor) -> dict[str, float]:
        """``R@k`` for every k and ``num_videos`` (labelled queries)."""
        recall = retrieval_recall(query, labels, bank, bank_labels, self.ks, self.center)
        return {**{f"R@{k}": v for k, v in recall.items()}, "num_videos": float((labels != -1).sum())}


def views_like_test(spec: Mapping[str, Any], datamodule: Any) -> dict[str, Any]:
    """``spec`` with the datamodule's test split ``clip_sampler`` and ``transform`` where unset."""
    out = dict(spec)
    test = (getattr(datamodule, "splits", None) or {}).get("test") or {}
    for key in ("clip_sampler", "transform"):
        if out.get(key) is None and test.get(key) is not None:
            out[key] = test[key]
    return out
