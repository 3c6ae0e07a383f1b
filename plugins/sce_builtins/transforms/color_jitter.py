"""Batched colour jitter: torchaug 0.3.3's ``BatchRandomColorJitter`` in a fixed number of ops
(docs/reference.md §5.11).

torchaug splits the jittered samples into up to 24 op-order groups and runs the four colour ops
on each group separately, so the ops it dispatches grow with the batch and ``num_rand_calls``
(2,438 per call at batch 64 with ``num_rand_calls: -1``, 25 of them host syncs; see
``benchmarks/color_jitter.py``). Here every op runs on the whole batch with per-sample
coefficients, and each sample's order is encoded in those coefficients:

* brightness, contrast and saturation are one *blend* ``clamp(a*x + bc*mean(gray) + bs*gray, 0, 1)``
  (brightness ``a = f``; contrast ``a = f, bc = 1 - f``; saturation ``a = f, bs = 1 - f``);
  in a slot where a sample has no op, ``a = 1, bc = bs = 0``: an exact identity on ``[0, 1]``;
* hue is not an identity at shift 0, so it runs once: each sample's blend ops before its hue go
  into ``E`` pre-hue slots, the ones after it into ``E`` post-hue slots (``E`` enabled blend ops,
  relative order kept), so the whole jitter is ``2E`` blends and one hue shift (``E`` blends
  without hue): 6 + 1 for the recipe;
* samples that are not jittered get their input back, bit for bit, from one final ``torch.where``.

The ops depend only on which ops are enabled, never on the batch size or ``num_rand_calls``
(168 for the recipe), and nothing is read back to the host (no ``.item()``, no mask indexing).
Images must lie in ``[0, 1]`` (torchaug's and torchvision's contract): a jittered sample with
values outside is clamped by its first blend slot, even an empty one.

Random draws, all from torch's RNG on the batch's device: how many samples are jittered
(torchaug's exact count ``p * B``: floor or ceil by the fractional part, one sample with
probability ``p`` when ``p * B < 1``), one permutation of the batch (the first ``n`` positions
are jittered, in consecutive groups of ``ceil(n / groups)``), one permutation of the 24 orders
(group ``i`` takes order ``i``; ``groups = min(n, num_rand_calls or n, 24)``, so the orders of
different groups differ, as torchaug's) and the factors (uniform in each op's range). The joint
distribution is torchaug's; the RNG stream is not: torchaug draws the count and the orders from
the CPU RNG and uses two permutations where one suffices here, so a seed gives other draws.
"""

from collections.abc import Sequence
from math import ceil, floor
from typing import NamedTuple

import torch
from torch import Tensor
from torchaug import batch_transforms as tab

NUM_OPS = 4  # brightness, contrast, saturation, hue: op ids 0..3 in this order
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(NUM_OPS)
NUM_ORDERS = 24  # 4!
IDENTITY = (1.0, 1.0, 1.0, 0.0)  # factor of each op that leaves an image unchanged
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


class JitterParams(NamedTuple):
    """One batch's random draws.

    Attributes:
        apply: ``(B,)`` bool, whether each sample is jittered.
        ranks: ``(B, 4)`` long, ``ranks[b, op]`` = position (0..3) of op ``op`` (brightness,
            contrast, saturation, hue) in sample ``b``'s sequence.
        factors: ``(B, 4)`` float, each sample's brightness, contrast, saturation factors and hue
            shift (the identity value for a disabled op).
    """

    apply: Tensor
    ranks: Tensor
    factors: Tensor

    @property
    def order(self) -> Tensor:
        """``(B, 4)`` op ids in the order each sample applies them."""
        return self.ranks.argsort(dim=1)


