"""Video ResNet head (docs/reference.md §3.3): pool, dropout, projection, activation, global average."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from sce_builtins.models.heads._layers import make_activation

PoolName = Literal["adaptive_avg_pool_3d", "adaptive_max_pool_3d", "avg_pool_3d", "max_pool_3d"]


class VideoResNetHead(nn.Module):
    """Video ResNet head mapping a feature map ``(B, C, T, H, W)`` to ``(B, D)``.

    Forward: optional pool -> optional dropout -> optional projection (Linear over channels,
    only when ``num_classes > 0``) -> optional activation -> if ``output_with_global_average``
    the mean over (T, H, W), flattened to ``(B, D)``; otherwise the 5-D map is returned.
    ``D = num_classes`` when ``num_classes > 0`` else ``in_features`` (``num_features``).
    The projection is initialised N(0, 0.01) with zero bias. Parameter names are ``proj.*``.

    In the SCE recipe (``pool: null, num_classes: 0, dropout_rate: 0``) the head only takes the
    global average and has no parameters. ``pool_kernel_size``, ``pool_stride`` and
    ``pool_padding`` are used only by ``avg_pool_3d``/``max_pool_3d``, ``output_size`` only by
    the adaptive pools (the reference passed ``output_size`` to the adaptive average pool only;
    here the adaptive max pool uses it too). With ``pool: null`` they are accepted and ignored,
    as the seed's ``pool_kernel_size: [8, 7, 7]`` is.

    Args:
        in_features: Channels of the input feature map.
        num_classes: Width of the channel projection; 0 (or less) for no projection.
        pool: ``adaptive_avg_pool_3d``, ``adaptive_max_pool_3d``, ``avg_pool_3d``,
            ``max_pool_3d`` or null (no pooling).
        output_size: (T, H, W) output size of an adaptive pool.
        pool_kernel_size: (T, H, W) kernel of a non-adaptive pool.
        pool_stride: (T, H, W) stride of a non-adaptive pool.
        pool_padding: (T, H, W) padding of a non-adaptive pool.
        dropout_rate: Dropout probability; 0 adds no Dropout module.
        activation: ``relu``, ``gelu``, ``softmax`` (over channels) or null.
        output_with_global_average: Average over (T, H, W) and return ``(B, D)``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int = 400,
        pool: PoolName | None = "avg_pool_3d",
        output_size: Sequence[int] = (1, 1, 1),
        pool_kernel_size: Sequence[int] = (1, 7, 7),
        pool_stride: Sequence[int] = (1, 1, 1),
        pool_padding: Sequence[int] = (0, 0, 0),
        dropout_rate: float = 0.5,
        activation: Literal["relu", "gelu", "softmax"] | None = None,
        output_with_global_average: bool = True,
    ) -> None:
        super().__init__()
        owner = "video_resnet_head"
        if in_features < 1:
            raise ValueError(f"{owner}: in_features must be positive, got {in_features}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"{owner}: dropout_rate must be in [0, 1), got {dropout_rate}")
        for name, value in (
            ("output_size", output_size),
            ("pool_kernel_size", pool_kernel_size),
            ("pool_stride", pool_stride),
            ("pool_padding", pool_padding),
        ):
            if len(value) != 3:
                raise ValueError(f"{owner}: {name} needs 3 values (T, H, W), got {list(value)}")
        self.pool = _make_pool(pool, output_size, pool_kernel_size, pool_stride, pool_padding)
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else None
        self.proj = nn.Linear(in_features, num_classes) if num_classes > 0 else None
        if self.proj is not None:
            with torch.no_grad():
                self.proj.weight.normal_(mean=0.0, std=0.01)
                self.proj.bias.zero_()
        self.activation = None if activation is None else make_activation(activation, owner)
        self.output_with_global_average = output_with_global_average
        self.in_features = in_features
        self.num_features = num_classes if num_classes > 0 else in_features
        self.num_layers = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, T, H, W)`` to ``(B, D)`` (or a 5-D map without global average)."""
        if x.ndim != 5:
            raise ValueError(
                f"video_resnet_head: expects a (B, C, T, H, W) feature map, got shape {tuple(x.shape)}"
            )
        if self.pool is not None:
            x = self.pool(x)
        if self.dropout is not None:
            x = self.dropout(x)
        if self.proj is not None:
            x = self.proj(x.movedim(1, -1)).movedim(-1, 1)
        if self.activation is not None:
            x = self.activation(x)
        if self.output_with_global_average:
            x = x.mean(dim=(2, 3, 4))
        return x

    def layer_id(self, name: str) -> int:
        """Every parameter belongs to layer 0."""
        return 0


def _make_pool(
    pool: str | None,
    output_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
) -> nn.Module | None:
    """Build the optional pooling module named by ``pool``."""
    if pool is None:
        return None
    if pool == "adaptive_avg_pool_3d":
        return nn.AdaptiveAvgPool3d(tuple(output_size))
    if pool == "adaptive_max_pool_3d":
        return nn.AdaptiveMaxPool3d(tuple(output_size))
    if pool == "avg_pool_3d":
        return nn.AvgPool3d(tuple(kernel), stride=tuple(stride), padding=tuple(padding))
    if pool == "max_pool_3d":
        return nn.MaxPool3d(tuple(kernel), stride=tuple(stride), padding=tuple(padding))
    raise ValueError(
        f"video_resnet_head: unknown pool {pool!r}; use adaptive_avg_pool_3d, "
        "adaptive_max_pool_3d, avg_pool_3d, max_pool_3d or null"
    )
