"""The batched ``batch_random_color_jitter``: torchvision's per-sample ops in each sample's
order, torchaug's distribution, a fixed op count and no host sync (issue 16)."""

from collections import Counter
from math import ceil

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from sce_builtins.transforms.color_jitter import BatchRandomColorJitter, decode_orders
from sce_builtins.transforms.gpu import BatchRandomColorJitter as FromGpu
from sce_builtins.transforms.gpu import BatchVideoWrapper
from torch.utils._python_dispatch import TorchDispatchMode
from torchaug import batch_transforms as tab

RECIPE = dict(brightness=0.8, contrast=0.8, saturation=0.4, hue=0.2)
ADJUST = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
SYNC_OPS = {"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select"}
MAX_OPS = 200  # measured: 166 for the recipe's four ops, at any batch size and num_rand_calls


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _reference(x: torch.Tensor, params) -> torch.Tensor:
    """torchvision's ops sample by sample, in each sample's order with its factors."""
    out = x.clone()
    for b in range(x.shape[0]):
        if params.apply[b]:
            y = x[b]
            for op in params.order[b].tolist():
                y = ADJUST[op](y, float(params.factors[b, op]))
            out[b] = y
    return out


def _images(shape, quantized: bool) -> torch.Tensor:
    x = torch.rand(shape, dtype=torch.float64 if len(shape) == 4 else torch.float32)
    # quantized: many gray pixels, ties for the maximum channel, 0 and 1 exactly
    return (x * 2).round() / 2 if quantized else x


def test_gpu_module_exports_the_batched_class():
    assert FromGpu is BatchRandomColorJitter


def test_decode_orders_gives_the_24_permutations():
    orders = decode_orders(torch.arange(24)).tolist()
    assert sorted(map(tuple, orders)) == sorted({tuple(o) for o in orders}) and len(orders) == 24
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)


@pytest.mark.parametrize("kwargs, p, num_rand_calls, shape, quantized", [
    (RECIPE, 0.8, -1, (16, 3, 9, 10), False),              # images, float64
    (RECIPE, 0.8, -1, (16, 3, 9, 10), True),
    (RECIPE, 1.0, 3, (6, 2, 2, 3, 5, 7), False),            # extra leading dims
    (RECIPE, 0.05, -1, (8, 3, 6, 6), False),               # p * B < 1
    (dict(brightness=0.3, contrast=0.5), 0.8, -1, (10, 3, 6, 6), False),  # the demo's
    (dict(hue=0.5), 0.7, 1, (10, 3, 6, 6), True),
    (dict(saturation=(0.0, 3.0), hue=(-0.1, 0.3)), 0.5, 2, (10, 3, 6, 6), False),
    (dict(contrast=0.9, brightness=(0.5, 2.5)), 0.9, -1, (10, 1, 6, 6), False),  # one channel
    (dict(saturation=0.4, hue=0.2), 0.9, -1, (10, 1, 6, 6), False),  # no-ops on one channel
])
def test_equals_per_sample_torchvision_reference(kwargs, p, num_rand_calls, shape, quantized):
    torch.manual_seed(0)
    t = BatchRandomColorJitter(p=p, num_rand_calls=num_rand_calls, **kwargs)
    x = _images(shape, quantized)
    params = t.sample_params(shape[0], x.device)
    out = t.jitter(x, params)
    assert out.dtype == x.dtype and out.shape == x.shape
    assert (out - _reference(x, params)).abs().max() <= 1e-5


def test_recipe_in_video_wrapper_equals_reference_per_video():
    """Inside ``batch_video_wrapper`` (same_on_frames, CTHW, in place) one draw per video, and
    contrast's mean is each frame's, as torchaug's (mean over the last 3 dims of (B, T, C, H, W))."""
    t = BatchRandomColorJitter(p=0.8, **RECIPE)
    wrapper = BatchVideoWrapper([t], same_on_frames=True, video_format="CTHW", inplace=True)
    x = torch.rand(12, 3, 4, 8, 9)
    frames = x.permute(0, 2, 1, 3, 4).clone()
    torch.manual_seed(5)
    params = t.sample_params(12, "cpu")  # forward draws exactly these from the same RNG state
    torch.manual_seed(5)
    out = wrapper(x)
    expected = _reference(frames, params).permute(0, 2, 1, 3, 4)
    assert (out - expected).abs().max() <= 1e-5
    assert params.apply.sum() in (9, 10)


def test_forward_draws_sample_params_and_keeps_unjittered_samples():
    t = BatchRandomColorJitter(p=0.5, **RECIPE)
    x = torch.rand(8, 3, 5, 5) * 3 - 1  # out of [0, 1]: untouched unless jittered
    torch.manual_seed(1)
    params = t.sample_params(8, "cpu")
    torch.manual_seed(1)
    out = t(x)
    assert torch.equal(out, t.jitter(x, params))
    assert torch.equal(out[~params.apply], x[~params.apply]) and params.apply.sum() == 4
    assert not torch.equal(out[params.apply], x[params.apply])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_and_inplace(dtype):
    t = BatchRandomColorJitter(p=1.0, inplace=True, **RECIPE)
    x = torch.rand(4, 3, 6, 6).to(dtype)
    ref_in = x.clone()
    torch.manual_seed(2)
    params = t.sample_params(4, "cpu")
    torch.manual_seed(2)
    out = t(x)
    assert out is x and out.dtype == dtype
    expected = _reference(ref_in.double(), params).to(dtype)
    tol = 1e-5 if dtype == torch.float64 else 1e-2
    assert (out.double() - expected.double()).abs().max() <= tol


