"""CPU clip transforms: RandomResizedCrop geometry and values, scales, crops, dict wrappers."""

import math

import pytest
import torch
import torch.nn.functional as F
from sce_builtins.transforms.cpu_video import (
    CenterCrop,
    RandomCrop,
    RandomResizedCrop,
    RandomShortSideScale,
    ShortSideScale,
    UniformCrop,
    UniformCropVideo,
    random_resized_crop_params,
)
from sce_builtins.transforms.presets import scale_center_crop
from sce_builtins.transforms.wrappers import (
    Compose,
    OnlyInputListTransform,
    OnlyInputTransform,
    OnlyInputTransformWithDictTransform,
)


def _position_clip(t: int, h: int, w: int, dtype=torch.int64) -> torch.Tensor:
    """clip[t, y, x, c] = 100000*t + 1000*y + 10*x + c: every crop offset is readable."""
    tt = torch.arange(t).view(t, 1, 1, 1) * 100000
    yy = torch.arange(h).view(1, h, 1, 1) * 1000
    xx = torch.arange(w).view(1, 1, w, 1) * 10
    cc = torch.arange(3).view(1, 1, 1, 3)
    return (tt + yy + xx + cc).to(dtype)


def _reference_draw(seed, height, width, scale, ratio, num_tries=10):
    """Transcription of pytorchvideo's draw (docs/reference.md §5.10) with explicit torch calls."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(num_tries):
        area = height * width * torch.empty(1).uniform_(scale[0], scale[1], generator=g).item()
        log_r = torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g).item()
        aspect = math.exp(log_r)
        w = int(round(math.sqrt(area * aspect)))
        h = int(round(math.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, (1,), generator=g).item()
            left = torch.randint(0, width - w + 1, (1,), generator=g).item()
            return top, left, h, w
    raise AssertionError("the test expects an accepted try")


# ----------------------------------------------------------------------------- RandomResizedCrop


def test_rrc_degenerate_ranges_give_hand_computed_box():
    # 40x60 frame, area fraction 0.3 -> 720 px, aspect 1.5: w = round(sqrt(1080)) = 33,
    # h = round(sqrt(480)) = 22; top in [0, 18], left in [0, 27].
    g = torch.Generator().manual_seed(3)
    top, left, h, w = random_resized_crop_params(40, 60, (0.3, 0.3), (1.5, 1.5), generator=g)
    assert (h, w) == (22, 33)
    g2 = torch.Generator().manual_seed(3)
    torch.empty(2).uniform_(generator=g2)  # the two (degenerate) uniform draws of the try
    assert top == torch.randint(0, 19, (1,), generator=g2).item()
    assert left == torch.randint(0, 28, (1,), generator=g2).item()


def test_rrc_uses_bankers_rounding():
    # 64x64 frame, scale 25/16384 -> area 6.25 exactly, aspect 1: sqrt = 2.5 -> round() = 2
    # (half-up rounding would give 3); scale 49/16384 -> 3.5 -> 4.
    g = torch.Generator().manual_seed(0)
    _, _, h, w = random_resized_crop_params(64, 64, (25 / 16384,) * 2, (1.0, 1.0), generator=g)
    assert (h, w) == (2, 2)
    _, _, h, w = random_resized_crop_params(64, 64, (49 / 16384,) * 2, (1.0, 1.0), generator=g)
    assert (h, w) == (4, 4)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_rrc_draw_matches_reference_sequence(seed):
    g = torch.Generator().manual_seed(seed)
    got = random_resized_crop_params(256, 340, (0.2, 0.766), (0.75, 1.3333), generator=g)
    assert got == _reference_draw(seed, 256, 340, (0.2, 0.766), (0.75, 1.3333))


def test_rrc_uses_global_rng_when_no_generator():
    t = RandomResizedCrop(16, 16, scale=(0.2, 0.766), aspect_ratio=(0.75, 1.3333))
    torch.manual_seed(11)
    a = t.get_params(256, 340)
    torch.manual_seed(11)
    b = t.get_params(256, 340)
    assert a == b == _reference_draw_global(11)


def _reference_draw_global(seed):
    torch.manual_seed(seed)
    g = torch.default_generator
    for _ in range(10):
        area = 256 * 340 * torch.empty(1).uniform_(0.2, 0.766, generator=g).item()
        aspect = math.exp(torch.empty(1).uniform_(math.log(0.75), math.log(1.3333), generator=g).item())
        w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < w <= 340 and 0 < h <= 256:
            return (torch.randint(0, 256 - h + 1, (1,)).item(),
                    torch.randint(0, 340 - w + 1, (1,)).item(), h, w)
    raise AssertionError


@pytest.mark.parametrize(
    "height,width,expected",
    [
        (30, 90, (0, 25, 30, 40)),   # W/H = 3 > 4/3: h = H, w = round(30 * 4/3) = 40, centred
        (90, 30, (25, 0, 40, 30)),   # W/H = 1/3 < 3/4: w = W, h = round(30 / 0.75) = 40
        (50, 60, (0, 0, 50, 60)),    # ratio inside the range: the full frame
    ],
)
def test_rrc_fallback_branch(height, width, expected):
    g = torch.Generator().manual_seed(0)
    # area 2..3x the frame: every try fails, the fallback is used after 10 tries.
    box = random_resized_crop_params(height, width, (2.0, 3.0), (0.75, 4 / 3), generator=g)
    assert box == expected
    # the fallback draws nothing more than the 10 tries x 2 uniforms
    g2 = torch.Generator().manual_seed(0)
    torch.empty(20).uniform_(generator=g2)
    assert torch.equal(g.get_state(), g2.get_state())


def test_rrc_output_values_on_a_ramp():
    # 8x8 frame with value 10*x; crop 4x4 (scale 0.25, aspect 1) upsampled to 4x8.
    # Bilinear, align_corners=False: source x = (j + 0.5) / 2 - 0.5 clamped to [0, 3].
    clip = (torch.arange(8).view(1, 1, 8, 1) * 10.0).expand(2, 8, 8, 3).contiguous()
    t = RandomResizedCrop(4, 8, scale=(0.25, 0.25), aspect_ratio=(1.0, 1.0))
    g = torch.Generator().manual_seed(5)
    top, left, h, w = t.get_params(8, 8, torch.Generator().manual_seed(5))
    assert (h, w) == (4, 4)
    out = t(clip, generator=g)
    assert out.shape == (2, 4, 8, 3) and out.dtype == torch.float32
    src = [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]
    expected = torch.tensor([10.0 * (left + s) for s in src])
    assert torch.allclose(out[1, 2, :, 0], expected, atol=1e-5)
    # uint8: the same values rounded half-to-even (2.5 -> 2, 7.5 -> 8, ...)
    out8 = t(clip.to(torch.uint8), generator=torch.Generator().manual_seed(5))
    assert out8.dtype == torch.uint8
    assert out8[0, 0, :, 1].tolist() == torch.round(expected).to(torch.uint8).tolist()


def test_rrc_float_equals_reference_interpolate_exactly():
    gen = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (4, 36, 52, 3), generator=gen).float()
    t = RandomResizedCrop(24, 20, scale=(0.2, 0.766), aspect_ratio=(0.75, 1.3333))
    top, left, h, w = t.get_params(36, 52, torch.Generator().manual_seed(9))
    out = t(clip, generator=torch.Generator().manual_seed(9))
    ref = clip.permute(3, 0, 1, 2).contiguous()[:, :, top : top + h, left : left + w]
    ref = F.interpolate(ref, size=(24, 20), mode="bilinear", align_corners=False)
    assert out.shape == (4, 24, 20, 3)
    assert torch.equal(out, ref.permute(1, 2, 3, 0))


def test_rrc_uint8_is_rounded_reference_and_fast_path_within_one():
    gen = torch.Generator().manual_seed(1)
    clip = torch.randint(0, 256, (3, 40, 56, 3), dtype=torch.uint8, generator=gen)
    t = RandomResizedCrop(32, 32, scale=(0.2, 0.766), aspect_ratio=(0.75, 1.3333))
    out = t(clip, generator=torch.Generator().manual_seed(2))
    ref = t(clip.float(), generator=torch.Generator().manual_seed(2))
    assert out.dtype == torch.uint8
    assert torch.equal(out, ref.round().clamp(0, 255).to(torch.uint8))
    fast = RandomResizedCrop(32, 32, scale=(0.2, 0.766), aspect_ratio=(0.75, 1.3333),
                             fast_uint8=True)(clip, generator=torch.Generator().manual_seed(2))
    assert fast.dtype == torch.uint8 and fast.shape == (3, 32, 32, 3)
    assert (fast.int() - out.int()).abs().max().item() <= 1


def test_rrc_same_box_on_every_frame():
    clip = _position_clip(3, 20, 30, torch.float32)
    t = RandomResizedCrop(10, 10, scale=(0.25, 0.25), aspect_ratio=(1.0, 1.0), interpolation="nearest")
    out = t(clip, generator=torch.Generator().manual_seed(4))
    # frames differ only by the 100000*t offset: identical boxes
    assert torch.equal(out[1] - out[0], torch.full_like(out[0], 100000.0))
    assert torch.equal(out[2] - out[0], torch.full_like(out[0], 200000.0))


def test_rrc_shift_with_full_frame_boxes_equals_plain_resize():
    clip = torch.rand(4, 16, 16, 3) * 255
    t = RandomResizedCrop(8, 8, scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0), shift=True)
    out = t(clip, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(clip.permute(3, 0, 1, 2), size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(out, ref.permute(1, 2, 3, 0), atol=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale": (0.8, 0.2)},
        {"aspect_ratio": (0.0, 1.0)},
        {"interpolation": "area"},
        {"num_tries": 0},
        {"target_height": 0},
    ],
)
def test_rrc_bad_arguments(kwargs):
    args = {"target_height": 8, "target_width": 8, **kwargs}
    with pytest.raises(ValueError, match="random_resized_crop"):
        RandomResizedCrop(**args)


def test_rrc_rejects_non_clip():
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        RandomResizedCrop(8, 8)(torch.zeros(3, 8, 8))


# ----------------------------------------------------------------------------- scales and crops


@pytest.mark.parametrize(
    "shape,expected",
    [((240, 320), (256, 341)), ((300, 200), (384, 256)), ((256, 256), (256, 256)),
     ((255, 341), (256, 342))],
)
def test_short_side_scale_sizes(shape, expected):
    clip = torch.zeros(2, *shape, 3, dtype=torch.uint8)
    out = ShortSideScale(256)(clip)
    assert tuple(out.shape) == (2, *expected, 3) and out.dtype == torch.uint8


def test_short_side_scale_float_equals_reference():
    clip = torch.rand(2, 30, 40, 3) * 255
    out = ShortSideScale(12)(clip)
    ref = F.interpolate(clip.permute(3, 0, 1, 2).contiguous(), size=(12, 16), mode="bilinear",
                        align_corners=False)
    assert torch.equal(out, ref.permute(1, 2, 3, 0))


def test_random_short_side_scale_draw():
    clip = torch.zeros(1, 240, 320, 3, dtype=torch.uint8)
    out = RandomShortSideScale(256, 320)(clip, generator=torch.Generator().manual_seed(8))
    size = torch.randint(256, 321, (1,), generator=torch.Generator().manual_seed(8)).item()
    assert tuple(out.shape) == (1, size, math.floor(320 / 240 * size), 3)
    with pytest.raises(ValueError, match="random_short_side_scale"):
        RandomShortSideScale(300, 256)


def test_center_crop_offsets():
    clip = _position_clip(2, 300, 341)
    out = CenterCrop(256)(clip)
    # top = round(44 / 2) = 22, left = round(85 / 2) = round(42.5) = 42 (banker's rounding)
    assert tuple(out.shape) == (2, 256, 256, 3)
    assert out[0, 0, 0, 0].item() == 22 * 1000 + 42 * 10
    out = CenterCrop([200, 100])(clip)
    assert out[1, 0, 0, 2].item() == 100000 + 50 * 1000 + round(241 / 2) * 10 + 2


def test_center_crop_pads_small_frames():
    clip = torch.ones(1, 4, 6, 3)
    out = CenterCrop(8)(clip)
    assert tuple(out.shape) == (1, 8, 8, 3)
    # pad top 2, bottom 2, left 1, right 1
    assert out[0, :, :, 0].sum().item() == 24
    assert out[0, 2, 1, 0].item() == 1 and out[0, 1, 1, 0].item() == 0 and out[0, 2, 0, 0].item() == 0


def test_random_crop_positions():
    clip = _position_clip(1, 20, 30)
    out = RandomCrop(10)(clip, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    top = torch.randint(0, 11, (1,), generator=g).item()
    left = torch.randint(0, 21, (1,), generator=g).item()
    assert out[0, 0, 0, 0].item() == top * 1000 + left * 10
    assert RandomCrop([20, 30])(clip) is clip
    with pytest.raises(ValueError, match="random_crop"):
        RandomCrop(25)(clip)


@pytest.mark.parametrize(
    "h,w,offsets",
    [
        (256, 340, [(0, 0), (0, 42), (0, 84)]),     # landscape: left / centre / right
        (340, 256, [(0, 0), (42, 0), (84, 0)]),     # portrait: top / centre / bottom
        (260, 341, [(2, 0), (2, 43), (2, 85)]),     # ceil((341-256)/2) = 43, top ceil(4/2)=2
    ],
)
def test_uniform_three_crop_positions(h, w, offsets):
    clip = _position_clip(1, h, w)
    for idx, (top, left) in enumerate(offsets):
        out = UniformCrop(256, idx)(clip)
        assert tuple(out.shape) == (1, 256, 256, 3)
        assert out[0, 0, 0, 0].item() == top * 1000 + left * 10
        sample = UniformCropVideo(256)({"input": clip, "aug_index": idx, "label": 1})
        assert torch.equal(sample["input"], out) and sample["label"] == 1


def test_uniform_crop_video_bad_aug_index():
    with pytest.raises(ValueError, match="0, 1 or 2"):
        UniformCropVideo(4)({"input": torch.zeros(1, 8, 8, 3), "aug_index": 3})


def test_scale_center_crop_validation_transform():
    clip = _position_clip(1, 240, 320).to(torch.uint8)
    out = scale_center_crop(256, 256)(clip)
    assert tuple(out.shape) == (1, 256, 256, 3) and out.dtype == torch.uint8
    ref = CenterCrop(256)(ShortSideScale(256)(clip))
    assert torch.equal(out, ref)


# ----------------------------------------------------------------------------- dict wrappers


def _sample(inp):
    return {"input": inp, "label": 4, "idx": 9, "aug_index": 1, "clip_index": 0,
            "replaced": True, "video_name": "a/b", "meta": {"x": 1}}


def test_only_input_list_transform_each_clip_and_key_filtering():
    calls = []

    def t(clip):
        calls.append(clip)
        return clip + 1

    sample = _sample([torch.zeros(1), torch.ones(1)])
    out = OnlyInputListTransform(t)(sample)
    assert sorted(out) == ["aug_index", "clip_index", "idx", "input", "label", "replaced"]
    assert [v.item() for v in out["input"]] == [1.0, 2.0] and len(calls) == 2
    assert sample["input"][0].item() == 0 and "meta" in sample  # input sample untouched
    out = OnlyInputListTransform(t, extra_keys=["video_name"])(sample)
    assert out["video_name"] == "a/b"
    with pytest.raises(ValueError, match="only_input_list_transform"):
        OnlyInputListTransform(t)(_sample(torch.zeros(1)))


def test_rrc_in_list_wrapper_draws_independently():
    clip = torch.rand(2, 64, 64, 3) * 255
    t = OnlyInputListTransform(RandomResizedCrop(8, 8, scale=(0.05, 0.3), aspect_ratio=(0.75, 1.33)))
    torch.manual_seed(0)
    out = t({"input": [clip, clip], "label": 0, "idx": 0})
    assert not torch.equal(out["input"][0], out["input"][1])


def test_only_input_transform_and_dict_transform():
    out = OnlyInputTransform(lambda x: x * 2)(_sample(torch.full((1,), 3.0)))
    assert out["input"].item() == 6.0 and "video_name" not in out
    seen = {}

    def dict_t(sample):
        seen.update(sample)
        return {**sample, "label": sample["label"] + 1}

    clip = _position_clip(1, 8, 12)
    out = OnlyInputTransformWithDictTransform(lambda x: x[:, :, 2:], dict_t)(_sample(clip))
    assert seen["video_name"] == "a/b"  # the dict transform sees every key
    assert out["label"] == 5 and "video_name" not in out and out["replaced"] is True
    assert out["input"][0, 0, 0, 0].item() == 20


def test_eval_wrapper_with_uniform_crop_video():
    clip = _position_clip(1, 256, 340, torch.float32)
    t = OnlyInputTransformWithDictTransform(ShortSideScale(256), UniformCropVideo(256))
    out = t({"input": clip, "aug_index": 2, "label": 0, "idx": 3})
    assert out["input"][0, 0, 0, 0].item() == 84 * 10


def test_compose_order_and_errors():
    assert Compose([lambda x: x + 1, lambda x: x * 10])(1) == 20
    with pytest.raises(ValueError, match="compose"):
        Compose([lambda x: x, 3])
    with pytest.raises(ValueError, match="only_input_transform"):
        OnlyInputTransform("not a transform")


def test_cpu_transforms_build_by_name_and_pickle():
    import pickle

    from sce_core.testing import build_from_yaml

    t = build_from_yaml(
        """
_name_: only_input_list_transform
transform:
  _name_: random_resized_crop
  target_height: 16
  target_width: 16
  scale: [0.2, 0.766]
  aspect_ratio: [0.75, 1.3333]
  interpolation: bilinear
""", "transforms")
    assert isinstance(t.transform, RandomResizedCrop) and t.transform.scale == (0.2, 0.766)
    t = pickle.loads(pickle.dumps(t))  # DataLoader workers may pickle the transform
    out = t({"input": [torch.zeros(2, 20, 30, 3, dtype=torch.uint8)] * 2, "label": 1, "idx": 0})
    assert [tuple(c.shape) for c in out["input"]] == [(2, 16, 16, 3)] * 2
    ev = build_from_yaml(
        """
_name_: only_input_transform_with_dict_transform
transform: {_name_: short_side_scale, size: 8}
dict_transform: {_name_: uniform_crop_video, size: 8}
""", "transforms")
    out = ev({"input": _position_clip(1, 16, 24, torch.float32), "aug_index": 0, "label": 2, "idx": 1})
    assert tuple(out["input"].shape) == (1, 8, 8, 3)
