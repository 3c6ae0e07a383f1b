"""torchvision's 2-D ResNets as trunks (thin wrappers, no downloads)."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from sce_builtins.models.trunks._torchvision import build_torchvision_model, resnet_layer_id
from sce_builtins.models.trunks.base import Trunk

ResNetArch = Literal[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]


class TorchvisionResNet(Trunk):
    """Any torchvision 2-D ResNet as a trunk: images ``(B, C, H, W)`` -> ``(B, D)``.

    Keeps torchvision's ``conv1``, ``bn1``, ``layer1``-``layer4`` under their own names (a
    torchvision state dict without ``fc.*`` loads through ``pretrained``) and drops the
    classifier; ``forward`` is the global average of the ``layer4`` map. A clip batch
    ``(B, C, T, H, W)`` is processed frame by frame: ``forward_features`` returns
    ``(B, D, T, H', W')`` and ``forward`` averages over time and space. ``small_input``
    (CIFAR-style) replaces ``conv1`` by a 3x3 stride-1 conv and removes the max pool.
    Layer ids: conv1/bn1 0, layer k -> k. D is 512 for resnet18/34, 2048 otherwise.

    Args:
        arch: torchvision architecture name.
        small_input: 3x3 stride-1 first conv and no max pool (small images).
        zero_init_residual: Zero-initialise the last BN of each residual branch.
        weights: torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``) used only if already
            in the torch hub cache (nothing is downloaded), or null for random init.
        pretrained: Path of a state dict of this trunk (``sce export``) loaded strictly.
    """

    def __init__(
        self,
        arch: ResNetArch = "resnet18",
        small_input: bool = False,
        zero_init_residual: bool = False,
        weights: str | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.component_name = getattr(type(self), "fixed_arch", None) or "tv_resnet"
        if arch not in get_args(ResNetArch):
            raise ValueError(
                f"{self.component_name}: unknown arch {arch!r}; use one of "
                f"{', '.join(get_args(ResNetArch))}"
            )
        kwargs = {"zero_init_residual": True} if zero_init_residual else {}
        net = build_torchvision_model(arch, weights, self.component_name, **kwargs)
        if small_input:
            conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(conv1.weight, mode="fan_out", nonlinearity="relu")
            net.conv1 = conv1
            net.maxpool = nn.Identity()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4,
        )
        self.arch = arch
        self.num_features = int(net.fc.in_features)
        self.num_layers = 5
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, H', W')`` for images, ``(B, D, T, H', W')`` for clips ``(B, C, T, H, W)``."""
        if x.ndim == 4:
            return self._images(x)
        if x.ndim == 5:
            b, c, t, h, w = x.shape
            maps = self._images(x.transpose(1, 2).reshape(b * t, c, h, w))
            return maps.reshape(b, t, *maps.shape[1:]).transpose(1, 2)
        raise ValueError(
            f"{self.component_name}: expects images (B, C, H, W) or clips (B, C, T, H, W), got "
            f"shape {tuple(x.shape)}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, num_features)`` (averaged over every axis after the channels)."""
        return self.forward_features(x).flatten(2).mean(dim=2)

    def layer_id(self, name: str) -> int:
        """conv1/bn1 0, ``layer<k>`` -> k."""
        return resnet_layer_id(name)


class _FixedResNet(TorchvisionResNet):
    """A TorchvisionResNet whose architecture is fixed by the registered name."""

    fixed_arch: str = ""

    def __init__(
        self,
        small_input: bool = False,
        zero_init_residual: bool = False,
        weights: str | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__(self.fixed_arch, small_input, zero_init_residual, weights, pretrained)


def _fixed_doc(arch: str, width: int) -> str:
    """The docstring of the trunk that fixes the architecture to ``arch``."""
    return f"""torchvision's ``{arch}`` as a trunk, ``(B, {width})`` (images, or clips frame by frame).

    See ``tv_resnet`` for the behaviour; layer ids: conv1/bn1 0, layer k -> k.

    Args:
        small_input: 3x3 stride-1 first conv and no max pool (small images).
        zero_init_residual: Zero-initialise the last BN of each residual branch.
        weights: torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``) used only if already
            in the torch hub cache (nothing is downloaded), or null for random init.
        pretrained: Path of a state dict of this trunk (``sce export``) loaded strictly.
    """


class ResNet18(_FixedResNet):
    __doc__ = _fixed_doc("resnet18", 512)
    fixed_arch = "resnet18"


class ResNet34(_FixedResNet):
    __doc__ = _fixed_doc("resnet34", 512)
    fixed_arch = "resnet34"


class ResNet50(_FixedResNet):
    __doc__ = _fixed_doc("resnet50", 2048)
    fixed_arch = "resnet50"