def test_same_math_as_torchaug_for_fixed_factors():
    """With a one-value range and one op there is nothing random left but the selection."""
    x = torch.rand(6, 3, 7, 7)
    for kwargs in (dict(brightness=(1.6, 1.6)), dict(contrast=(0.3, 0.3)),
                   dict(saturation=(1.7, 1.7)), dict(hue=(0.27, 0.27)), dict(hue=(-0.4, -0.4))):
        ours = BatchRandomColorJitter(p=1.0, **kwargs)(x)
        theirs = tab.BatchRandomColorJitter(p=1.0, **kwargs)(x)
        assert (ours - theirs).abs().max() <= 1e-5, kwargs


def test_rejects_what_it_cannot_jitter():
    t = BatchRandomColorJitter(p=1.0, brightness=0.5)
    with pytest.raises(ValueError, match="batch_random_color_jitter: .*div_255"):
        t(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="batch_random_color_jitter"):
        t(torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="batch_random_color_jitter"):
        BatchRandomColorJitter(hue=0.8)
    x = torch.rand(3, 3, 4, 4)
    assert BatchRandomColorJitter(p=0.0, brightness=0.5)(x) is x
    assert torch.equal(BatchRandomColorJitter(p=1.0, brightness=0.5, num_rand_calls=0)(x), x)


# ----------------------------------------------------------------------------- distribution


def _draws(t: BatchRandomColorJitter, batch: int, calls: int, seed: int = 0):
    torch.manual_seed(seed)
    return [t.sample_params(batch, "cpu") for _ in range(calls)]


def test_factor_order_and_selection_distribution():
    t = BatchRandomColorJitter(p=0.8, **RECIPE)
    draws = _draws(t, 64, 300)
    counts = [int(d.apply.sum()) for d in draws]
    assert set(counts) == {51, 52}  # exactly floor or ceil of 0.8 * 64
    assert abs(sum(counts) / (64 * 300) - 0.8) < 0.01
    apply = torch.cat([d.apply for d in draws])
    factors = torch.cat([d.factors for d in draws])[apply]
    orders = Counter(map(tuple, torch.cat([d.order for d in draws])[apply].tolist()))
    assert len(orders) == 24
    expected = apply.sum().item() / 24
    assert all(0.8 * expected < n < 1.2 * expected for n in orders.values())
    for op, (low, high) in enumerate([(0.2, 1.8), (0.2, 1.8), (0.6, 1.4), (-0.2, 0.2)]):
        f = factors[:, op]
        assert low <= f.min() < low + 0.01 and high - 0.01 < f.max() <= high
        assert abs(f.mean() - (low + high) / 2) < 0.01 * (high - low)
        assert abs((f < (low + high) / 2).float().mean() - 0.5) < 0.02


@pytest.mark.parametrize("num_rand_calls", [-1, 1, 3, 24, 50])
def test_order_groups_as_torchaug(num_rand_calls):
    """``k`` groups: at most ``min(n, k, 24)`` distinct orders, ``ceil(n / groups)`` samples each."""
    t = BatchRandomColorJitter(p=0.75, num_rand_calls=num_rand_calls, **RECIPE)
    for batch in (4, 20, 64):
        for d in _draws(t, batch, 20, seed=batch):
            n = int(d.apply.sum())
            groups = min(n, 24 if num_rand_calls == -1 else num_rand_calls, 24)
            per_order = Counter(map(tuple, d.order[d.apply].tolist()))
            assert len(per_order) == groups and max(per_order.values()) == ceil(n / groups)


def test_fewer_than_one_sample_expected():
    t = BatchRandomColorJitter(p=0.1, **RECIPE)
    counts = [int(d.apply.sum()) for d in _draws(t, 4, 2000)]
    assert set(counts) == {0, 1} and abs(sum(counts) / 2000 - 0.1) < 0.02


# ----------------------------------------------------------------------------- ops dispatched


def _count(t: torch.nn.Module, x: torch.Tensor) -> Counter:
    with _OpCounter() as counter:
        t(x)
    return counter.ops


@pytest.mark.parametrize("p", [0.8, 1.0, 0.1])
def test_op_count_does_not_grow_and_nothing_syncs(p):
    counts = {}
    for num_rand_calls in (-1, 1, 5):
        t = BatchRandomColorJitter(p=p, num_rand_calls=num_rand_calls, inplace=True, **RECIPE)
        for batch in (4, 64):
            ops = _count(t, torch.rand(batch, 8, 3, 4, 4))
            assert not SYNC_OPS & set(ops), ops
            counts[num_rand_calls, batch] = sum(ops.values())
    assert len(set(counts.values())) == 1 and max(counts.values()) <= MAX_OPS, counts


def test_runs_on_fake_cuda_without_data_dependent_ops():
    """Fake CUDA tensors: a device mismatch or a read of a device value would raise."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        try:
            x = torch.empty(64, 8, 3, 16, 16, device="cuda")
        except (RuntimeError, AssertionError) as exc:  # a torch built without CUDA
            pytest.skip(f"no fake CUDA: {exc}")
        on_cpu = BatchRandomColorJitter(p=0.8, inplace=True, **RECIPE)  # buffers left on the CPU
        on_device = BatchRandomColorJitter(p=0.8, **RECIPE).to("cuda")
        assert on_cpu(x) is x
        assert on_device(x).device == x.device


def test_op_count_far_below_torchaug():
    x = torch.rand(64, 8, 3, 4, 4)
    ours = sum(_count(BatchRandomColorJitter(p=0.8, **RECIPE), x).values())
    theirs = sum(_count(tab.BatchRandomColorJitter(p=0.8, **RECIPE), x).values())
    assert ours <= MAX_OPS and 10 * ours < theirs
