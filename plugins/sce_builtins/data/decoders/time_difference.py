"""Time-difference frames (docs/reference.md §5.7): index expansion and the gray difference image.

Index expansion of ids ``a_0..a_{n-1}`` (the reference's ``add_last_indice=False`` rule):

* for every ``i < n-1``: ``a_i`` is kept; if ``a_{i+1} != a_i + 1`` the neighbour ``a_i + 1``
  is inserted right after it (dropped after differencing);
* the last id contributes two slots ``(a_{n-1} - 1, a_{n-1})``, the first dropped, the second kept.

Eight non-consecutive ids therefore become 16:
``a_0, a_0+1, ..., a_6, a_6+1, a_7-1, a_7`` with keep pattern ``K D K D ... K D D K``.

Difference image on the expanded uint8 clip ``E`` (T'' frames): ``Y = uint8(0.2989 R + 0.587 G +
0.114 B)`` (float32 arithmetic, truncated, as torchvision's ``rgb_to_grayscale``);
``d_t = Y_t - Y_{t+1}`` for ``t < T''-1`` and ``d_{T''-1} = d_{T''-2}``; the output is
``round((d + 255) / 2)`` (round half to even) clamped to ``[0, 255]``, replicated to 3 channels,
restricted to the kept slots. So kept ``a_i`` (i < n-1) carries ``(Y(a_i) - Y(next slot) + 255)/2``
and the last kept frame ``(Y(a_{n-1} - 1) - Y(a_{n-1}) + 255)/2``.

Edge cases (documented deviations are marked *):

* Reference quirk kept for parity: when the last two ids are consecutive (``a_{n-2} + 1 ==
  a_{n-1}``, e.g. windows shorter than ``num_samples`` frames) the slot after ``a_{n-2}`` is
  ``a_{n-1} - 1 == a_{n-2}`` itself, so that frame gets a zero-motion (128) image.
* The expansion can name frames outside the video: ``-1`` when the last id is 0 and ``N`` when
  the last frame ``N-1`` is repeated. The reference then crashed (requested frame -1).
  *Here such ids are clamped into ``[0, N-1]`` before reading* (:func:`clamp_ids`), so the
  affected pair differences a frame with itself and yields the zero-motion value 128. In
  particular a 1-frame video gives an all-128 clip. This only happens for windows covering a
  single frame; clips of two or more frames never leave the video.
"""

from __future__ import annotations

import numpy as np
import torch

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def expand_indices(ids: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Expanded ids and keep mask for time difference (see module docstring). ``len(ids) >= 1``."""
    a = np.asarray(ids, dtype=np.int64)
    n = a.shape[0]
    if n == 0:
        raise ValueError("time difference: needs at least one frame id")
    head = a[:-1]
    needs_neighbour = a[1:] != head + 1
    # Slots per head id: itself (+ its neighbour when needed); then the final pair.
    counts = 1 + needs_neighbour.astype(np.int64)
    total = int(counts.sum()) + 2
    out = np.empty(total, dtype=np.int64)
    keep = np.zeros(total, dtype=bool)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if n > 1 else np.zeros(0, np.int64)
    out[starts] = head
    keep[starts] = True
    out[starts[needs_neighbour] + 1] = head[needs_neighbour] + 1
    out[-2] = a[-1] - 1
    out[-1] = a[-1]
    keep[-1] = True
    return out, keep


def clamp_ids(ids: np.ndarray, num_frames: int) -> np.ndarray:
    """Clamp expanded ids into the video ``[0, num_frames - 1]`` (never request frame -1)."""
    return np.clip(ids, 0, max(num_frames - 1, 0))


def to_gray_uint8(frames: np.ndarray) -> np.ndarray:
    """Luma of ``(..., 3)`` uint8 RGB as uint8, bit-exact with torchvision's ``rgb_to_grayscale``."""
    r = frames[..., 0].astype(np.float32)
    g = frames[..., 1].astype(np.float32)
    b = frames[..., 2].astype(np.float32)
    wr, wg, wb = (np.float32(w) for w in _GRAY_WEIGHTS)
    y = wr * r + wg * g + wb * b
    return y.astype(np.uint8)  # truncation toward zero, as a float -> uint8 cast in torch


def difference_image(expanded: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Time-difference clip ``(T, H, W, 3)`` uint8 from the expanded clip ``(T'', H, W, 3)``.

    Only the kept slots (and their successors) are converted to gray.
    """
    t2 = expanded.shape[0]
    keep_pos = np.flatnonzero(keep)
    if t2 < 2:
        raise ValueError("time difference: the expanded clip needs at least two frames")
    # Pair (p, p + 1) for each kept slot; the last slot reuses the pair (T''-2, T''-1).
    first = np.minimum(keep_pos, t2 - 2)
    slots = np.unique(np.concatenate([first, first + 1]))
    gray = np.empty((t2,) + expanded.shape[1:3], dtype=np.float32)
    gray[slots] = to_gray_uint8(expanded[slots])
    diff = gray[first] - gray[first + 1]
    value = np.clip(np.round((diff + 255.0) / 2.0), 0, 255).astype(np.uint8)
    out = np.empty(value.shape + (3,), dtype=np.uint8)
    out[...] = value[..., None]
    return out


def difference_image_torch(expanded: torch.Tensor, keep: np.ndarray) -> torch.Tensor:
    """:func:`difference_image` on a ``(T'', H, W, 3)`` uint8 tensor (any device; bit-exact on CPU)."""
    t2 = expanded.shape[0]
    if t2 < 2:
        raise ValueError("time difference: the expanded clip needs at least two frames")
    first = torch.as_tensor(np.minimum(np.flatnonzero(keep), t2 - 2), device=expanded.device)
    rgb = expanded.to(torch.float32)
    wr, wg, wb = _GRAY_WEIGHTS
    gray = (wr * rgb[..., 0] + wg * rgb[..., 1] + wb * rgb[..., 2]).to(torch.uint8).to(torch.float32)
    diff = gray[first] - gray[first + 1]
    value = torch.round((diff + 255.0) / 2.0).clamp_(0, 255).to(torch.uint8)
    return value[..., None].expand(*value.shape, 3).contiguous()
