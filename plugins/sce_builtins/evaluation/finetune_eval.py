"""Fine-tuning of the whole trunk with a classifier (the reference UCF101/HMDB51 protocol):
``finetune_classifier``.

The trunk starts from its ``pretrained:`` weights (a file of ``sce export``; ``null`` trains it
from scratch, the baseline) and trains with the classifier; its BatchNorm layers are not frozen.
Dropout comes before the classifier. Training uses the GPU batch augmentations of
``train_transform``; validation and test score videos on all their views (10 clips x 3 crops
in the shipped configs), exactly the same on any number of processes
(:mod:`~sce_builtins.evaluation.video_classifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from lightning.pytorch import LightningModule
from torch import Tensor, nn

from sce_builtins.evaluation.video_classifier import VideoClassification, check_classifier_args
from sce_core.constraints import Range
from sce_core.slots import Component, Factory

_NAME = "finetune_classifier"


class FinetuneClassifierEvaluation(VideoClassification, LightningModule):
    """Fine-tuning: trunk and classifier trained together, multi-view video validation and test.

    Logs ``train/loss``, ``train/acc_*`` and ``val/*``, ``test/*`` (``loss``, ``acc_1``,
    ``acc_5``, ``num_videos``) on videos.

    Args:
        trunk: the trunk (``pretrained:`` a file of ``sce export``, or null to start from scratch).
        classifier: head on the trunk features, e.g. ``linear_head`` 512 -> num_classes.
        optimizer: optimizer factory node (``optimizer_factory``) called with trunk and
            classifier, ``num_steps_per_epoch`` and ``global_batch_size``.
        dropout: dropout probability on the trunk features before the classifier.
        train_transform: GPU batch augmentations of training inputs.
        val_transform: GPU batch transform of validation inputs (e.g. ``div_255_normalize``).
        test_transform: GPU batch transform of test inputs.
        video_reduction: how the views of a video are combined: ``mean`` or ``max`` of softmax.
        topk: accuracies reported (clipped to the number of classes).
    """

    owner = _NAME

    def __init__(
        self,
        trunk: Component("trunks"),  # type: ignore[valid-type]
        classifier: Component("heads"),  # type: ignore[valid-type]
        optimizer: Factory("optimizers") = None,  # type: ignore[valid-type]
        dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0,
        train_transform: Component("transforms") = None,  # type: ignore[valid-type]
        val_transform: Component("transforms") = None,  # type: ignore[valid-type]
        test_transform: Component("transforms") = None,  # type: ignore[valid-type]
        video_reduction: Literal["mean", "max"] = "mean",
        topk: Sequence[int] = (1, 5),
    ) -> None:
        super().__init__()
        check_classifier_args(_NAME, {"trunk": trunk, "classifier": classifier}, video_reduction, topk)
        self.trunk = trunk
        self.dropout = nn.Dropout(float(dropout))
        self.keep_classification_args(classifier, optimizer, train_transform, val_transform,
                                      test_transform, video_reduction, topk)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a clip batch."""
        return self.classifier(self.dropout(self.trunk(x).flatten(1)))

    def trained_module(self) -> nn.Module:
        """Trunk and classifier train together (the module itself: dropout has no parameters)."""
        return self
