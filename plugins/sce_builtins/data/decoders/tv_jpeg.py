"""torchvision's JPEG decoder: one frame on the CPU, or a batch on a device (nvJPEG on CUDA).

torchvision 0.29 marks its image decoders deprecated in favour of torchcodec's (a warning on
every call); the warning is silenced here, the only place sce-core calls them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

_DEPRECATION = "The image decoding and encoding capabilities of TorchVision are deprecated"


def _decoder():
    warnings.filterwarnings("ignore", message=_DEPRECATION, category=DeprecationWarning)
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg, ImageReadMode.RGB


def decode_jpeg_rgb(data: torch.Tensor) -> torch.Tensor:
    """One JPEG (1-D uint8 CPU tensor) as ``(3, H, W)`` RGB uint8; ``ValueError`` when corrupt."""
    decode, rgb = _decoder()
    try:
        return decode(data, mode=rgb)
    except RuntimeError as exc:
        raise ValueError(f"torchvision could not decode the JPEG data ({exc})") from exc


def decode_jpeg_batch(chunks: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEGs (1-D uint8 CPU tensors) as ``(3, H, W)`` RGB uint8 tensors on ``device``, in one call."""
    decode, rgb = _decoder()
    if not chunks:
        return []
    try:
        if device.type == "cuda":
            return list(decode(list(chunks), mode=rgb, device=device))
        return [f.to(device) for f in decode(list(chunks), mode=rgb)]
    except RuntimeError as exc:
        raise ValueError(f"decode_on: gpu: a JPEG of the batch could not be decoded ({exc})") from exc
