"""Frozen-trunk linear evaluation (docs/reference.md §6.5) as a plain LightningModule: ``linear_classifier``.

The trunk (its exported weights loaded through its own ``pretrained:`` argument) is frozen and
always in eval mode (BatchNorm keeps the pretraining statistics); only the classifier trains.
Validation and test follow the video protocol: per-clip softmax, averaged over all clips and
crops of a video (grouped by the batch's video ``idx``; with ``multiple_samples`` collate a
video's 30 views are in one batch), accuracy against the video label.

Deliberate differences from the reference: videos are grouped by id rather than assumed to be
30 contiguous rows; per-video results are combined over the whole epoch and gathered across
ranks (duplicates from sampler padding do not change a mean); the logged val/test loss is the
true negative log-likelihood of the averaged probabilities (the reference applied
cross-entropy to probabilities as if they were logits, docs/reference.md §9.17).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sce_builtins.evaluation._common import (
    FrozenTrunkModule,
    first_view,
    global_batch_size,
    steps_per_epoch,
)
from sce_builtins.evaluation.features import gather_rows, reduce_by_id
from sce_builtins.evaluation.knn import topk_correct
from sce_builtins.transforms.stage import transform_batch
from sce_core.slots import Component, Factory

_NAME = "linear_classifier"


def video_accuracy(
    probs: Tensor, labels: Tensor, topk: Sequence[int] = (1, 5)
) -> tuple[dict[int, float], float]:
    """Top-t accuracies and mean NLL of per-video probabilities ``(V, C)`` against ``labels``."""
    hits = topk_correct(probs, labels, topk)
    n = max(int(probs.shape[0]), 1)
    picked = probs.gather(1, labels.long().view(-1, 1)).clamp_min(1e-12)
    return {t: hits[t] / n for t in topk}, float(-picked.log().mean())


class LinearClassifierEvaluation(FrozenTrunkModule):
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
        for name, module in (("trunk", trunk), ("classifier", classifier)):
            if not isinstance(module, nn.Module):
                raise ValueError(f"{_NAME}: {name} must be an nn.Module (a config node with _name_)")
        if video_reduction not in ("mean", "max"):
            raise ValueError(f"{_NAME}: video_reduction must be 'mean' or 'max', got {video_reduction!r}")
        if not topk or any(int(t) < 1 for t in topk):
            raise ValueError(f"{_NAME}: topk must be positive integers, e.g. [1, 5]")
        self.freeze_trunk(trunk)
        self.classifier = classifier
        self.optimizer_factory = optimizer
        self.train_transform = train_transform
        self.val_transform = val_transform
        self.test_transform = test_transform
        self.video_reduction = video_reduction
        self.topk = tuple(int(t) for t in topk)
        self._videos: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    # ------------------------------------------------------------------ modes and forward
    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Frozen trunk features ``(B, D)`` (no grad, eval mode)."""
        return self.trunk(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of a clip batch."""
        return self.classifier(self.features(x))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the current stage's GPU batch transform to ``batch["input"]``."""
        return transform_batch(self, batch, self.train_transform, self.val_transform, self.test_transform)

    # ------------------------------------------------------------------ training
    def configure_optimizers(self) -> Any:
        """Call the optimizer factory with the classifier, ``S`` and the global batch size."""
        if self.optimizer_factory is None:
            raise ValueError(f"{_NAME}: no optimizer configured; set model.optimizer (optimizer_factory)")
        return self.optimizer_factory(
            model=self.classifier,
            num_steps_per_epoch=steps_per_epoch(self.trainer),
            global_batch_size=global_batch_size(self.trainer),
        )

    def _k(self, num_classes: int) -> tuple[int, ...]:
        return tuple(sorted({min(t, num_classes) for t in self.topk}))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Cross-entropy of the classifier on frozen features of labelled rows."""
        x, labels = first_view(batch["input"]), torch.as_tensor(batch["label"], device=self.device)
        keep = labels != -1
        logits = self(x[keep])
        labels = labels[keep]
        loss = F.cross_entropy(logits, labels) if labels.numel() else logits.sum() * 0.0
        n = int(labels.numel())
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=max(n, 1))
        if n:
            hits = topk_correct(logits.detach(), labels, self.topk)
            for t in self.topk:
                self.log(f"train/acc_{t}", hits[t] / n, on_step=True, on_epoch=True, batch_size=n)
        return loss

    # ------------------------------------------------------------------ video evaluation
    def _eval_step(self, batch: Mapping[str, Any]) -> None:
        x = first_view(batch["input"])
        labels = torch.as_tensor(batch["label"], device=self.device).long()
        idx = torch.as_tensor(batch["idx"], device=self.device).long()
        probs = F.softmax(self(x).float(), dim=1)
        op = "sum" if self.video_reduction == "mean" else "amax"
        values, ids = reduce_by_id(probs, idx, op)
        counts, _ = reduce_by_id(torch.ones_like(idx, dtype=probs.dtype)[:, None], idx, "sum")
        video_labels, _ = reduce_by_id(labels[:, None], idx, "amax")
        self._videos.append((values, counts[:, 0], video_labels[:, 0], ids))

    def video_results(self) -> tuple[Tensor, Tensor]:
        """Per-video probabilities and labels of the epoch so far, gathered from every rank."""
        if not self._videos:
            return torch.zeros(0, 1, device=self.device), torch.zeros(0, dtype=torch.long, device=self.device)
        values, counts, labels, ids = (torch.cat(parts) for parts in zip(*self._videos))
        values, counts, labels, ids = (gather_rows(t) for t in (values, counts, labels, ids))
        if self.video_reduction == "mean":
            sums, _ = reduce_by_id(values, ids, "sum")
            total, _ = reduce_by_id(counts[:, None], ids, "sum")
            probs = sums / total
        else:
            probs, _ = reduce_by_id(values, ids, "amax")
        video_labels, _ = reduce_by_id(labels[:, None], ids, "amax")
        return probs, video_labels[:, 0]

    def _log_videos(self, stage: str) -> None:
        probs, labels = self.video_results()
        self._videos = []
        keep = labels != -1
        probs, labels = probs[keep], labels[keep]
        if labels.numel() == 0:
            return
        accs, nll = video_accuracy(probs, labels, self._k(probs.shape[1]))
        for t in self.topk:
            self.log(f"{stage}/acc_{t}", accs[min(t, probs.shape[1])])
        self.log(f"{stage}/loss", nll)
        self.log(f"{stage}/num_videos", float(labels.numel()))

    def on_validation_epoch_start(self) -> None:
        """Start a new collection of per-video results."""
        self._videos = []

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Per-video softmax sums (or maxima) of this batch."""
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/acc_*`` and ``val/loss`` over all validation videos."""
        self._log_videos("val")

    on_test_epoch_start = on_validation_epoch_start
    test_step = validation_step

    def on_test_epoch_end(self) -> None:
        """Log ``test/acc_*`` and ``test/loss`` over all test videos."""
        self._log_videos("test")
