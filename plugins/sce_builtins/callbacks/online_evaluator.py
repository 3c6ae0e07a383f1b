"""Online linear probe during pretraining (docs/reference.md §6.4, with its two bugs fixed).

A linear classifier learns, with its own optimizer, on detached trunk features of every
training batch (``outputs["h"]`` of the SCE ``training_step``: view-0 online trunk features
from train-mode BatchNorm), and is evaluated on the validation batches (``outputs["h"]`` of
``validation_step``, eval-mode trunk). The model itself is never touched.

Fixed: accuracies are computed on the masked targets (rows with label -1 are dropped for the
loss and the accuracies alike), and the classifier is put back in train mode after every
validation epoch. Deliberate differences: the classifier runs in float32 outside autocast
(no GradScaler needed); under DDP its gradients are summed over ranks weighted by each rank's
labelled rows (an exact global mean, no DistributedDataParallel wrapper, and ranks without
labelled rows still take part). If the outputs lack ``feature_key``, the features come from a
no-grad, eval-mode forward of ``pl_module.trunk`` on the first view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn

from sce_builtins.evaluation._common import first_view, global_batch_size, steps_per_epoch
from sce_builtins.evaluation.knn import topk_correct
from sce_builtins.models.heads.linear import LinearHead
from sce_core.slots import Component, Factory

_NAME = "online_evaluator"
DEFAULT_LR = 1e-4


class OnlineEvaluator(Callback):
    """Linear probe trained online on detached trunk features; logs ``online/*`` metrics.

    Logs ``online/train_loss``, ``online/train_acc_1``, ``online/train_acc_5`` (step and epoch)
    and ``online/val_loss``, ``online/val_acc_1``, ``online/val_acc_5`` (epoch, synced over
    ranks). Its classifier, optimizer and scheduler states are saved in checkpoints and
    restored on resume.

    Args:
        num_classes: number of classes of the labels.
        input_dim: feature width (default: ``pl_module.trunk.num_features``).
        classifier: head to train (default: ``linear_head`` input_dim -> num_classes,
            weights N(0, 0.01), zero bias).
        optimizer: optimizer factory node (``optimizer_factory``), called with the classifier,
            ``num_steps_per_epoch`` and ``global_batch_size`` (default: Adam, lr 1e-4).
        feature_key: key of the features in the model's step outputs.
        topk: accuracies reported (clipped to ``num_classes``).
    """

    def __init__(
        self,
        num_classes: int,
        input_dim: int | None = None,
        classifier: Component("heads") = None,  # type: ignore[valid-type]
        optimizer: Factory("optimizers") = None,  # type: ignore[valid-type]
        feature_key: str = "h",
        topk: Sequence[int] = (1, 5),
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"{_NAME}: num_classes must be a positive integer, got {num_classes!r}")
        if input_dim is not None and input_dim < 1:
            raise ValueError(f"{_NAME}: input_dim must be positive or null, got {input_dim!r}")
        if classifier is not None and not isinstance(classifier, nn.Module):
            raise ValueError(f"{_NAME}: classifier must be a heads node (e.g. linear_head) or null")
        if not topk or any(int(t) < 1 for t in topk):
            raise ValueError(f"{_NAME}: topk must be positive integers, e.g. [1, 5]")
        self.num_classes = int(num_classes)
        self.input_dim = input_dim
        self.classifier: nn.Module | None = classifier
        self.optimizer_factory = optimizer
        self.feature_key = feature_key
        self.topk = tuple(int(t) for t in topk)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.scheduler_interval = "step"
        self._pending: dict[str, Any] | None = None

    # ------------------------------------------------------------------ construction
    def _make_classifier(self, pl_module: LightningModule) -> nn.Module:
        dim = self.input_dim
        if dim is None:
            trunk = getattr(pl_module, "trunk", None)
            dim = getattr(trunk, "num_features", None)
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{_NAME}: cannot tell the feature width; set input_dim")
        return LinearHead(input_dim=dim, output_dim=self.num_classes)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Create the default classifier (before a checkpoint is restored)."""
        if self.classifier is None:
            self.classifier = self._make_classifier(pl_module)

    def _make_optimizer(self, trainer: Trainer, pl_module: LightningModule) -> None:
        steps = getattr(pl_module, "steps_per_epoch", None)
        if not isinstance(steps, int) or steps < 1:
            steps = steps_per_epoch(trainer)
        runtime = {"model": self.classifier, "num_steps_per_epoch": steps,
                   "global_batch_size": global_batch_size(trainer)}
        if self.optimizer_factory is None:
            from sce_builtins.optim.factory import optimizer_factory

            built = optimizer_factory(name="adam", initial_lr=DEFAULT_LR, **runtime)
        else:
            built = self.optimizer_factory(**runtime)
        if isinstance(built, torch.optim.Optimizer):
            built = {"optimizer": built}
        self.optimizer = built["optimizer"]
        sched = built.get("lr_scheduler")
        if isinstance(sched, Mapping):
            self.scheduler = sched["scheduler"]
            self.scheduler_interval = str(sched.get("interval", "epoch"))
        else:
            self.scheduler, self.scheduler_interval = sched, "epoch"

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Move the classifier to the model's device, build its optimizer, restore its state."""
        if self.classifier is None:
            self.classifier = self._make_classifier(pl_module)
        self.classifier.to(pl_module.device).train()
        if self.optimizer is None:
            self._make_optimizer(trainer, pl_module)
        if self._pending is not None:
            self._apply_state(self._pending)
            self._pending = None

    # ------------------------------------------------------------------ features and metrics
    def _features(self, pl_module: LightningModule, outputs: Any, batch: Any) -> Tensor:
        if isinstance(outputs, Mapping) and self.feature_key in outputs:
            return outputs[self.feature_key].detach().float().flatten(1)
        trunk = pl_module.trunk
        was_training = trunk.training
        trunk.eval()
        with torch.no_grad():
            feats = trunk(first_view(batch["input"]))
        trunk.train(was_training)
        return feats.detach().float().flatten(1)

    @staticmethod
    def _labelled(feats: Tensor, batch: Any) -> tuple[Tensor, Tensor]:
        labels = torch.as_tensor(batch["label"], device=feats.device).long()
        keep = labels != -1
        return feats[keep], labels[keep]

    def _log_metrics(self, pl_module: LightningModule, stage: str, logits: Tensor, labels: Tensor,
                     loss: Tensor, **kwargs: Any) -> None:
        n = int(labels.numel())
        hits = topk_correct(logits.detach(), labels, self.topk)  # t > classes counts as all
        pl_module.log(f"online/{stage}_loss", loss.detach(), batch_size=n, **kwargs)
        for t in self.topk:
            pl_module.log(f"online/{stage}_acc_{t}", hits[t] / n, batch_size=n, **kwargs)

    # ------------------------------------------------------------------ training
    def train_step(self, feats: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """One optimizer step of the classifier on labelled features; returns (logits, loss)."""
        assert self.classifier is not None and self.optimizer is not None
        self.classifier.train()
        with torch.enable_grad(), torch.autocast(device_type=feats.device.type, enabled=False):
            logits = self.classifier(feats)
            loss_sum = F.cross_entropy(logits, labels, reduction="sum")
            self.optimizer.zero_grad(set_to_none=False)
            loss_sum.backward()
        total = self._reduce_grads(float(labels.numel()), feats.device)
        if total > 0:
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return logits.detach(), loss_sum.detach() / max(labels.numel(), 1)

    def _reduce_grads(self, count: float, device: torch.device) -> float:
        """Divide the summed-loss gradients by the labelled rows of all ranks (all-reduced)."""
        params = [p for p in self.classifier.parameters() if p.grad is not None]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flat = torch.cat([p.grad.reshape(-1) for p in params] + [torch.tensor([count], device=device)])
            dist.all_reduce(flat)
            count = float(flat[-1])
            offset = 0
            for p in params:
                n = p.grad.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
                offset += n
        if count > 0:
            for p in params:
                p.grad.div_(count)
        return count

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Train the classifier on this batch's labelled features; log online/train_*."""
        feats, labels = self._labelled(self._features(pl_module, outputs, batch), batch)
        logits, loss = self.train_step(feats, labels)
        if labels.numel():
            self._log_metrics(pl_module, "train", logits, labels, loss, on_step=True, on_epoch=True)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Step an epoch-interval scheduler."""
        if self.scheduler is not None and self.scheduler_interval != "step":
            self.scheduler.step()

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Classifier in eval mode for validation."""
        if self.classifier is not None:
            self.classifier.eval()

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Loss and accuracies of the classifier on the labelled validation rows."""
        if self.classifier is None:
            return
        if next(self.classifier.parameters()).device != pl_module.device:
            self.classifier.to(pl_module.device)  # `trainer.validate` without fit
        feats, labels = self._labelled(self._features(pl_module, outputs, batch), batch)
        if not labels.numel():
            return
        self.classifier.eval()
        with torch.no_grad(), torch.autocast(device_type=feats.device.type, enabled=False):
            logits = self.classifier(feats)
            loss = F.cross_entropy(logits, labels)
        self._log_metrics(pl_module, "val", logits, labels, loss, on_step=False, on_epoch=True,
                          sync_dist=True)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Back to train mode (the reference misspelled this hook, docs/reference.md §9.18)."""
        if self.classifier is not None:
            self.classifier.train()

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """Classifier, optimizer and scheduler states (empty before the probe exists)."""
        if self.classifier is None:
            return {}
        state: dict[str, Any] = {"classifier": self.classifier.state_dict()}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore now if the optimizer exists, else when fit starts."""
        if not state_dict:
            return
        if self.classifier is not None and self.optimizer is not None:
            self._apply_state(state_dict)
        else:
            self._pending = dict(state_dict)

    def _apply_state(self, state: Mapping[str, Any]) -> None:
        assert self.classifier is not None
        self.classifier.load_state_dict(state["classifier"])
        if self.optimizer is not None and "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
