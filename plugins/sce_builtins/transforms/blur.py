"""Separable batched Gaussian blur with torchaug 0.3.3's sampling and output.

torchaug's ``batch_gaussian_blur`` builds one full ``k x k`` kernel per sample (the outer
product of two 1-D Gaussians) and runs one depthwise ``conv2d``: ``k*k`` multiply-adds per
pixel (529 for the recipe's ``k = 23``). A Gaussian kernel is separable, so a ``1 x k`` pass
followed by a ``k x 1`` pass computes the same result with ``2*k`` multiply-adds per pixel
(46 for ``k = 23``, about 11.5x less arithmetic); the outputs agree to float rounding
(about 1e-6 on ``[0, 1]`` images).
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchaug import batch_transforms as tab


def gaussian_kernel1d(kernel_size: int, sigma: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per-sample normalised 1-D kernels ``(B, kernel_size)`` for ``sigma`` of shape ``(B, 1)``:
    ``exp(-x^2 / (2 sigma^2))`` on ``x = -(k-1)/2 .. (k-1)/2``, divided by its sum."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size, dtype=dtype, device=sigma.device)
    pdf = torch.exp(-0.5 * (x.view(1, -1) / sigma).pow(2))
    return pdf / pdf.sum(-1, keepdim=True)


def _sigma_table(sigma: float | Sequence[float] | torch.Tensor, batch: int, device) -> torch.Tensor:
    if isinstance(sigma, torch.Tensor):
        s = sigma.to(device)
        if s.ndim <= 1:
            s = s.reshape(-1, 1)
    else:
        s = torch.tensor([[float(v) for v in sigma]] if isinstance(sigma, Sequence)
                         else [[float(sigma)]], device=device)
    if s.shape[0] == 1:
        s = s.expand(batch, s.shape[1])
    if s.shape[1] == 1:
        s = s.expand(batch, 2)
    if s.shape != (batch, 2):
        raise ValueError(
            f"separable_gaussian_blur: sigma must give 1 or {batch} rows of 1 or 2 values, "
            f"got shape {tuple(s.shape)}."
        )
    return s


def separable_gaussian_blur(
    imgs: torch.Tensor,
    kernel_size: int | Sequence[int],
    sigma: float | Sequence[float] | torch.Tensor,
) -> torch.Tensor:
    """Blur a batch ``(B, ..., H, W)`` with per-sample Gaussians, as torchaug does but separably.

    Same kernels (``kernel_size = (kx, ky)``; ``sigma`` per sample ``(B,)``/``(B, 2)`` as
    ``(sigma_x, sigma_y)``), same reflect padding of ``k // 2`` pixels, integer inputs rounded
    back to their dtype. Returns a new tensor.

    Args:
        imgs: batch of images or videos, channels and time flattened into the depthwise groups.
        kernel_size: odd positive size, or ``(kx, ky)``.
        sigma: standard deviation(s): a number, a pair, or a per-sample tensor.
    """
    kx, ky = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    for k in (kx, ky):
        if k <= 0 or k % 2 == 0:
            raise ValueError(f"separable_gaussian_blur: kernel sizes must be odd and positive, got {kernel_size}.")
    b, *rest, h, w = imgs.shape
    groups = b * math.prod(rest)
    dtype = imgs.dtype if imgs.is_floating_point() else torch.float32
    sig = _sigma_table(sigma, b, imgs.device).to(dtype)
    x = imgs.reshape(1, groups, h, w).to(dtype)
    per_sample = groups // b
    wx = gaussian_kernel1d(kx, sig[:, 0:1], dtype)  # (B, kx)
    wy = gaussian_kernel1d(ky, sig[:, 1:2], dtype)  # (B, ky)
    wx = wx.repeat_interleave(per_sample, dim=0).view(groups, 1, 1, kx)
    wy = wy.repeat_interleave(per_sample, dim=0).view(groups, 1, ky, 1)
    x = F.conv2d(F.pad(x, [kx // 2, kx // 2, 0, 0], mode="reflect"), wx, groups=groups)
    x = F.conv2d(F.pad(x, [0, 0, ky // 2, ky // 2], mode="reflect"), wy, groups=groups)
    x = x.reshape(imgs.shape)
    if not imgs.is_floating_point():
        x = x.round_().clamp_(torch.iinfo(imgs.dtype).min, torch.iinfo(imgs.dtype).max)
        x = x.to(imgs.dtype)
    return x


class BatchRandomGaussianBlur(tab.BatchRandomGaussianBlur):
    """Batch random Gaussian blur (torchaug 0.3.3) with an optional separable kernel.

    Sample selection (exact count ``p * B``) and the sigma draw (one uniform sigma per selected
    sample, shared by x and y) are torchaug's own, so with the same RNG state the same samples
    get the same sigmas. With ``separable=True`` (default) the blur runs as two 1-D depthwise
    convolutions (``2k`` instead of ``k^2`` multiply-adds per pixel: 46 vs 529 for ``k = 23``,
    about 11.5x less arithmetic) with the same output up to float rounding (~1e-6);
    ``separable=False`` uses torchaug's full 2-D kernel.

    Args:
        kernel_size: odd kernel size (or ``[kx, ky]``; torchaug's 2-D path needs a square).
        sigma: fixed sigma, or ``[min, max]`` to draw uniformly.
        p: fraction of the batch to blur.
        inplace: write into the input batch.
        value_check: check sigma values (may synchronise the device).
        separable: use the separable implementation.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        sigma: float | Sequence[float] = (0.1, 2.0),
        p: float = 0.5,
        inplace: bool = False,
        value_check: bool = False,
        separable: bool = True,
    ) -> None:
        try:
            super().__init__(
                kernel_size=kernel_size if isinstance(kernel_size, int) else tuple(kernel_size),
                sigma=sigma if isinstance(sigma, (int, float)) else tuple(sigma),
                p=p,
                inplace=inplace,
                value_check=value_check,
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"batch_random_gaussian_blur: {exc}") from None
        self.separable = bool(separable)

    def apply_transform(self, imgs: torch.Tensor) -> torch.Tensor:
        """Blur the selected images (same sigma draw as torchaug)."""
        if not self.separable:
            return super().apply_transform(imgs)
        sigma = self.get_params(self.sigma[0], self.sigma[1], imgs.shape[0])
        if self.value_check and not torch.all(sigma > 0):
            raise ValueError("batch_random_gaussian_blur: sigma must be positive.")
        return separable_gaussian_blur(imgs, self.kernel_size, sigma)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, separable={self.separable})"
