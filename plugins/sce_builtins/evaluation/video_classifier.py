"""What linear evaluation and fine-tuning share: a classifier on trunk features, trained on clips
and scored on videos (every view's softmax averaged, or max-ed, per video).

Per-view probabilities are kept with their view keys (:class:`~sce_builtins.evaluation.views.
ViewRows`) and combined at epoch end after gathering every rank's rows, so the accuracies do not
depend on the number of processes: padding added by a distributed sampler counts once and the
views of a video may come in different batches or on different ranks. The logged val/test loss
is the negative log-likelihood of the averaged probabilities (the reference applied
cross-entropy to probabilities as if they were logits, docs/reference.md §9.17).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sce_builtins.evaluation._common import first_view, global_batch_size, steps_per_epoch
from sce_builtins.evaluation.knn import topk_correct
from sce_builtins.evaluation.views import SAME_ON_EVERY_RANK, ViewRows
from sce_builtins.transforms.stage import transform_batch


def video_accuracy(
    probs: Tensor, labels: Tensor, topk: Sequence[int] = (1, 5)
) -> tuple[dict[int, float], float]:
    """Top-t accuracies and mean NLL of per-video probabilities ``(V, C)`` against ``labels``."""
    hits = topk_correct(probs, labels, topk)
    n = max(int(probs.shape[0]), 1)
    picked = probs.gather(1, labels.long().view(-1, 1)).clamp_min(1e-12)
    return {t: hits[t] / n for t in topk}, float(-picked.log().mean())


def check_classifier_args(owner: str, modules: Mapping[str, Any], video_reduction: str,
                          topk: Sequence[int]) -> None:
    """One-line errors for a module that is not an ``nn.Module``, a bad reduction or ``topk``."""
    for name, module in modules.items():
        if not isinstance(module, nn.Module):
            raise ValueError(f"{owner}: {name} must be an nn.Module (a config node with _name_)")
    if video_reduction not in ("mean", "max"):
        raise ValueError(f"{owner}: video_reduction must be 'mean' or 'max', got {video_reduction!r}")
    if not topk or any(int(t) < 1 for t in topk):
        raise ValueError(f"{owner}: topk must be positive integers, e.g. [1, 5]")


class VideoClassification:
    """Mixin of a ``LightningModule`` with ``classifier``, ``optimizer_factory``, the three stage
    transforms, ``video_reduction``, ``topk`` and a ``forward`` giving class logits.

    Subclasses call :meth:`keep_classification_args` in ``__init__`` and say which module the
    optimizer trains (:meth:`trained_module`).
    """

    owner = "video classifier"
    optimizer_factory: Any
    train_transform: Any
    val_transform: Any
    test_transform: Any
    video_reduction: str
    topk: tuple[int, ...]
    view_rows: ViewRows

    def keep_classification_args(self, classifier: nn.Module, optimizer: Any, train_transform: Any,
                                 val_transform: Any, test_transform: Any, video_reduction: str,
                                 topk: Sequence[int]) -> None:
        """Keep the classifier, the optimizer factory, the stage transforms and the video options."""
        self.classifier = classifier
        self.optimizer_factory = optimizer
        self.train_transform = train_transform
        self.val_transform = val_transform
        self.test_transform = test_transform
        self.video_reduction = video_reduction
        self.topk = tuple(int(t) for t in topk)
        self.view_rows = ViewRows()

    def trained_module(self) -> nn.Module:
        """The module whose parameters the optimizer updates."""
        raise NotImplementedError

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the current stage's GPU batch transform to ``batch["input"]``."""
        return transform_batch(self, batch, self.train_transform, self.val_transform, self.test_transform)

    def configure_optimizers(self) -> Any:
        """Call the optimizer factory with :meth:`trained_module`, ``S`` and the global batch size."""
        if self.optimizer_factory is None:
            raise ValueError(f"{self.owner}: no optimizer configured; set model.optimizer (optimizer_factory)")
        return self.optimizer_factory(
            model=self.trained_module(),
            num_steps_per_epoch=steps_per_epoch(self.trainer),
            global_batch_size=global_batch_size(self.trainer),
        )

    def _k(self, num_classes: int) -> tuple[int, ...]:
        return tuple(sorted({min(t, num_classes) for t in self.topk}))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Cross-entropy of the logits of labelled rows (rows labelled -1 are ignored)."""
        x, labels = first_view(batch["input"]), torch.as_tensor(batch["label"], device=self.device)
        keep = labels != -1
        logits = self(x[keep])
        labels = labels[keep]
        loss = F.cross_entropy(logits, labels) if labels.numel() else logits.sum() * 0.0
        n = int(labels.numel())
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=max(n, 1),
                 sync_dist=True)
        if n:
            hits = topk_correct(logits.detach(), labels, self.topk)
            for t in self.topk:
                self.log(f"train/acc_{t}", hits[t] / n, on_step=True, on_epoch=True, batch_size=n,
                         sync_dist=True)
        return loss

    # ------------------------------------------------------------------ video evaluation
    def video_results(self) -> tuple[Tensor, Tensor]:
        """Per-video probabilities and labels of the epoch so far, gathered from every rank."""
        if not len(self.view_rows):
            return torch.zeros(0, 1, device=self.device), torch.zeros(0, dtype=torch.long, device=self.device)
        probs, labels, _ids = self.view_rows.videos(self.video_reduction)
        return probs, labels

    def _log_videos(self, stage: str) -> None:
        probs, labels = self.video_results()
        self.view_rows.clear()
        keep = labels != -1
        probs, labels = probs[keep], labels[keep]
        if labels.numel() == 0:
            return
        accs, nll = video_accuracy(probs, labels, self._k(probs.shape[1]))
        for t in self.topk:
            self.log(f"{stage}/acc_{t}", accs[min(t, probs.shape[1])], **SAME_ON_EVERY_RANK)
        self.log(f"{stage}/loss", nll, **SAME_ON_EVERY_RANK)
        self.log(f"{stage}/num_videos", float(labels.numel()), **SAME_ON_EVERY_RANK)

    def on_validation_epoch_start(self) -> None:
        """Start a new collection of per-view results."""
        self.view_rows.clear()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Keep the softmax of every view of the batch."""
        probs = F.softmax(self(first_view(batch["input"])).float(), dim=1)
        self.view_rows.add(probs, batch)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/acc_*`` and ``val/loss`` over all validation videos."""
        self._log_videos("val")

    on_test_epoch_start = on_validation_epoch_start
    test_step = validation_step

    def on_test_epoch_end(self) -> None:
        """Log ``test/acc_*`` and ``test/loss`` over all test videos."""
        self._log_videos("test")
