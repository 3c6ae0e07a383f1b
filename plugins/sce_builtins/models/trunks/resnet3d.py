"""The recipe's "R3D-18": a slow-only 3-D ResNet with basic blocks (docs/reference.md §3.2)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sce_builtins.models.trunks.base import Trunk, has_parameters
from sce_core.slots import Component

STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}
_WIDTHS = (64, 128, 256, 512)
_SPATIAL_STRIDES = (1, 2, 2, 2)
_BN_EPS = 1e-5
_BN_MOMENTUM = 0.1


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class _Stem(nn.Module):
    """Conv (1,7,7)/(1,2,2) -> BN -> ReLU -> MaxPool (1,3,3)/(1,2,2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
        )
        self.norm = _bn(out_channels)
        self.activation = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))


class _BasicBranch(nn.Module):
    """conv_a -> BN -> ReLU -> conv_b -> BN (the second BN is zero-initialised)."""

    def __init__(self, dim_in: int, dim_out: int, stride: int, temporal_kernel: int) -> None:
        super().__init__()
        kt = temporal_kernel
        self.conv_a = nn.Conv3d(
            dim_in, dim_out, (kt, 3, 3), stride=(1, stride, stride), padding=(kt // 2, 1, 1),
            bias=False,
        )
        self.norm_a = _bn(dim_out)
        self.act_a = nn.ReLU(inplace=True)
        self.conv_b = nn.Conv3d(dim_out, dim_out, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.norm_b = _bn(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_b(self.conv_b(self.act_a(self.norm_a(self.conv_a(x)))))


class _ResBlock(nn.Module):
    """Residual basic block: branch2(x) + shortcut(x), then ReLU."""

    def __init__(self, dim_in: int, dim_out: int, stride: int, temporal_kernel: int) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.branch1_conv = nn.Conv3d(
                dim_in, dim_out, 1, stride=(1, stride, stride), bias=False
            )
            self.branch1_norm = _bn(dim_out)
        else:
            self.branch1_conv = None
            self.branch1_norm = None
        self.branch2 = _BasicBranch(dim_in, dim_out, stride, temporal_kernel)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))


class _ResStage(nn.Module):
    """A sequence of residual blocks; the first one carries the stage stride."""

    def __init__(
        self, depth: int, dim_in: int, dim_out: int, stride: int, temporal_kernel: int
    ) -> None:
        super().__init__()
        self.res_blocks = nn.ModuleList(
            _ResBlock(dim_in if i == 0 else dim_out, dim_out, stride if i == 0 else 1,
                      temporal_kernel)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class ResNet3DBasic(Trunk):
    """Slow-only 3-D ResNet with basic blocks (the SCE recipe's "R3D-18"), ``(B, 512)`` out.

    Stem: Conv3d 3->64 (1,7,7) stride (1,2,2), BN, ReLU, MaxPool (1,3,3) stride (1,2,2).
    Four stages of basic blocks, widths 64/128/256/512, spatial stride 2 in stages 2-4 (on the
    first block), temporal stride 1 everywhere; ``conv_a`` is (1,3,3) in stages 1-2 and
    (3,3,3) in stages 3-4, ``conv_b`` (1,3,3); 1x1x1 conv + BN shortcut where the shape
    changes. BatchNorm3d eps 1e-5, momentum 0.1. Init: Kaiming-normal (fan_out, ReLU) convs,
    BN weight 1 / bias 0 except the block-final BN of each residual branch (weight 0).
    Depth 18: 20,023,872 parameters. It is not torchvision's r3d_18 (``tv_r3d_18``).

    ``forward_features`` returns the stage-4 map ``(B, 512, T, H/32, W/32)``; ``forward``
    returns ``head(map)`` when a ``head`` is given, else the mean over (T, H, W) ``(B, 512)``
    (the reference returned the 5-D map with ``head: null``; in the seed's nested node the
    wrapping ``video_head_model`` passes the map to its own head, so results agree).
    Parameter names follow the reference (``blocks.0.conv.weight``,
    ``blocks.<s>.res_blocks.<b>.branch2.conv_a.weight``, ...) so its trunk weights load.
    Layer ids: stem 0, stage s -> s (1..4), head 5.

    Args:
        model_depth: Network depth: 10, 18 or 34 (stage depths 1111, 2222, 3463).
        head: Optional heads node applied to the stage-4 feature map (e.g.
            ``video_resnet_head``); null returns the global average ``(B, 512)``.
        input_channel: Channels of the input clip.
        pretrained: Path of a state dict of this trunk (``sce export``) loaded strictly.
    """

    component_name = "resnet3d_basic"

    def __init__(
        self,
        model_depth: Literal[10, 18, 34] = 18,
        head: Component("heads") = None,
        input_channel: int = 3,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if model_depth not in STAGE_DEPTHS:
            raise ValueError(
                f"resnet3d_basic: model_depth {model_depth} is not supported; use one of "
                f"{', '.join(map(str, STAGE_DEPTHS))}"
            )
        if input_channel < 1:
            raise ValueError(f"resnet3d_basic: input_channel must be positive, got {input_channel}")
        blocks: list[nn.Module] = [_Stem(input_channel, _WIDTHS[0])]
        dim_in = _WIDTHS[0]
        for idx, (depth, width) in enumerate(zip(STAGE_DEPTHS[model_depth], _WIDTHS)):
            temporal_kernel = 1 if idx < 2 else 3
            blocks.append(_ResStage(depth, dim_in, width, _SPATIAL_STRIDES[idx], temporal_kernel))
            dim_in = width
        self.blocks = nn.ModuleList(blocks)
        self.model_depth = model_depth
        self._init_weights()
        self.head = head
        self.num_features = int(getattr(head, "num_features", _WIDTHS[-1]))
        self.num_layers = len(self.blocks) + (1 if has_parameters(head) else 0)
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def _init_weights(self) -> None:
        for module in self.blocks.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.blocks.modules():
            if isinstance(module, _BasicBranch):
                nn.init.zeros_(module.norm_b.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stage-4 feature map ``(B, 512, T, H', W')`` of a clip batch ``(B, C, T, H, W)``."""
        if x.ndim != 5:
            raise ValueError(
                f"resnet3d_basic: expects a clip batch (B, C, T, H, W), got shape {tuple(x.shape)}"
            )
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, num_features)`` of a clip batch ``(B, C, T, H, W)``."""
        features = self.forward_features(x)
        if self.head is not None:
            return self.head(features)
        return features.mean(dim=(2, 3, 4))

    def layer_id(self, name: str) -> int:
        """Stem 0, stage s -> s, head (or anything else) -> ``len(blocks)``."""
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "blocks" and parts[1].isdigit():
            return int(parts[1])
        return len(self.blocks)
