"""A small plain 3-D CNN: the CPU demo's trunk (a few hundred thousand parameters)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sce_builtins.models.trunks.base import Trunk

DEFAULT_WIDTHS = (16, 32, 64, 128)
DEFAULT_STRIDES = ((1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2))


class Small3DCNN(Trunk):
    """Stacked Conv3d 3x3x3 + BatchNorm + ReLU blocks, then global average pooling.

    With the defaults (widths 16/32/64/128, strides (1,2,2), (1,2,2), (2,2,2), (2,2,2)) and RGB
    input it has 292,080 parameters and returns 128 features; on 8x24x24 clips a CPU step of
    SCE takes a fraction of a second, which is what the demo needs.

    Args:
        in_channels: input channels (3 for RGB clips).
        widths: output channels of each block.
        strides: (t, h, w) stride of each block; one per width.
        pretrained: path of a state dict written by ``sce export`` to load.
    """

    component_name = "small_3d_cnn"

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        strides: Sequence[Sequence[int]] = DEFAULT_STRIDES,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if len(widths) != len(strides) or not widths:
            raise ValueError(
                f"small_3d_cnn: widths ({len(widths)}) and strides ({len(strides)}) need one "
                "entry per block"
            )
        blocks = []
        channels = in_channels
        for width, stride in zip(widths, strides):
            blocks.append(nn.Sequential(
                nn.Conv3d(channels, width, 3, stride=tuple(stride), padding=1, bias=False),
                nn.BatchNorm3d(width),
                nn.ReLU(inplace=True),
            ))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.num_features = channels
        self.num_layers = len(blocks)
        if pretrained:
            self.load_pretrained(pretrained)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's feature map ``(B, C, T', H', W')``."""
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features ``(B, num_features)``."""
        return self.forward_features(x).mean(dim=(2, 3, 4))

    def layer_id(self, name: str) -> int:
        """Block index of a parameter (``blocks.<i>....``)."""
        parts = name.split(".")
        return int(parts[1]) if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit() else 0
