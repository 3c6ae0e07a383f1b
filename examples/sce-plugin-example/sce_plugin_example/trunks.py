"""``r2plus1d_tiny``: a small R(2+1)D video trunk (Tran et al., 2018) for CPU experiments."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_NAME = "r2plus1d_tiny"


def mid_channels(in_channels: int, out_channels: int, t: int = 3, d: int = 3) -> int:
    """Channels between the spatial and temporal convolutions of a (2+1)D block.

    Chosen, as in the R(2+1)D paper, so the factorised pair has about as many weights as one
    full ``t x d x d`` 3-D convolution: ``floor(t d^2 N_in N_out / (d^2 N_in + t N_out))``.
    """
    return (t * d * d * in_channels * out_channels) // (d * d * in_channels + t * out_channels)


class Conv2Plus1D(nn.Sequential):
    """A 3-D convolution factorised into a spatial ``1 x 3 x 3`` and a temporal ``3 x 1 x 1`` one.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        spatial_stride: stride of the spatial convolution (height and width).
        temporal_stride: stride of the temporal convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_stride: int = 1,
                 temporal_stride: int = 1) -> None:
        mid = mid_channels(in_channels, out_channels)
        super().__init__(
            nn.Conv3d(in_channels, mid, (1, 3, 3), stride=(1, spatial_stride, spatial_stride),
                      padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_channels, (3, 1, 1), stride=(temporal_stride, 1, 1),
                      padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class R2Plus1DTiny(nn.Module):
    """A small R(2+1)D trunk: stacked (2+1)D convolutions, then global average pooling.

    Maps a float clip batch ``(B, C, T, H, W)`` to features ``(B, num_features)`` with
    ``num_features = widths[-1]``. Every stage is one :class:`Conv2Plus1D` (spatial 1x3x3
    conv, BatchNorm, ReLU, temporal 3x1x1 conv, BatchNorm, ReLU).

    Args:
        in_channels: channels of the input clips (3 for RGB).
        widths: output channels of each stage; the last one is ``num_features``.
        spatial_strides: spatial stride of each stage (one per width).
        temporal_strides: temporal stride of each stage (one per width).
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64),
        spatial_strides: Sequence[int] = (2, 2, 2),
        temporal_strides: Sequence[int] = (1, 2, 2),
    ) -> None:
        super().__init__()
        if not widths or not len(widths) == len(spatial_strides) == len(temporal_strides):
            raise ValueError(
                f"{_NAME}: widths, spatial_strides and temporal_strides need one entry per stage "
                f"(got {len(widths)}, {len(spatial_strides)}, {len(temporal_strides)})"
            )
        if in_channels < 1 or any(w < 1 for w in widths):
            raise ValueError(f"{_NAME}: in_channels and widths must be positive integers")
        stages = []
        channels = in_channels
        for width, s, t in zip(widths, spatial_strides, temporal_strides):
            stages.append(Conv2Plus1D(channels, int(width), int(s), int(t)))
            channels = int(width)
        self.stages = nn.Sequential(*stages)
        self.in_channels = in_channels
        self.num_features = channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map ``(B, num_features, T', H', W')``."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{_NAME}: expected a clip batch (B, {self.in_channels}, T, H, W), got "
                f"{tuple(x.shape)}; use a video datamodule or set in_channels"
            )
        return self.stages(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features ``(B, num_features)``."""
        return self.forward_features(x).mean(dim=(2, 3, 4))
