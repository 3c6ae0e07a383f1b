"""kNN of a trunk on a bank split and a query split: shared by ``knn_monitor`` and ``knn_report``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sce_builtins.evaluation.features import extract_features, split_loader
from sce_builtins.evaluation.knn import knn_accuracy
from sce_builtins.transforms.dtype import to_float


def default_batch_transform(explicit: Any, pl_module: Any) -> Callable[[Any], Any]:
    """``explicit``, else the model's ``val_transform``, else ``div_255_normalize`` defaults.

    The result always ends with uint8 -> float ``[0, 1]`` for inputs left as uint8.
    """
    transform = explicit if explicit is not None else getattr(pl_module, "val_transform", None)
    if transform is None:
        from sce_builtins.transforms.presets import Div255Normalize

        transform = Div255Normalize()
    if isinstance(transform, nn.Module):
        transform = transform.to(pl_module.device)

    def apply(x: Any) -> Any:
        return to_float(transform(x))

    return apply


@dataclass
class KNNResult:
    """Top-1 (and top-5) kNN accuracy per trunk, with the bank and query sizes."""

    top1: dict[str, float]
    top5: dict[str, float]
    bank_videos: int
    query_videos: int


class SplitFeatures:
    """Loaders of a bank and a query split, built once from the datamodule and reused."""

    def __init__(self, bank: Mapping[str, Any], query: Mapping[str, Any], owner: str) -> None:
        self.bank_spec = dict(bank)
        self.query_spec = dict(query)
        self.owner = owner
        self._loaders: tuple[Any, Any] | None = None

    def loaders(self, datamodule: Any) -> tuple[Any, Any]:
        """``(bank loader, query loader)``."""
        if datamodule is None:
            raise ValueError(f"{self.owner}: needs the trainer's datamodule to load the bank and query splits")
        if self._loaders is None:
            self._loaders = (split_loader(datamodule, self.bank_spec, self.owner),
                             split_loader(datamodule, self.query_spec, self.owner))
        return self._loaders

    @torch.no_grad()
    def evaluate(
        self,
        trunks: Mapping[str, nn.Module],
        datamodule: Any,
        device: torch.device,
        batch_transform: Callable[[Any], Any],
        k: int,
        temperature: float,
    ) -> KNNResult:
        """Weighted-kNN accuracy of each trunk: bank features vs query features."""
        bank_loader, query_loader = self.loaders(datamodule)
        bank = extract_features(trunks, bank_loader, device, batch_transform)
        query = extract_features(trunks, query_loader, device, batch_transform)
        top1, top5 = {}, {}
        for name in trunks:
            acc = knn_accuracy(query.features[name], query.labels, bank.features[name], bank.labels,
                               k, temperature, topk=(1, 5))
            top1[name], top5[name] = acc[1], acc[5]
        return KNNResult(top1, top5, int((bank.labels != -1).sum()), int((query.labels != -1).sum()))