def decode_orders(code: Tensor) -> Tensor:
    """Map integer codes ``0..23`` to the 24 permutations of ``0..3`` (Lehmer code), on the
    codes' device: digit ``i`` picks among the values not yet taken. Returns ``(*code.shape, 4)``."""
    first = code // 6
    second = (code // 2) % 3
    second = second + (second >= first)
    third = code % 2
    third = third + (third >= torch.minimum(first, second))
    third = third + (third >= torch.maximum(first, second))
    return torch.stack([first, second, third, 6 - first - second - third], dim=-1)


def _to_batch_shape(t: Tensor, ndim: int) -> Tensor:
    """View ``(..., B)`` as ``(..., B, 1, ..., 1)`` broadcasting against a ``ndim``-d batch."""
    return t.reshape(*t.shape, *([1] * (ndim - 1)))


def hue_shift(x: Tensor, shift: Tensor) -> Tensor:
    """Shift the hue of float RGB images ``(B, ..., 3, H, W)`` in ``[0, 1]`` by ``shift``
    (turns, broadcastable to ``(B, ..., 1, H, W)``): torchvision's ``adjust_hue`` per sample.
    Returns a new tensor.

    The hue in sextants ``t`` (0 red, 2 green, 4 blue) goes round by ``6 * shift``; channel
    ``m`` (R 0, G -2, B -4) becomes ``min + chroma * clamp(||t + m| - 3| - 1, 0, 1)`` for
    ``t`` in ``[0, 6)``, the HSV-to-RGB ramps without sector branches. Gray pixels (chroma 0)
    stay as they are.
    """
    red, green, blue = x.narrow(-3, 0, 1), x.narrow(-3, 1, 1), x.narrow(-3, 2, 1)
    top = x.amax(dim=-3, keepdim=True)
    bottom = x.amin(dim=-3, keepdim=True)
    chroma = top - bottom
    # the maximum channel's sector: red (g - b) / c, green 2 + (b - r) / c, blue 4 + (r - g) / c
    # (where two channels tie for the maximum both formulas give the same hue modulo 6)
    turn = torch.where(red == top, green - blue,
                       torch.where(green == top, (blue - red).add_(chroma, alpha=2),
                                   (red - green).add_(chroma, alpha=4)))
    turn = turn.div_(chroma.clamp_min(torch.finfo(x.dtype).tiny)).add_(shift * 6).remainder_(6)
    channel_offset = torch.arange(0, -6, -2, device=x.device, dtype=x.dtype).view(3, 1, 1)
    ramp = (turn + channel_offset).abs_().sub_(3).abs_().sub_(1).clamp_(0, 1)
    return ramp.mul_(chroma).add_(bottom)


def _gray(x: Tensor, out: Tensor | None = None) -> Tensor:
    """Luma ``(..., 1, H, W)`` of ``(..., 3, H, W)`` images, written to ``out`` (a new tensor
    when None); ``x`` itself if it has one channel."""
    if x.shape[-3] == 1:
        return x
    gray = torch.mul(x.narrow(-3, 0, 1), GRAY_WEIGHTS[0], out=out)
    return gray.add_(x.narrow(-3, 1, 1), alpha=GRAY_WEIGHTS[1]).add_(x.narrow(-3, 2, 1), alpha=GRAY_WEIGHTS[2])


def _blend(x: Tensor, a: Tensor, weights: list[Tensor], blend_ops: list[int],
           out: Tensor | None, scratch: Tensor | None) -> Tensor:
    """One blend slot, written to ``out`` (a new tensor when None; may be ``x``):
    ``clamp(a * x + bc * mean(gray) + bs * gray, 0, 1)``, ``bc`` and ``bs`` the ``weights`` of
    the enabled ops among contrast and saturation; the gray image goes to ``scratch``."""
    weights = iter(weights)
    bc = next(weights) if CONTRAST in blend_ops else None
    u = None
    if bc is not None or SATURATION in blend_ops:
        gray = _gray(x, scratch)
        if bc is not None:
            u = gray.mean(dim=(-3, -2, -1), keepdim=True).mul_(bc)
        if SATURATION in blend_ops:  # RGB only, so gray is scratch, not x
            bs = next(weights)
            u = gray.mul_(bs) if u is None else torch.addcmul(u, gray, bs, out=gray)
    if u is None:
        out = torch.mul(x, a, out=out) if out is not None else x * a
    else:
        out = torch.addcmul(u, a, x, out=out) if out is not None else torch.addcmul(u, a, x)
    return out.clamp_(0, 1)


class BatchRandomColorJitter(tab.BatchRandomColorJitter):
    """Random brightness, contrast, saturation and hue per sample, in a random op order
    (torchaug ``BatchRandomColorJitter``'s arguments and distribution; float input in ``[0, 1]``).

    A factor ``f`` means the range ``[max(0, 1 - f), 1 + f]`` (hue ``f``: ``[-f, f]``); a pair
    gives the range directly; 0 disables the op. Each op is torchvision's ``adjust_*`` for float
    images; contrast blends with the grayscale mean of each image (of each frame inside
    ``batch_video_wrapper``). Dispatches a fixed number of ops whatever the batch size and
    ``num_rand_calls`` (see the module docstring), with no host synchronisation.

    Args:
        brightness: brightness jitter.
        contrast: contrast jitter.
        saturation: saturation jitter.
        hue: hue jitter, at most 0.5.
        p: fraction of the batch to jitter.
        num_rand_calls: number of op-order groups (-1: up to 24, each of at least one sample).
        inplace: write into the input batch.
        value_check: check the factors in :meth:`jitter` (synchronises the device).
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.0,
        contrast: float | Sequence[float] = 0.0,
        saturation: float | Sequence[float] = 0.0,
        hue: float | Sequence[float] = 0.0,
        p: float = 0.5,
        num_rand_calls: int = -1,
        inplace: bool = False,
        value_check: bool = False,
    ) -> None:
        def arg(v: float | Sequence[float]) -> float | tuple[float, ...]:
            return float(v) if isinstance(v, (int, float)) else tuple(float(x) for x in v)

        try:
            super().__init__(brightness=arg(brightness), contrast=arg(contrast),
                             saturation=arg(saturation), hue=arg(hue), p=p,
                             num_rand_calls=num_rand_calls, inplace=inplace,
                             value_check=value_check)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"batch_random_color_jitter: {exc}") from None

    def _ranges(self) -> list[Tensor | None]:
        return [self.brightness, self.contrast, self.saturation, self.hue]

    def _num_apply(self, batch_size: int, p: float, device: torch.device) -> tuple[Tensor, Tensor]:
        """Number of jittered samples and the order-group size, as device scalars.

        torchaug's rule: ``floor(p * B)`` plus one with probability ``frac(p * B)``, or one sample
        with probability ``p`` when ``p * B < 1``. The draw happens even when ``p * B`` is whole,
        so the ops (and RNG draws) are the same for every batch size."""
        groups = NUM_ORDERS if self.num_rand_calls == -1 else min(self.num_rand_calls, NUM_ORDERS)

        def group_size(n: int) -> int:
            return max(1, ceil(n / max(1, min(n, groups))))

        exact = p * batch_size
        base = floor(exact) if exact >= 1 else 0
        threshold = exact - base if exact >= 1 else p
        extra = (torch.rand((), device=device) < threshold).long()
        g_base, g_extra = group_size(base), group_size(base + 1)
        return extra + base, extra * (g_extra - g_base) + g_base

    def sample_params(self, batch_size: int, device: torch.device | str, p: float | None = None) -> JitterParams:
        """Draw the jitter of a batch on ``device`` (``p`` overrides the module's). :meth:`forward`
        draws exactly this, so the same RNG state gives the same draws."""
        p = self.p if p is None else p
        device = torch.device(device)
        position = torch.randperm(batch_size, device=device)  # each sample's place in the shuffle
        n, group = self._num_apply(batch_size, p, device)
        apply = position < n
        group_of = (position // group).clamp_max_(NUM_ORDERS - 1)  # unjittered samples: any group
        code = torch.randperm(NUM_ORDERS, device=device).index_select(0, group_of)
        ranks = decode_orders(code)
        # each op's [min, max]: the module's buffers (moved here if the module is elsewhere:
        # one small copy), [1, 1] / [0, 0] for a disabled op
        bounds = torch.stack([
            torch.full((2,), IDENTITY[op], device=device) if r is None else r.to(device, non_blocking=True)
            for op, r in enumerate(self._ranges())
        ])
        low = bounds[:, :1]
        factors = torch.addcmul(low, bounds[:, 1:] - low, torch.rand(NUM_OPS, batch_size, device=device))
        return JitterParams(apply, ranks, factors.T)

    def _enabled(self, channels: int) -> list[int]:
        """Ops that change an image with ``channels`` channels (saturation and hue need RGB)."""
        return [i for i, r in enumerate(self._ranges())
                if r is not None and (channels == 3 or i in (BRIGHTNESS, CONTRAST))]

    def jitter(self, imgs: Tensor, params: JitterParams, out: Tensor | None = None) -> Tensor:
        """Jitter ``imgs`` as ``params`` says, into ``out`` (may be ``imgs``; a new tensor when None)."""
        if imgs.ndim < 4 or imgs.shape[-3] not in (1, 3) or not imgs.is_floating_point():
            raise ValueError(
                "batch_random_color_jitter: expects a float batch (B, ..., 1 or 3, H, W) in [0, 1], "
                f"got {tuple(imgs.shape)} {imgs.dtype}; put div_255 first for uint8 clips."
            )
        if self.value_check:
            f = params.factors
            if not bool((f[:, :HUE] >= 0).all() and (f[:, HUE].abs() <= 0.5).all()):
                raise ValueError("batch_random_color_jitter: factors must be >= 0 and hue in [-0.5, 0.5].")
        channels = imgs.shape[-3]
        work = imgs.dtype if imgs.dtype in (torch.float32, torch.float64) else torch.float32
        ops = self._enabled(channels)
        blend_ops = [op for op in ops if op != HUE]
        with_hue = HUE in ops
        num_blend = len(blend_ops)
        per_slot = self._slot_coefficients(params, ops, blend_ops, with_hue, work, imgs.ndim) if num_blend else ()
        x = imgs.to(work)
        owned = x is not imgs  # x is our own buffer, overwritten in place
        scratch = (torch.empty_like(imgs.narrow(-3, 0, 1), dtype=work)
                   if channels == 3 and {CONTRAST, SATURATION} & set(blend_ops) else None)
        for coefs in per_slot[:num_blend]:
            a, *weights = coefs.unbind(0)
            x, owned = _blend(x, a, weights, blend_ops, x if owned else None, scratch), True
        if with_hue:
            x, owned = hue_shift(x, _to_batch_shape(params.factors[:, HUE].to(work), x.ndim)), True
        for coefs in per_slot[num_blend:]:
            a, *weights = coefs.unbind(0)
            x = _blend(x, a, weights, blend_ops, x, scratch)
        # samples not jittered keep their input exactly
        apply = _to_batch_shape(params.apply, x.ndim)
        if out is not None and out.dtype == work:
            return torch.where(apply, x, imgs, out=out)
        x = (torch.where(apply, x, imgs, out=x) if owned else torch.where(apply, x, imgs)).to(imgs.dtype)
        return x if out is None else out.copy_(x)

    @staticmethod
    def _slot_coefficients(params: JitterParams, ops: list[int], blend_ops: list[int], with_hue: bool,
                           work: torch.dtype, ndim: int) -> tuple[Tensor, ...]:
        """Per blend slot, a ``(n, B, 1, ..., 1)`` stack: the image weight ``a``, then the
        gray-mean weight (contrast on) and the gray weight (saturation on)."""
        num_blend = len(blend_ops)
        ranks = params.ranks if len(ops) == NUM_OPS else torch.stack([params.ranks[:, op] for op in ops], 1)
        # each op's rank among the enabled ops, then its slot: pre-hue 0..E-1, post-hue E..2E-1
        rel = ranks if len(ops) == NUM_OPS else (ranks.unsqueeze(2) > ranks.unsqueeze(1)).sum(2)
        slot = rel[:, :num_blend]
        if with_hue:
            slot = slot + (slot > rel[:, num_blend:]) * (num_blend - 1)
        num_slots = 2 * num_blend if with_hue else num_blend
        in_slot = slot == torch.arange(num_slots, device=slot.device).view(num_slots, 1, 1)  # (S, B, E)
        all_blend = blend_ops == [BRIGHTNESS, CONTRAST, SATURATION]
        f = (params.factors[:, :SATURATION + 1] if all_blend
             else torch.stack([params.factors[:, op] for op in blend_ops], 1)).to(work)  # (B, E)
        coefs = [torch.where(in_slot, f, 1).prod(2)]  # a: f of the slot's op, 1 in an empty slot
        for op in (CONTRAST, SATURATION):
            if op in blend_ops:
                j = blend_ops.index(op)
                coefs.append(torch.where(in_slot[:, :, j], 1 - f[:, j], 0))
        return _to_batch_shape(torch.stack(coefs, dim=1), ndim).unbind(0)

    def apply_transform(self, imgs: Tensor) -> Tensor:
        """Jitter every image of ``imgs`` (a new tensor)."""
        return self.jitter(imgs, self.sample_params(imgs.shape[0], imgs.device, p=1.0))

    def forward(self, imgs: Tensor) -> Tensor:
        """Jitter a random ``p`` fraction of the batch (in place when ``inplace``)."""
        if self.p == 0:
            return imgs
        if self.num_rand_calls == 0 or imgs.numel() == 0:
            return imgs if self.inplace else imgs.clone()
        params = self.sample_params(imgs.shape[0], imgs.device)
        return self.jitter(imgs, params, out=imgs if self.inplace else None)
