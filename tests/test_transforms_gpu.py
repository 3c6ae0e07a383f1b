"""GPU batch transforms (run here on CPU tensors): seed pipeline, known values, separable blur."""

import pytest
import torch
from sce_builtins.transforms.blur import BatchRandomGaussianBlur, separable_gaussian_blur
from sce_builtins.transforms.gpu import (
    ApplyTransformsOnList,
    BatchRandomColorJitter,
    BatchRandomGrayscale,
    BatchRandomHorizontalFlip,
    BatchRandomSolarize,
    BatchVideoWrapper,
    Div255,
    Normalize,
)
from sce_builtins.transforms.presets import Div255Normalize
from torchaug import batch_transforms as tab
from torchaug import transforms as ta

MEAN, STD = [0.45] * 3, [0.225] * 3


def _view(blur_p: float, solarize: bool) -> BatchVideoWrapper:
    """One view of the seed's model.train_transform."""
    ts = [
        Div255(inplace=True),
        BatchRandomColorJitter(brightness=0.8, contrast=0.8, hue=0.2, p=0.8, saturation=0.4, inplace=True),
        BatchRandomGrayscale(p=0.2, inplace=True),
        BatchRandomGaussianBlur(kernel_size=23, sigma=[0.1, 2.0], p=blur_p, inplace=True),
    ]
    if solarize:
        ts.append(BatchRandomSolarize(p=0.2, threshold=0.5, inplace=True))
    ts += [BatchRandomHorizontalFlip(p=0.5), Normalize(mean=MEAN, std=STD, inplace=True)]
    return BatchVideoWrapper(ts, same_on_frames=True, video_format="CTHW", inplace=True)


def _wrap(*ts) -> BatchVideoWrapper:
    return BatchVideoWrapper(list(ts), same_on_frames=True, video_format="CTHW", inplace=False)


def test_seed_pipeline_on_uint8_views():
    torch.manual_seed(0)
    t = ApplyTransformsOnList([_view(1.0, False), _view(0.1, True)])
    views = [torch.randint(0, 256, (5, 3, 2, 24, 24), dtype=torch.uint8) for _ in range(2)]
    out = t(views)
    assert len(out) == 2
    for v in out:
        assert v.shape == (5, 3, 2, 24, 24) and v.dtype == torch.float32
        assert torch.isfinite(v).all()
        # normalised [0, 1] data lies in [-2, 2.45]
        assert v.min() >= -0.45 / 0.225 - 1e-5 and v.max() <= 0.55 / 0.225 + 1e-5


def test_apply_transforms_on_list_length_check():
    t = ApplyTransformsOnList([Div255(), Div255()])
    with pytest.raises(ValueError, match="apply_transforms_on_list: got 3 views but 2 transforms"):
        t([torch.zeros(1, 3, 1, 2, 2)] * 3)
    with pytest.raises(ValueError, match="apply_transforms_on_list"):
        t(torch.zeros(2, 1, 3, 1, 2, 2))


def test_apply_transforms_on_list_view_i_through_transform_i():
    t = ApplyTransformsOnList([lambda x: x + 1, lambda x: x * 10])
    a, b = t([torch.ones(1), torch.ones(1)])
    assert a.item() == 2 and b.item() == 10


def test_div255_exact():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 16, 16)
    out = Div255()(x)
    assert out.dtype == torch.float32
    assert torch.equal(out, x.to(torch.float32) / 255)
    assert out.flatten()[255].item() == 1.0 and out.flatten()[51].item() == pytest.approx(0.2)
    f = torch.full((2,), 255.0)
    assert Div255(inplace=True)(f) is f and f.tolist() == [1.0, 1.0]
    g = torch.full((2,), 255.0)
    assert Div255(inplace=False)(g) is not g and g.tolist() == [255.0, 255.0]
    assert Div255(dtype="float64")(torch.tensor([51], dtype=torch.uint8)).dtype == torch.float64
    with pytest.raises(ValueError, match="div_255"):
        Div255(dtype="int8")


def test_normalize_values_inside_wrapper():
    x = torch.empty(2, 3, 2, 4, 4)
    x[:, 0], x[:, 1], x[:, 2] = 0.45, 0.675, 0.0
    out = _wrap(Normalize(mean=[0.45, 0.45, 0.45], std=[0.225, 0.225, 0.225]))(x)
    assert torch.allclose(out[:, 0], torch.zeros(2, 2, 4, 4))
    assert torch.allclose(out[:, 1], torch.ones(2, 2, 4, 4))
    assert torch.allclose(out[:, 2], torch.full((2, 2, 4, 4), -2.0))
    with pytest.raises(ValueError, match="normalize"):
        Normalize(mean=[0.5], std=[0.0])


