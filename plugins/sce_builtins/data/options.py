"""Typed option groups of the data components: the keys a split, its loader, its dataset, a
and the synthetic dataset accept (a decoder's ``frame_filter``:
:class:`sce_builtins.data.decoders.frame_filter.FrameFilterOptions`).

They are the annotations of the components' parameters, so ``sce check`` validates these keys
like component arguments (closest names, allowed keys, types, bounds) with their config path.
A group reaches its component as a plain mapping; the component builds the nodes it holds
(a split's ``transform``, ``clip_sampler``, ``decoder``) when it sets the split up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypedDict

from sce_core.constraints import NonNegative, Positive, Range
from sce_core.slots import Component

CollateName = Literal["default", "multiple_samples"]


class LoaderOptions(TypedDict, total=False):
    """loader options"""

    drop_last: bool
    num_workers: Annotated[int, NonNegative]
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: Annotated[int, Positive] | None
    collate_fn: CollateName | Callable[..., Any] | None
    shuffle: bool
    timeout: Annotated[float, Range(ge=0)]
    multiprocessing_context: Literal["fork", "spawn", "forkserver"] | None
    batch_size: int  # ignored (with a warning): the split's global_batch_size sets it


class DatasetOptions(TypedDict, total=False):
    """dataset options"""

    datadir: str | None
    video_path_prefix: str | None
    max_retries: Annotated[int, NonNegative]
    short_videos: Literal["keep", "replace"]
    allow_outside_root: bool


class SplitOptions(TypedDict, total=False):
    """split options"""

    dataset: DatasetOptions
    transform: Component("transforms")  # type: ignore[valid-type]
    clip_sampler: Component("clip_samplers")  # type: ignore[valid-type]
    loader: LoaderOptions
    global_batch_size: Annotated[int, Positive]
    decoder: Component("decoders", args_param="decoder_args")  # type: ignore[valid-type]
    decoder_args: Mapping[str, Any] | None


class SyntheticOptions(TypedDict, total=False):
    """synthetic dataset options"""

    num_classes: Annotated[int, Range(1, 10)]
    train_per_class: Annotated[int, NonNegative]
    val_per_class: Annotated[int, NonNegative]
    frames: Annotated[int, Positive]
    size: Annotated[int, Range(ge=8)]
    fps: Annotated[float, Range(gt=0)]
    seed: int
    formats: list[Literal["frames", "mp4"]]
    digit_size: Annotated[int, Positive] | None
    speed: Annotated[float, Range(ge=0)]
    turn: Annotated[float, Range(0, 1)]
    jpeg_quality: Annotated[int, Range(1, 100)]
    crf: Annotated[int, Range(0, 51)]
    gop: Annotated[int, Positive]
    force: bool
