"""Clip samplers: exact rational timing of docs/reference.md §5.8, grouping into samples, seeding."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from sce_builtins.data.clip_samplers import (
    ConstantClipsPerVideoSampler,
    RandomClipSampler,
    RandomMultiClipSampler,
    UniformClipSampler,
)
from sce_builtins.data.types import ClipWindow

CLIP = Fraction(2.56)  # exact binary value of the float 2.56


def test_clip_duration_is_exact_binary_value_of_float():
    s = RandomClipSampler(2.56)
    assert s.clip_duration == CLIP
    assert CLIP != Fraction(256, 100)
    assert 0 < float(CLIP - Fraction(256, 100)) < 1e-16  # ~5.3e-17 above 2.56


def test_random_clip_window_length_and_range():
    s = RandomClipSampler(2.56)
    duration = Fraction(300, 30)  # 10 s video
    starts = []
    for seed in range(200):
        (w,) = s(duration, np.random.default_rng(seed))
        assert w.end - w.start == CLIP
        assert 0 <= w.start <= duration - CLIP
        assert (w.clip_index, w.aug_index) == (0, 0)
        starts.append(float(w.start))
    assert min(starts) < 1.0 and max(starts) > 6.0  # spread over [0, 7.44]


def test_random_clip_start_is_the_generator_uniform_draw():
    s = RandomClipSampler(2.56)
    (w,) = s(Fraction(10), np.random.default_rng(7))
    expected = np.random.default_rng(7).uniform(0.0, float(Fraction(10) - CLIP))
    assert w.start == Fraction(expected)


def test_random_clip_short_video_starts_at_zero():
    s = RandomClipSampler(2.56)
    (w,) = s(Fraction(30, 30), np.random.default_rng(0))
    assert w.start == 0 and w.end == CLIP


def test_random_clip_77_or_76_frames_at_30fps():
    """docs/reference.md §5.6: a 2.56 s window spans ceil(30 s)..ceil(30 e): 77 frames ~80%, 76 ~20%."""
    s = RandomClipSampler(2.56)
    counts = {76: 0, 77: 0}
    for seed in range(400):
        (w,) = s(Fraction(300, 30), np.random.default_rng(seed))
        n = math.ceil(30 * w.end) - math.ceil(30 * w.start)
        counts[n] += 1
    assert set(counts) == {76, 77}
    assert 0.7 < counts[77] / 400 < 0.9


def test_speeds_one_means_no_speed_and_jitter_bounds():
    assert RandomClipSampler(2.56, speeds=[1]).speeds is None
    s = RandomClipSampler(1.0, speeds=[2.0], jitter_factor=0.0)
    (w,) = s(Fraction(10), np.random.default_rng(0))
    assert w.end - w.start == 2
    s = RandomClipSampler(1.0, jitter_factor=0.25)
    lengths = [s(Fraction(10), np.random.default_rng(i))[0] for i in range(50)]
    lengths = [float(w.end - w.start) for w in lengths]
    assert all(0.75 <= x <= 1.25 for x in lengths) and len(set(lengths)) > 40


def test_random_multi_clip_two_independent_clips_and_seeding():
    s = RandomMultiClipSampler(2.56, num_clips=2, speeds=[1], jitter_factor=0)
    a = s(Fraction(10), np.random.default_rng(3))
    b = s(Fraction(10), np.random.default_rng(3))
    assert a == b
    assert [w.clip_index for w in a] == [0, 1]
    assert a[0].start != a[1].start
    assert all(w.end - w.start == CLIP for w in a)
    assert s.list_input and not s.multi_sample
    assert s.group(a) == [a]


def test_constant_clips_spacing_10_clips_3_augs():
    s = ConstantClipsPerVideoSampler(2.56, clips_per_video=10, augs_per_clip=3)
    duration = Fraction(10)
    windows = s(duration, None)
    assert len(windows) == 30
    spacing = (duration - CLIP) / 9
    for k, w in enumerate(windows):
        c, a = divmod(k, 3)
        assert (w.clip_index, w.aug_index) == (c, a)
        assert w.start == spacing * c and w.end == spacing * c + CLIP
    assert windows[-1].end == duration  # the last clip ends exactly at the video end
    assert s.multi_sample
    assert s.group(windows) == [[w] for w in windows]


def test_constant_clips_short_video_all_at_zero():
    windows = ConstantClipsPerVideoSampler(2.56, 10, 3)(Fraction(1), None)
    assert len(windows) == 30
    assert {w.start for w in windows} == {0}


def test_constant_clips_single_clip():
    windows = ConstantClipsPerVideoSampler(2.0, 1, 1)(Fraction(10), None)
    assert windows == [ClipWindow(Fraction(0), Fraction(2), 0, 0)]


def test_uniform_clip_consecutive_and_backpad():
    s = UniformClipSampler(2.0)
    assert [(w.start, w.end) for w in s(Fraction(7), None)] == [(0, 2), (2, 4), (4, 6)]
    assert [(w.start, w.end) for w in s(Fraction(6), None)] == [(0, 2), (2, 4), (4, 6)]
    s = UniformClipSampler(2.0, backpad_last=True)
    assert [(w.start, w.end) for w in s(Fraction(7), None)] == [(0, 2), (2, 4), (4, 6), (5, 7)]
    s = UniformClipSampler(2.0, stride=1.0)
    assert [w.start for w in s(Fraction(4), None)] == [0, 1, 2]
    assert [w.clip_index for w in s(Fraction(4), None)] == [0, 1, 2]
    assert UniformClipSampler(2.0)(Fraction(1), None) == [ClipWindow(Fraction(0), Fraction(2), 0, 0)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomClipSampler(0),
        lambda: RandomClipSampler(1.0, jitter_factor=1.5),
        lambda: RandomMultiClipSampler(1.0, num_clips=0),
        lambda: ConstantClipsPerVideoSampler(1.0, clips_per_video=0),
        lambda: RandomClipSampler(1.0, speeds=[0.0, 1.0]),
    ],
)
def test_bad_arguments_raise_value_error(make):
    with pytest.raises(ValueError, match="must be"):
        make()


def test_random_multi_clip_min_gap_keeps_clips_apart():
    from fractions import Fraction

    import numpy as np
    from sce_builtins.data.clip_samplers import RandomMultiClipSampler

    sampler = RandomMultiClipSampler(clip_duration=1.0, num_clips=2, min_gap=1.0)
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(300):
        a, b = sampler(Fraction(8), rng)
        assert a.end - a.start == 1 and b.end - b.start == 1
        assert 0 <= a.start <= 7 and 0 <= b.start <= 7
        gaps.append(max(a.start, b.start) - min(a.end, b.end))
    assert min(gaps) >= 1
    # without the option the same draws overlap sometimes (the reference behaviour)
    plain = RandomMultiClipSampler(clip_duration=1.0, num_clips=2)
    rng = np.random.default_rng(0)
    overlaps = sum(max(a.start, b.start) < min(a.end, b.end)
                   for a, b in (plain(Fraction(8), rng) for _ in range(300)))
    assert overlaps > 30


def test_random_multi_clip_min_gap_impossible_keeps_farthest():
    from fractions import Fraction

    import numpy as np
    from sce_builtins.data.clip_samplers import RandomMultiClipSampler

    # In a 4 s video no two 1 s clips are 5 s apart; the second clip then goes to the far end:
    # the gap is at least max(start_a, 3 - start_a) - 1 >= 0.5, minus the sampling slack.
    sampler = RandomMultiClipSampler(clip_duration=1.0, num_clips=2, min_gap=5.0, max_tries=50)
    for seed in range(10):
        a, b = sampler(Fraction(4), np.random.default_rng(seed))
        assert max(a.start, b.start) - min(a.end, b.end) > Fraction(3, 10)
