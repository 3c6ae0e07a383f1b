"""torchvision's video classification networks as trunks (thin wrappers, no downloads).

Named ``weights`` are read from the torch hub cache by ``_torchvision.load_cached_weights``:
SHA-256 prefix of the file name checked on every load, then ``torch.load(weights_only=True)``;
torch hub's own loader (which unpickles arbitrary code) is never used.
"""

from __future__ import annotations

import torch
from torch import nn

from sce_builtins.models.trunks._torchvision import build_torchvision_model, resnet_layer_id
from sce_builtins.models.trunks.base import Trunk


def _check_clip(x: torch.Tensor, owner: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{owner}: expects a clip batch (B, C, T, H, W), got shape {tuple(x.shape)}")


class TorchvisionVideoResNet(Trunk):
    """Base wrapper of torchvision's VideoResNet family (``r3d_18``, ``mc3_18``, ``r2plus1d_18``).

    Keeps torchvision's ``stem`` and ``layer1``-``layer4`` under their own names (so a
    torchvision state dict without ``fc.*`` loads through ``pretrained``) and drops the
    classifier: ``forward`` returns the mean of the ``layer4`` map over (T, H, W), ``(B, 512)``.
    Layer ids: stem 0, layer k -> k.

    Args:
        weights: torchvision weights name (``DEFAULT``, ``KINETICS400_V1``) used only if already
            in the torch hub cache (nothing is downloaded), or null for random init.
        pretrained: Path of a state dict of this trunk (``sce export``) loaded strictly.
    """

    arch: str = ""
    component_name = "torchvision video trunk"

    def __init__(self, weights: str | None = None, pretrained: str | None = None) -> None:
        super().__init__()
        net = build_torchvision_model(self.arch, weights, self.component_name)
        self.stem = net.stem
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4,
        )
        self.num_features = int(net.fc.in_features)
        self.num_layers = 5
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``layer4`` map ``(B, 512, T', H', W')``."""
        _check_clip(x, self.component_name)
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 512)`` of a clip batch ``(B, C, T, H, W)``."""
        return self.forward_features(x).mean(dim=(2, 3, 4))

    def layer_id(self, name: str) -> int:
        """Stem 0, ``layer<k>`` -> k."""
        return resnet_layer_id(name)


def _variant_doc(*paragraphs: str) -> str:
    """The docstring of one VideoResNet trunk: its own paragraphs and the ``Args:`` they share."""
    return "\n\n    ".join(paragraphs) + """

    Args:
        weights: torchvision weights name (``DEFAULT``, ``KINETICS400_V1``) used only if already
            in the torch hub cache (nothing is downloaded), or null for random init.
        pretrained: Path of a state dict of this trunk (``sce export``) loaded strictly.
    """


class TvR3D18(TorchvisionVideoResNet):
    __doc__ = _variant_doc(
        "torchvision's ``r3d_18`` (full 3x3x3 ResNet-18, 33.2M parameters) as a trunk, ``(B, 512)``.",
        'Not the SCE recipe\'s "R3D-18" (that is ``resnet3d_basic``).',
    )
    arch = "r3d_18"
    component_name = "tv_r3d_18"


class TvMC318(TorchvisionVideoResNet):
    __doc__ = _variant_doc(
        "torchvision's ``mc3_18`` (mixed 3-D/2-D convolutions ResNet-18) as a trunk, ``(B, 512)``."
    )
    arch = "mc3_18"
    component_name = "tv_mc3_18"


class TvR2Plus1D18(TorchvisionVideoResNet):
    __doc__ = _variant_doc(
        "torchvision's ``r2plus1d_18`` ((2+1)-D convolutions ResNet-18) as a trunk, ``(B, 512)``."
    )
    arch = "r2plus1d_18"
    component_name = "tv_r2plus1d_18"


class TvS3D(Trunk):
    """torchvision's ``s3d`` (separable 3-D Inception) as a trunk, ``(B, 1024)``.

    Keeps torchvision's ``features`` (16 modules) and drops the fixed (2, 7, 7) average pool
    and the classifier: ``forward`` is the mean of the feature map over (T, H, W). The last
    max pool (kernel and stride 2) rounds its output size up (``ceil_mode``) so short or small
    clips (e.g. 4x32x32) work; for even sizes there (every canonical input: 8 or 16 frames,
    224 pixels) the result is identical to torchvision's.
    Layer ids: ``features.<i>`` -> i.

    Args:
        weights: torchvision weights name (``DEFAULT``, ``KINETICS400_V1``) used only if already
            in the torch hub cache (nothing is downloaded), or null for random init.
        pretrained: Path of a state dict of this trunk (``sce export``) loaded strictly.
    """

    component_name = "tv_s3d"

    def __init__(self, weights: str | None = None, pretrained: str | None = None) -> None:
        super().__init__()
        net = build_torchvision_model("s3d", weights, self.component_name)
        self.features = net.features
        for module in self.features:
            if isinstance(module, nn.MaxPool3d) and module.kernel_size == (2, 2, 2):
                module.ceil_mode = True
        self.num_features = int(net.classifier[1].in_channels)
        self.num_layers = len(self.features)
        if pretrained is not None:
            self.load_pretrained(pretrained)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map ``(B, 1024, T', H', W')``."""
        _check_clip(x, self.component_name)
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 1024)`` of a clip batch ``(B, C, T, H, W)``."""
        return self.forward_features(x).mean(dim=(2, 3, 4))

    def layer_id(self, name: str) -> int:
        """``features.<i>.*`` -> i."""
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "features" and parts[1].isdigit():
            return int(parts[1])
        return 0
