"""Frozen-trunk linear evaluation (docs/reference.md §6.5) as a plain LightningModule: ``linear_classifier``.

The trunk (its exported weights loaded through its own ``pretrained:`` argument) is frozen and
always in eval mode (BatchNorm keeps the pretraining statistics); only the classifier trains.
Validation and test follow the video protocol: per-clip softmax, averaged over all clips and
crops of a video, accuracy against the video label (:mod:`~sce_builtins.evaluation.video_classifier`).

Deliberate differences from the reference: videos are grouped by id and view keys rather than
assumed to be 30 contiguous rows; per-video results are combined over the whole epoch and
gathered across ranks, with sampler padding counted once; the logged val/test loss is the true
negative log-likelihood of the averaged probabilities (docs/reference.md §9.17).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from sce_builtins.evaluation._common import FrozenTrunkModule
from sce_builtins.evaluation.video_classifier import VideoClassification, check_classifier_args
from sce_core.slots import Component, Factory

_NAME = "linear_classifier"


class LinearClassifierEvaluation(VideoClassification, FrozenTrunkModule):
    """Linear evaluation: frozen trunk in eval mode, trained classifier, multi-view video test.

    Batches are ``{"input": Tensor(B, C, T, H, W) (or a list: the first view is used),
    "label", "idx"}``; rows labelled -1 are ignored. Logs ``train/loss``, ``train/acc_1``,
    ``train/acc_5`` (step and epoch) and ``val/*``, ``test/*`` (``loss``, ``acc_1``, ``acc_5``)
    per epoch, on videos.

    Args:
        trunk: the pretrained trunk (set its ``pretrained:`` to a file of ``sce export``).
        classifier: head on the trunk features, e.g. ``linear_head`` 512 -> num_classes.
        optimizer: optimizer factory node (``optimizer_factory``) called with the classifier,
            ``num_steps_per_epoch`` and ``global_batch_size``.
        train_transform: GPU batch transform of training inputs (e.g. flip + normalise).
        val_transform: GPU batch transform of validation inputs (e.g. ``div_255_normalize``).
        test_transform: GPU batch transform of test inputs.
        video_reduction: how the views of a video are combined: ``mean`` of softmax
            (reference ``same_avg``) or ``max`` (``same_max``).
        topk: accuracies reported (clipped to the number of classes).
    """

    owner = _NAME

    def __init__(
        self,
        trunk: Component("trunks"),  # type: ignore[valid-type]
        classifier: Component("heads"),  # type: ignore[valid-type]
        optimizer: Factory("optimizers") = None,  # type: ignore[valid-type]
        train_transform: Component("transforms") = None,  # type: ignore[valid-type]
        val_transform: Component("transforms") = None,  # type: ignore[valid-type]
        test_transform: Component("transforms") = None,  # type: ignore[valid-type]
        video_reduction: Literal["mean", "max"] = "mean",
        topk: Sequence[int] = (1, 5),
    ) -> None:
        super().__init__()
        check_classifier_args(_NAME, {"trunk": trunk, "classifier": classifier}, video_reduction, topk)
        self.freeze_trunk(trunk)
        self.keep_classification_args(classifier, optimizer, train_transform, val_transform,
                                      test_transform, video_reduction, topk)

    # ------------------------------------------------------------------ modes and forward
    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Frozen trunk features ``(B, D)`` (no grad, eval mode)."""
        return self.trunk(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a clip batch."""
        return self.classifier(self.features(x))

    def trained_module(self) -> nn.Module:
        """Only the classifier trains."""
        return self.classifier
