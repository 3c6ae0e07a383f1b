"""Video classification head: global pool, dropout, linear classifier."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class VideoClassificationHead(nn.Module):
    """Classifier for video features: global pool -> dropout -> Linear.

    Accepts a feature map ``(B, C, T, H, W)`` (or ``(B, C, H, W)``), pooled globally over every
    axis after the channels, or already pooled features ``(B, C)``; returns logits
    ``(B, num_classes)``. The Linear is initialised N(0, ``init_std``) with zero bias.

    Args:
        in_features: Input channels ``C``.
        num_classes: Number of classes (output width).
        pool: Global pooling of a feature map: ``avg`` or ``max``.
        dropout_rate: Dropout probability before the Linear; 0 adds no Dropout module.
        init_std: Standard deviation of the Linear weight initialisation.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        pool: Literal["avg", "max"] = "avg",
        dropout_rate: float = 0.0,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        owner = "video_classification_head"
        if in_features < 1 or num_classes < 1:
            raise ValueError(f"{owner}: in_features and num_classes must be positive")
        if pool not in ("avg", "max"):
            raise ValueError(f"{owner}: pool must be 'avg' or 'max', got {pool!r}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"{owner}: dropout_rate must be in [0, 1), got {dropout_rate}")
        self.pool = pool
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else None
        self.proj = nn.Linear(in_features, num_classes)
        with torch.no_grad():
            self.proj.weight.normal_(mean=0.0, std=init_std)
            self.proj.bias.zero_()
        self.in_features = in_features
        self.num_features = num_classes
        self.num_layers = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, ...)`` features to ``(B, num_classes)`` logits."""
        if x.ndim > 2:
            x = x.flatten(2)
            x = x.mean(dim=2) if self.pool == "avg" else x.amax(dim=2)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.proj(x)

    def layer_id(self, name: str) -> int:
        """Every parameter belongs to layer 0."""
        return 0
