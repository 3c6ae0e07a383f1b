"""CPU clip transforms on channels-last clips ``(T, H, W, C)`` (uint8, or float 0..255).

Every transform takes and returns a ``(T, H, W, C)`` clip and keeps its dtype: uint8 clips stay
uint8 (resizing rounds half-to-even and clamps, see :mod:`._resize`), float clips (the seed's
``decode_float: true``) stay float and give exactly the reference's float results.

Randomness: random transforms draw from torch's global RNG (which DataLoader seeds per worker),
in the same order and with the same calls as the reference, or from the ``generator`` passed to
``__call__`` / ``get_params`` when one is given.
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch

from ._resize import check_clip, check_interpolation, resize_clip


class _Repr:
    """``Name(attr=value, ...)`` representation from the instance attributes."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return torch.empty(1).uniform_(lo, hi, generator=generator).item()


def _randint(low: int, high_inclusive: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(low, high_inclusive + 1, (1,), generator=generator).item())


def _pair(component: str, name: str, value: Sequence[float]) -> tuple[float, float]:
    if len(value) != 2 or not 0 < value[0] <= value[1]:
        raise ValueError(
            f"{component}: {name} must be two positive numbers [low, high] with low <= high, "
            f"got {list(value)}."
        )
    return float(value[0]), float(value[1])


def _positive(component: str, name: str, value: int) -> int:
    if int(value) != value or value <= 0:
        raise ValueError(f"{component}: {name} must be a positive integer, got {value!r}.")
    return int(value)