def test_div255_normalize_matches_wrapper():
    x = torch.randint(0, 256, (3, 3, 2, 6, 6), dtype=torch.uint8)
    ref = _wrap(Div255(), Normalize(MEAN, STD))(x)
    out = Div255Normalize(MEAN, STD)(x)
    assert torch.equal(out, ref)
    both = Div255Normalize()([x, x])
    assert torch.equal(both[1], ref)


def test_solarize_p1_known_values():
    x = torch.tensor([0.2, 0.5, 0.7, 1.0]).view(1, 1, 1, 1, 4).expand(2, 3, 2, 1, 4).contiguous()
    out = _wrap(BatchRandomSolarize(threshold=0.5, p=1.0))(x)
    assert torch.allclose(out[1, 2, 1, 0], torch.tensor([0.2, 0.5, 0.3, 0.0]))


def test_grayscale_p1_known_values():
    x = torch.zeros(2, 3, 2, 1, 3)
    x[:, 0, :, 0, 0] = 1.0  # red
    x[:, 1, :, 0, 1] = 1.0  # green
    x[:, 2, :, 0, 2] = 1.0  # blue
    out = _wrap(BatchRandomGrayscale(p=1.0))(x)
    for c in range(3):
        assert torch.allclose(out[0, c, 1, 0], torch.tensor([0.2989, 0.587, 0.114]), atol=1e-6)


def test_flip_p1_and_same_on_frames():
    x = torch.arange(2 * 3 * 4 * 2 * 5, dtype=torch.float32).view(2, 3, 4, 2, 5)
    out = _wrap(BatchRandomHorizontalFlip(p=1.0))(x)
    assert torch.equal(out, x.flip(-1))
    # p = 0.5 on 2 videos: exactly one video is flipped, on all of its frames
    out = _wrap(BatchRandomHorizontalFlip(p=0.5))(x)
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(2)]
    same = [torch.equal(out[i], x[i]) for i in range(2)]
    assert sorted(flipped) == [False, True] and sorted(same) == [False, True]


def test_color_jitter_brightness_only_fixed_factor():
    x = torch.full((2, 3, 2, 2, 2), 0.6)
    out = _wrap(BatchRandomColorJitter(brightness=[0.5, 0.5], p=1.0))(x)
    assert torch.allclose(out, torch.full_like(x, 0.3))
    with pytest.raises(ValueError, match="batch_random_color_jitter"):
        BatchRandomColorJitter(hue=0.8)


def test_wrapper_accepts_plain_callables_and_forces_inplace():
    w = BatchVideoWrapper([Div255(inplace=False), lambda v: v * 2], video_format="CTHW")
    assert w.transforms[0].inplace is True
    out = w(torch.full((1, 3, 1, 2, 2), 51, dtype=torch.uint8))
    assert torch.allclose(out, torch.full((1, 3, 1, 2, 2), 0.4))
    with pytest.raises(ValueError, match="batch_video_wrapper"):
        BatchVideoWrapper([Div255()], video_format="HWC")
    with pytest.raises(ValueError, match="batch_video_wrapper"):
        BatchVideoWrapper([3])


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5])
def test_probability_checks(p):
    if p == 0.0:
        x = torch.rand(2, 3, 1, 4, 4)
        assert torch.equal(BatchRandomSolarize(0.5, p=p)(x), x)
        return
    with pytest.raises(ValueError, match="batch_random_solarize"):
        BatchRandomSolarize(0.5, p=p)


# ----------------------------------------------------------------------------- separable blur


@pytest.mark.parametrize("p", [1.0, 0.5, 0.1])
def test_separable_blur_equals_torchaug_same_rng(p):
    x = torch.rand(10, 2, 3, 28, 30)  # (B, T, C, H, W) as inside the video wrapper
    torch.manual_seed(123)
    ref = tab.BatchRandomGaussianBlur(23, (0.1, 2.0), p=p)(x.clone())
    torch.manual_seed(123)
    ours = BatchRandomGaussianBlur(23, [0.1, 2.0], p=p)(x.clone())
    assert torch.allclose(ours, ref, atol=2e-6, rtol=0)
    # exact-count selection: p * B samples, the same ones (sigma >= 0.5 so blurring shows)
    torch.manual_seed(7)
    ref = tab.BatchRandomGaussianBlur(23, (0.5, 2.0), p=p)(x.clone())
    torch.manual_seed(7)
    ours = BatchRandomGaussianBlur(23, [0.5, 2.0], p=p)(x.clone())
    changed = [not torch.equal(ours[i], x[i]) for i in range(10)]
    assert sum(changed) == round(p * 10)
    assert changed == [not torch.equal(ref[i], x[i]) for i in range(10)]
    assert torch.allclose(ours, ref, atol=2e-6, rtol=0)


