"""Ready-made validation transforms (docs/reference.md §5.10, §5.11, §6.5).

* GPU: :class:`Div255Normalize`, the reference's ``Div255Input`` then ``Normalize`` on a video
  batch, computed directly on the ``(B, C, T, H, W)`` layout (no permute/contiguous copies).
* CPU: :func:`scale_center_crop`, ``ShortSideScale(256)`` then ``CenterCrop(256)``.
"""

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from .cpu_video import CenterCrop, ShortSideScale
from .gpu import Div255
from .wrappers import Compose


class Div255Normalize(nn.Module):
    """Validation GPU transform: ``x / 255`` as float, then ``(x - mean) / std`` per channel.

    Gives the same values as ``batch_video_wrapper([div_255, normalize])``. Accepts one batch
    or a list of view batches.

    Args:
        mean: per-channel means.
        std: per-channel standard deviations.
        video_format: ``CTHW`` (channels at dim 1 of the batch) or ``TCHW`` (dim 2).
        inplace: reuse float input storage.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.45, 0.45, 0.45),
        std: Sequence[float] = (0.225, 0.225, 0.225),
        video_format: Literal["CTHW", "TCHW"] = "CTHW",
        inplace: bool = True,
    ) -> None:
        super().__init__()
        if video_format not in ("CTHW", "TCHW"):
            raise ValueError(f"div_255_normalize: video_format must be CTHW or TCHW, got {video_format!r}.")
        if len(mean) != len(std) or any(s == 0 for s in std):
            raise ValueError("div_255_normalize: mean and std need the same length and non-zero std.")
        self.video_format = video_format
        self.div = Div255(inplace=inplace)
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]), persistent=False)
        self.register_buffer("std", torch.tensor([float(s) for s in std]), persistent=False)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> Any:
        """Return the normalised float batch (or list of batches)."""
        if isinstance(x, (list, tuple)):
            return [self(v) for v in x]
        x = self.div(x)
        dim = 1 if self.video_format == "CTHW" else 2
        shape = [1] * x.ndim
        shape[dim] = -1
        mean = self.mean.to(x.device, x.dtype).view(shape)
        std = self.std.to(x.device, x.dtype).view(shape)
        return x.sub_(mean).div_(std)


def scale_center_crop(
    size: int = 256,
    crop_size: int = 256,
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
    fast_uint8: bool = False,
) -> Compose:
    """Validation CPU clip transform: short side to ``size``, then a central ``crop_size`` crop.

    Args:
        size: short side after scaling.
        crop_size: side of the square central crop.
        interpolation: resize interpolation.
        fast_uint8: resize uint8 clips with torch's uint8 kernel.
    """
    return Compose([ShortSideScale(size, interpolation, fast_uint8), CenterCrop(crop_size)])