def random_resized_crop_params(
    height: int,
    width: int,
    scale: tuple[float, float],
    aspect_ratio: tuple[float, float],
    num_tries: int = 10,
    log_uniform_ratio: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Draw a crop box ``(top, left, h, w)`` exactly as the reference (docs/reference.md §5.10).

    Each try draws ``area = H*W*U(scale)`` then ``aspect = exp(U(log ratio))`` (or ``U(ratio)``
    when ``log_uniform_ratio`` is False), ``w = round(sqrt(area*aspect))``,
    ``h = round(sqrt(area/aspect))`` (Python banker's round) and accepts when
    ``0 < w <= W`` and ``0 < h <= H``, then draws ``top ~ randint[0, H-h]`` and
    ``left ~ randint[0, W-w]``. After ``num_tries`` failures: the largest centred box whose
    aspect ratio is clamped to the ratio range (``top = (H-h)//2``, ``left = (W-w)//2``).

    Args:
        height: clip height H.
        width: clip width W.
        scale: area fraction range.
        aspect_ratio: width/height range.
        num_tries: number of tries before the fallback.
        log_uniform_ratio: draw the aspect ratio log-uniformly.
        generator: torch generator; the global RNG when None.
    """
    area = height * width
    log_ratio = (math.log(aspect_ratio[0]), math.log(aspect_ratio[1]))
    for _ in range(num_tries):
        target_area = area * _uniform(scale[0], scale[1], generator)
        if log_uniform_ratio:
            ratio = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
        else:
            ratio = _uniform(aspect_ratio[0], aspect_ratio[1], generator)
        w = int(round(math.sqrt(target_area * ratio)))
        h = int(round(math.sqrt(target_area / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = _randint(0, height - h, generator)
            left = _randint(0, width - w, generator)
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(aspect_ratio):
        w = width
        h = int(round(w / min(aspect_ratio)))
    elif in_ratio > max(aspect_ratio):
        h = height
        w = int(round(h * max(aspect_ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class RandomResizedCrop(_Repr):
    """Video random resized crop: one box for all frames, resized to the target (docs/reference.md §5.10).

    Geometry is drawn by :func:`random_resized_crop_params` (area scale, log-uniform aspect
    ratio, ``num_tries`` tries, centred fallback). The box is cut from every frame and resized
    with ``F.interpolate`` (C as batch, T as channels, ``align_corners=False``, no antialias).
    Float clips give the reference's float result exactly; uint8 clips give it rounded
    half-to-even and clamped, as uint8 (or torch's native uint8 kernel with ``fast_uint8``).

    ``shift=True`` draws a second box and moves linearly from the first box (first frame) to the
    second (last frame), each frame resized on its own (the reference's version is broken; this
    is the intended behaviour).

    Args:
        target_height: output height.
        target_width: output width.
        scale: range of the crop area as a fraction of the frame area.
        aspect_ratio: range of the crop's width/height ratio.
        shift: move the box linearly over time between two draws.
        log_uniform_ratio: draw the aspect ratio log-uniformly (else uniformly).
        interpolation: ``bilinear`` (reference), ``nearest`` or ``bicubic``.
        num_tries: tries before the centred fallback.
        fast_uint8: resize uint8 clips with torch's uint8 kernel (faster, within 1 grey level).
    """

    def __init__(
        self,
        target_height: int,
        target_width: int,
        scale: Sequence[float] = (0.08, 1.0),
        aspect_ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        shift: bool = False,
        log_uniform_ratio: bool = True,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        num_tries: int = 10,
        fast_uint8: bool = False,
    ) -> None:
        name = "random_resized_crop"
        self.target_height = _positive(name, "target_height", target_height)
        self.target_width = _positive(name, "target_width", target_width)
        self.scale = _pair(name, "scale", scale)
        self.aspect_ratio = _pair(name, "aspect_ratio", aspect_ratio)
        self.num_tries = _positive(name, "num_tries", num_tries)
        check_interpolation(name, interpolation)
        self.shift = bool(shift)
        self.log_uniform_ratio = bool(log_uniform_ratio)
        self.interpolation = interpolation
        self.fast_uint8 = bool(fast_uint8)

    def get_params(
        self, height: int, width: int, generator: torch.Generator | None = None
    ) -> tuple[int, int, int, int]:
        """Draw one ``(top, left, h, w)`` box for a ``height`` x ``width`` frame."""
        return random_resized_crop_params(
            height, width, self.scale, self.aspect_ratio, self.num_tries,
            self.log_uniform_ratio, generator,
        )

    def __call__(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Crop and resize a ``(T, H, W, C)`` clip."""
        check_clip("random_resized_crop", clip)
        t, height, width, _ = clip.shape
        size = (self.target_height, self.target_width)
        top, left, h, w = self.get_params(height, width, generator)
        if not self.shift:
            crop = clip[:, top : top + h, left : left + w]
            return resize_clip(crop, size, self.interpolation, self.fast_uint8)
        if not isinstance(clip, torch.Tensor):
            raise ValueError("random_resized_crop: shift=True cannot run with decode_on: gpu.")
        top2, left2, h2, w2 = self.get_params(height, width, generator)
        boxes = [
            [int(v) for v in torch.linspace(a, b, steps=t).tolist()]
            for a, b in ((top, top2), (left, left2), (h, h2), (w, w2))
        ]
        frames = [
            resize_clip(
                clip[k : k + 1, boxes[0][k] : boxes[0][k] + boxes[2][k],
                     boxes[1][k] : boxes[1][k] + boxes[3][k]],
                size, self.interpolation, self.fast_uint8,
            )
            for k in range(t)
        ]
        return torch.cat(frames, dim=0)


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Output ``(height, width)`` of a short-side scale: short side ``size``, long side
    ``floor(long / short * size)`` (pytorchvideo's rule; square frames give ``size x size``)."""
    if width < height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


class ShortSideScale(_Repr):
    """Resize a clip so that its short side is ``size`` (long side ``floor(long/short*size)``).

    Args:
        size: target length of the short side.
        interpolation: ``bilinear`` (reference), ``nearest`` or ``bicubic``.
        fast_uint8: resize uint8 clips with torch's uint8 kernel (faster, within 1 grey level).
    """

    def __init__(
        self,
        size: int,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        fast_uint8: bool = False,
    ) -> None:
        self.size = _positive("short_side_scale", "size", size)
        check_interpolation("short_side_scale", interpolation)
        self.interpolation = interpolation
        self.fast_uint8 = bool(fast_uint8)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        """Resize a ``(T, H, W, C)`` clip."""
        check_clip("short_side_scale", clip)
        size = short_side_size(clip.shape[1], clip.shape[2], self.size)
        return resize_clip(clip, size, self.interpolation, self.fast_uint8)


class RandomShortSideScale(_Repr):
    """Short-side scale to a size drawn uniformly from ``[min_size, max_size]`` (inclusive).

    The size is drawn with ``torch.randint(min_size, max_size + 1)`` (pytorchvideo's rule) from
    the global RNG or the ``generator`` given to ``__call__``.

    Args:
        min_size: smallest short side.
        max_size: largest short side (inclusive).
        interpolation: ``bilinear`` (reference), ``nearest`` or ``bicubic``.
        fast_uint8: resize uint8 clips with torch's uint8 kernel (faster, within 1 grey level).
    """

    def __init__(
        self,
        min_size: int,
        max_size: int,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        fast_uint8: bool = False,
    ) -> None:
        name = "random_short_side_scale"
        self.min_size = _positive(name, "min_size", min_size)
        self.max_size = _positive(name, "max_size", max_size)
        if self.max_size < self.min_size:
            raise ValueError(f"{name}: max_size ({max_size}) must be >= min_size ({min_size}).")
        check_interpolation(name, interpolation)
        self.interpolation = interpolation
        self.fast_uint8 = bool(fast_uint8)

    def __call__(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Resize a ``(T, H, W, C)`` clip to a random short side."""
        check_clip("random_short_side_scale", clip)
        short = _randint(self.min_size, self.max_size, generator)
        size = short_side_size(clip.shape[1], clip.shape[2], short)
        return resize_clip(clip, size, self.interpolation, self.fast_uint8)


def _crop_size(component: str, size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return _positive(component, "size", size), _positive(component, "size", size)
    if len(size) == 1:
        return _crop_size(component, int(size[0]))
    if len(size) != 2:
        raise ValueError(f"{component}: size must be an int or [height, width], got {size!r}.")
    return _positive(component, "size", size[0]), _positive(component, "size", size[1])


class CenterCrop(_Repr):
    """Central crop, offsets ``top = round((H-h)/2)``, ``left = round((W-w)/2)`` (torchvision).

    Frames smaller than the crop are zero-padded first, centred as torchvision does.

    Args:
        size: crop size, an int for a square or ``[height, width]``.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _crop_size("center_crop", size)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        """Crop a ``(T, H, W, C)`` clip (a view unless padding was needed)."""
        check_clip("center_crop", clip)
        ch, cw = self.size
        _, h, w, _ = clip.shape
        if (ch > h or cw > w) and not isinstance(clip, torch.Tensor):
            raise ValueError(f"center_crop: frames {h}x{w} are smaller than the crop; they "
                             "cannot be padded with decode_on: gpu.")
        if ch > h or cw > w:
            pad_t, pad_l = max(ch - h, 0) // 2, max(cw - w, 0) // 2
            pad_b, pad_r = (max(ch - h, 0) + 1) // 2, (max(cw - w, 0) + 1) // 2
            clip = torch.nn.functional.pad(clip, (0, 0, pad_l, pad_r, pad_t, pad_b))
            _, h, w, _ = clip.shape
        top = int(round((h - ch) / 2.0))
        left = int(round((w - cw) / 2.0))
        return clip[:, top : top + ch, left : left + cw]


class RandomCrop(_Repr):
    """Random crop with ``top ~ randint[0, H-h]`` then ``left ~ randint[0, W-w]`` (torchvision).

    No draw happens when the crop equals the frame. Frames smaller than the crop raise
    ``ValueError``.

    Args:
        size: crop size, an int for a square or ``[height, width]``.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _crop_size("random_crop", size)

    def __call__(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Crop a ``(T, H, W, C)`` clip (a view)."""
        check_clip("random_crop", clip)
        ch, cw = self.size
        _, h, w, _ = clip.shape
        if ch > h or cw > w:
            raise ValueError(
                f"random_crop: crop {ch}x{cw} is larger than the frame {h}x{w}; "
                "scale the clip first (e.g. random_short_side_scale)."
            )
        if (ch, cw) == (h, w):
            return clip
        top = _randint(0, h - ch, generator)
        left = _randint(0, w - cw, generator)
        return clip[:, top : top + ch, left : left + cw]


def uniform_crop_offsets(height: int, width: int, size: int, spatial_idx: int) -> tuple[int, int]:
    """Top-left of pytorchvideo's uniform crop: along the long side (width when H <= W) index
    0/1/2 gives offset ``0``, ``ceil((L-size)/2)``, ``L-size``; the other side is centred with
    ``ceil``."""
    top = int(math.ceil((height - size) / 2))
    left = int(math.ceil((width - size) / 2))
    if height > width:
        top = {0: 0, 1: top, 2: height - size}[spatial_idx]
    else:
        left = {0: 0, 1: left, 2: width - size}[spatial_idx]
    return top, left


def _check_spatial_idx(component: str, spatial_idx: int) -> int:
    if spatial_idx not in (0, 1, 2):
        raise ValueError(f"{component}: spatial_idx/aug_index must be 0, 1 or 2, got {spatial_idx!r}.")
    return int(spatial_idx)


def uniform_crop(clip: torch.Tensor, size: int, spatial_idx: int) -> torch.Tensor:
    """One of the three square crops of a ``(T, H, W, C)`` clip (see :func:`uniform_crop_offsets`)."""
    check_clip("uniform_crop", clip)
    _check_spatial_idx("uniform_crop", spatial_idx)
    _, h, w, _ = clip.shape
    if size > h or size > w:
        raise ValueError(f"uniform_crop: crop {size} is larger than the frame {h}x{w}.")
    top, left = uniform_crop_offsets(h, w, size, spatial_idx)
    return clip[:, top : top + size, left : left + size]


class UniformCrop(_Repr):
    """Fixed three-crop position: left/centre/right (top/centre/bottom when H > W).

    Args:
        size: side of the square crop.
        spatial_idx: 0, 1 or 2 (start, centre, end of the long side).
    """

    def __init__(self, size: int, spatial_idx: int = 1) -> None:
        self.size = _positive("uniform_crop", "size", size)
        self.spatial_idx = _check_spatial_idx("uniform_crop", spatial_idx)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        """Crop a ``(T, H, W, C)`` clip (a view)."""
        return uniform_crop(clip, self.size, self.spatial_idx)


class UniformCropVideo(_Repr):
    """Dict transform: three-crop keyed by the sample's ``aug_index`` (docs/reference.md §6.5 evaluation).

    ``sample[video_key]`` (a clip or a list of clips) is cropped at position
    ``sample[aug_index_key]`` (0/1/2, see :class:`UniformCrop`); other keys are kept.

    Args:
        size: side of the square crop.
        video_key: key of the clip(s) in the sample.
        aug_index_key: key of the crop position in the sample.
    """

    def __init__(
        self, size: int, video_key: str = "input", aug_index_key: str = "aug_index"
    ) -> None:
        self.size = _positive("uniform_crop_video", "size", size)
        self.video_key = video_key
        self.aug_index_key = aug_index_key

    def __call__(self, sample: dict) -> dict:
        """Return a new sample dict with the cropped clip(s)."""
        if self.video_key not in sample or self.aug_index_key not in sample:
            raise ValueError(
                f"uniform_crop_video: the sample needs keys {self.video_key!r} and "
                f"{self.aug_index_key!r}; it has {sorted(sample)}."
            )
        idx = int(sample[self.aug_index_key])
        video = sample[self.video_key]
        out = dict(sample)
        if isinstance(video, (list, tuple)):
            out[self.video_key] = [uniform_crop(v, self.size, idx) for v in video]
        else:
            out[self.video_key] = uniform_crop(video, self.size, idx)
        return out