def test_separable_blur_in_video_wrapper_matches_2d():
    x = torch.rand(4, 3, 2, 24, 24)
    torch.manual_seed(5)
    ref = _wrap(BatchRandomGaussianBlur(23, [0.1, 2.0], p=1.0, separable=False))(x)
    torch.manual_seed(5)
    ours = _wrap(BatchRandomGaussianBlur(23, [0.1, 2.0], p=1.0))(x)
    assert (ours - ref).abs().max().item() < 2e-6
    assert not torch.allclose(ours, x, atol=1e-3)


def test_separable_blur_fixed_sigmas_and_uint8():
    x = torch.rand(3, 2, 3, 26, 25)
    sigma = torch.tensor([0.3, 1.0, 2.0])
    ref = tab.functional.batch_gaussian_blur(x, [23, 23], sigma)
    assert (separable_gaussian_blur(x, 23, sigma) - ref).abs().max().item() < 2e-6
    x8 = (x * 255).to(torch.uint8)
    ref8 = tab.functional.batch_gaussian_blur(x8, [23, 23], sigma)
    out8 = separable_gaussian_blur(x8, 23, sigma)
    assert out8.dtype == torch.uint8
    # both round a float result; they may differ only where it sits at .5 within rounding noise
    assert (out8.int() - ref8.int()).abs().max().item() <= 1
    assert (out8 != ref8).float().mean().item() < 0.01


def test_separable_blur_delta_image_is_the_normalised_kernel():
    # A centred delta blurred with sigma 1 gives k(y) k(x), k = exp(-x^2/2) / sum on -11..11.
    x = torch.zeros(1, 1, 31, 31)
    x[0, 0, 15, 15] = 1.0
    out = separable_gaussian_blur(x, 23, torch.tensor([1.0]))
    k = torch.exp(-0.5 * torch.arange(-11, 12, dtype=torch.float32) ** 2)
    k = k / k.sum()
    assert torch.allclose(out[0, 0, 4:27, 4:27], k[:, None] * k[None, :], atol=1e-7)


def test_blur_bad_kernel():
    with pytest.raises(ValueError, match="batch_random_gaussian_blur"):
        BatchRandomGaussianBlur(22)


def test_torchaug_normalize_is_subclassed():
    assert isinstance(Normalize(MEAN, STD), ta.Normalize)
    assert isinstance(BatchRandomGaussianBlur(3), tab.BatchRandomGaussianBlur)


def test_seed_train_transform_builds_from_yaml_by_registry_names():
    from sce_core.testing import build_from_yaml

    views = []
    for blur_p, solarize in ((1.0, ""), (0.1, "\n  - {_name_: batch_random_solarize, p: 0.2, threshold: 0.5, inplace: true}")):
        views.append(f"""
- _name_: batch_video_wrapper
  same_on_frames: true
  video_format: CTHW
  inplace: true
  transforms:
  - {{_name_: div_255, inplace: true}}
  - {{_name_: batch_random_color_jitter, brightness: 0.8, contrast: 0.8, hue: 0.2, p: 0.8, saturation: 0.4, inplace: true}}
  - {{_name_: batch_random_grayscale, p: 0.2, inplace: true}}
  - {{_name_: batch_random_gaussian_blur, kernel_size: 23, sigma: [0.1, 2.0], p: {blur_p}, inplace: true}}{solarize}
  - {{_name_: batch_random_horizontal_flip, p: 0.5}}
  - {{_name_: normalize, mean: [0.45, 0.45, 0.45], std: [0.225, 0.225, 0.225], inplace: true}}""")
    t = build_from_yaml("_name_: apply_transforms_on_list\ntransforms:" + "".join(views), "transforms")
    assert isinstance(t, ApplyTransformsOnList) and len(t.transforms) == 2
    v0, v1 = t.transforms
    assert [type(m).__name__ for m in v1.transforms] == [
        "Div255", "BatchRandomColorJitter", "BatchRandomGrayscale", "BatchRandomGaussianBlur",
        "BatchRandomSolarize", "BatchRandomHorizontalFlip", "Normalize"]
    assert v0.transforms[3].p == 1.0 and v1.transforms[3].p == 0.1 and v1.transforms[3].separable
    assert v1.transforms[5].inplace is True  # forced by the wrapper
    out = t([torch.randint(0, 256, (2, 3, 2, 24, 24), dtype=torch.uint8) for _ in range(2)])
    assert [tuple(o.shape) for o in out] == [(2, 3, 2, 24, 24)] * 2
