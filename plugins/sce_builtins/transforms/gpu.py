"""GPU batch transforms: thin, config-friendly wrappers of torchaug 0.3.3.

They act on video batches after device transfer: ``(B, C, T, H, W)`` tensors (``video_format``
``CTHW``), one per view. Inside :class:`BatchVideoWrapper` the sub-transforms see
``(B, T, C, H, W)`` and draw one set of random parameters per video (``same_on_frames``).
Random-application rule of every ``batch_random_*`` transform (torchaug's): exactly
``p * B`` samples (floor/ceil with the fractional probability; one sample with probability
``p`` when ``p * B < 1``) chosen by a random permutation. Randomness comes from torch's RNG
on the batch's device. ``batch_random_color_jitter`` is our own batched implementation
(``color_jitter``), re-exported here.

uint8 batches work: ``div_255`` first converts them to float in ``[0, 1]``.
"""

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn
from torchaug import batch_transforms as tab
from torchaug import transforms as ta

from sce_builtins.transforms.color_jitter import BatchRandomColorJitter  # noqa: F401 (entry point)
from sce_core.slots import ComponentList

_DTYPES = {"float32": torch.float32, "float64": torch.float64,
           "float16": torch.float16, "bfloat16": torch.bfloat16}


def _dtype(component: str, name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    if name not in _DTYPES:
        raise ValueError(f"{component}: dtype must be one of {sorted(_DTYPES)} or null, got {name!r}.")
    return _DTYPES[name]


class CallableModule(nn.Module):
    """Adapter making a plain callable usable where an ``nn.Module`` is required.

    Args:
        fn: the callable, applied to the input tensor.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return repr(self.fn)


def as_module(component: str, transform: Any) -> nn.Module:
    """Return ``transform`` as an ``nn.Module`` (wrapping plain callables)."""
    if isinstance(transform, nn.Module):
        return transform
    if callable(transform):
        return CallableModule(transform)
    raise ValueError(
        f"{component}: transforms must be modules, callables or config nodes, "
        f"got {type(transform).__name__}."
    )


def _modules(component: str, transforms: Any) -> list[nn.Module]:
    if isinstance(transforms, nn.ModuleList):
        return list(transforms)
    if isinstance(transforms, (str, bytes)):
        raise ValueError(f"{component}: transforms must be a list of transforms, got a string.")
    if isinstance(transforms, Sequence):
        return [as_module(component, t) for t in transforms]
    return [as_module(component, transforms)]


class ApplyTransformsOnList(nn.Module):
    """Apply transform ``i`` to view ``i`` of a list of batches (one transform per view).

    Args:
        transforms: one transform per view, in view order.
    """

    def __init__(self, transforms: ComponentList("transforms")) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(_modules("apply_transforms_on_list", transforms))

    def forward(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Return the list of transformed views."""
        if isinstance(views, torch.Tensor) or len(views) != len(self.transforms):
            got = "a tensor" if isinstance(views, torch.Tensor) else f"{len(views)} views"
            raise ValueError(
                f"apply_transforms_on_list: got {got} but {len(self.transforms)} transforms; "
                "give one transform per view."
            )
        return [t(v) for t, v in zip(self.transforms, views)]


class BatchVideoWrapper(tab.BatchVideoWrapper):
    """Apply image batch transforms to a video batch, per video (torchaug ``BatchVideoWrapper``).

    ``CTHW`` batches are permuted to ``(B, T, C, H, W)``; with ``same_on_frames`` every frame
    of a video gets the same random parameters (else frames are flattened into the batch).
    The wrapper forces ``inplace=True`` and ``video_format=TCHW`` on its sub-transforms.

    Args:
        transforms: the batch transforms, in order (config nodes or built callables).
        inplace: transform the input batch in place (no initial copy).
        same_on_frames: one random draw per video rather than per frame.
        video_format: ``CTHW`` (``(B, C, T, H, W)``) or ``TCHW``.
    """

    def __init__(
        self,
        transforms: ComponentList("transforms"),
        inplace: bool = False,
        same_on_frames: bool = True,
        video_format: Literal["CTHW", "TCHW"] = "CTHW",
    ) -> None:
        if video_format not in ("CTHW", "TCHW"):
            raise ValueError(f"batch_video_wrapper: video_format must be CTHW or TCHW, got {video_format!r}.")
        super().__init__(
            transforms=_modules("batch_video_wrapper", transforms),
            inplace=inplace,
            same_on_frames=same_on_frames,
            video_format=video_format,
        )


class Div255(nn.Module):
    """Cast to float and divide by 255 (eztorch ``Div255Input``): uint8 ``0..255`` -> ``[0, 1]``.

    A float input of the target dtype is divided in place when ``inplace``; any other input
    gets a new tensor (a dtype change cannot be in place). Accepts a tensor or a list of them.

    Args:
        inplace: divide float inputs in place.
        dtype: output dtype (``float32``, ``float64``, ``float16``, ``bfloat16``); torch's
            default dtype when null.
    """

    def __init__(
        self,
        inplace: bool = True,
        dtype: Literal["float32", "float64", "float16", "bfloat16"] | None = None,
    ) -> None:
        super().__init__()
        self.inplace = inplace
        self.dtype = _dtype("div_255", dtype)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> Any:
        """Return ``x / 255`` as float."""
        if isinstance(x, (list, tuple)):
            return [self(v) for v in x]
        dtype = self.dtype or torch.get_default_dtype()
        if x.dtype == dtype:
            return x.div_(255) if self.inplace else x / 255
        return x.to(dtype).div_(255)

    def extra_repr(self) -> str:
        return f"inplace={self.inplace}, dtype={self.dtype}"


class Normalize(ta.Normalize):
    """``(x - mean) / std`` per channel, channels at dim -3 (torchaug ``Normalize``).

    Use inside ``batch_video_wrapper`` (which presents ``(B, T, C, H, W)``) or on image batches.

    Args:
        mean: per-channel means (or one value).
        std: per-channel standard deviations (or one value).
        cast_dtype: cast (and rescale, torchvision ``convert_image_dtype``) integer input to this
            float dtype first; null requires float input.
        inplace: normalise in place.
        value_check: check that std has no zero (may synchronise the device).
    """

    def __init__(
        self,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        cast_dtype: Literal["float32", "float64", "float16", "bfloat16"] | None = None,
        inplace: bool = False,
        value_check: bool = False,
    ) -> None:
        mean_t = torch.as_tensor(mean, dtype=torch.float32)
        std_t = torch.as_tensor(std, dtype=torch.float32)
        if mean_t.ndim > 1 or std_t.ndim > 1 or bool((std_t == 0).any()):
            raise ValueError("normalize: mean and std must be numbers or lists of numbers, std non-zero.")
        super().__init__(mean=mean_t, std=std_t, cast_dtype=_dtype("normalize", cast_dtype),
                         inplace=inplace, value_check=value_check)


class BatchRandomGrayscale(tab.BatchRandomGrayscale):
    """Convert a fraction of the batch to grayscale ``0.2989 R + 0.587 G + 0.114 B``
    (torchaug ``BatchRandomGrayscale``).

    Args:
        p: fraction of the batch to convert.
        num_output_channels: 1 or 3 (replicated).
        inplace: write into the input batch.
    """

    def __init__(self, p: float = 0.5, num_output_channels: int = 3, inplace: bool = False) -> None:
        try:
            super().__init__(p=p, num_output_channels=num_output_channels, inplace=inplace)
        except ValueError as exc:
            raise ValueError(f"batch_random_grayscale: {exc}") from None


class BatchRandomSolarize(tab.BatchRandomSolarize):
    """Invert values at or above ``threshold`` (``x -> 1 - x`` for float input) on a fraction of
    the batch (torchaug ``BatchRandomSolarize``).

    Args:
        threshold: values ``>= threshold`` are inverted.
        p: fraction of the batch to solarize.
        inplace: write into the input batch.
        value_check: check the threshold against the dtype's range (may synchronise).
    """

    def __init__(
        self, threshold: float, p: float = 0.5, inplace: bool = False, value_check: bool = False
    ) -> None:
        try:
            super().__init__(threshold=threshold, p=p, inplace=inplace, value_check=value_check)
        except ValueError as exc:
            raise ValueError(f"batch_random_solarize: {exc}") from None


class BatchRandomHorizontalFlip(tab.BatchRandomHorizontalFlip):
    """Flip the width axis of a fraction of the batch (torchaug ``BatchRandomHorizontalFlip``).

    Args:
        p: fraction of the batch to flip.
        inplace: write into the input batch.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        try:
            super().__init__(p=p, inplace=inplace)
        except ValueError as exc:
            raise ValueError(f"batch_random_horizontal_flip: {exc}") from None
