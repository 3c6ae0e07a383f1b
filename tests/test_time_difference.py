"""Time-difference index expansion and difference image (docs/reference.md §5.7) on known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sce_builtins.data.decoders.time_difference import (
    clamp_ids,
    difference_image,
    expand_indices,
    to_gray_uint8,
)
from torchvision.transforms.functional import rgb_to_grayscale


def _spec_expansion(ids):
    """Independent loop transcription of the docs/reference.md §5.7 text."""
    out, keep = [], []
    for i in range(len(ids) - 1):
        out.append(ids[i])
        keep.append(True)
        if ids[i + 1] != ids[i] + 1:
            out.append(ids[i] + 1)
            keep.append(False)
    out += [ids[-1] - 1, ids[-1]]
    keep += [False, True]
    return out, keep


def test_expansion_of_spec_t77_ids():
    ids = [0, 10, 21, 32, 43, 54, 65, 76]
    out, keep = expand_indices(ids)
    assert out.tolist() == [0, 1, 10, 11, 21, 22, 32, 33, 43, 44, 54, 55, 65, 66, 75, 76]
    assert keep.tolist() == [True, False] * 7 + [False, True]


def test_expansion_consecutive_duplicates_and_single():
    out, keep = expand_indices([3, 4, 5])
    assert out.tolist() == [3, 4, 4, 5] and keep.tolist() == [True, True, False, True]
    out, keep = expand_indices([5, 5, 5])
    assert out.tolist() == [5, 6, 5, 6, 4, 5]
    assert keep.tolist() == [True, False, True, False, False, True]
    out, keep = expand_indices([0])
    assert out.tolist() == [-1, 0] and keep.tolist() == [False, True]
    # -1 (and N) are never requested: clamped into the video.
    assert clamp_ids(out, 10).tolist() == [0, 0]
    assert clamp_ids(np.array([8, 9, 10]), 10).tolist() == [8, 9, 9]


def test_expansion_matches_spec_loop_on_random_ids():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        ids = np.sort(rng.integers(0, 30, size=n)).tolist()
        out, keep = expand_indices(ids)
        ref_out, ref_keep = _spec_expansion(ids)
        assert out.tolist() == ref_out
        assert keep.tolist() == ref_keep
        assert int(keep.sum()) == n


def test_gray_is_bit_exact_with_torchvision():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(3, 17, 19, 3), dtype=np.uint8)
    ours = to_gray_uint8(img)
    ref = rgb_to_grayscale(torch.from_numpy(img).permute(0, 3, 1, 2)).squeeze(1).numpy()
    np.testing.assert_array_equal(ours, ref)
    # Solid gray v maps to trunc(0.9999 v) = v - 1 for v > 0.
    assert to_gray_uint8(np.full((1, 1, 1, 3), 100, np.uint8)).item() == 99


def test_difference_image_known_values():
    # Expanded ids of [0, 5] are [0, 1, 4, 5] with keep [K, D, D, K]; solid gray frames:
    values = [10, 40, 100, 60]  # gray levels -> Y = 9, 39, 99, 59
    clip = np.stack([np.full((2, 3, 3), v, np.uint8) for v in values])
    _, keep = expand_indices([0, 5])
    out = difference_image(clip, keep)
    assert out.shape == (2, 2, 3, 3) and out.dtype == np.uint8
    # kept 0: (9 - 39 + 255) / 2 = 112.5 -> 112 (half to even);
    # last kept: (Y(a-1) - Y(a) + 255) / 2 = (99 - 59 + 255) / 2 = 147.5 -> 148.
    assert (out[0] == 112).all() and (out[1] == 148).all()


def test_difference_image_matches_torch_reference_pipeline():
    """Spec pipeline in torch: gray -> float diff -> last repeats -> round((d+255)/2) -> keep."""
    rng = np.random.default_rng(2)
    ids = [0, 10, 21, 32, 43, 54, 65, 76]
    expanded, keep = expand_indices(ids)
    clip = rng.integers(0, 256, size=(len(expanded), 5, 4, 3), dtype=np.uint8)
    y = rgb_to_grayscale(torch.from_numpy(clip).permute(0, 3, 1, 2), 3).float()  # (T, 3, H, W)
    d = y[:-1] - y[1:]
    d = torch.cat([d, d[-1:]], dim=0)
    ref = ((d + 255) / 2).round().clamp(0, 255).to(torch.uint8)[torch.from_numpy(keep)]
    ours = difference_image(clip, keep)
    np.testing.assert_array_equal(ours, ref.permute(0, 2, 3, 1).numpy())


def test_reference_quirk_consecutive_last_ids_gives_zero_motion():
    expanded, keep = expand_indices([3, 4, 5])  # [3, 4, 4, 5]
    clip = np.stack([np.full((1, 1, 3), v, np.uint8) for v in (50, 80, 80, 200)])
    out = difference_image(clip, keep)[:, 0, 0, 0].tolist()
    # kept 3: (49 - 79 + 255)/2 = 112.5 -> 112; kept 4: next slot is 4 itself -> 127.5 -> 128;
    # kept 5: (79 - 199 + 255)/2 = 67.5 -> 68.
    assert out == [112, 128, 68]


def test_difference_image_rejects_single_slot():
    with pytest.raises(ValueError):
        difference_image(np.zeros((1, 2, 2, 3), np.uint8), np.array([True]))
