"""Clips decoded after transfer: the ``frame`` decoder's ``decode_on: gpu`` path.

Worker side: the decoder reads only the needed frames' bytes and returns one
:class:`DeferredClip` per window (shape from the first frame's header). CPU crops draw their
parameters exactly as on a decoded clip (they only read ``clip.shape``) and record the slice
and the resize instead of running them. The collate functions gather the clips of one batch
position into a :class:`DeferredBatch`: one uint8 buffer holding every distinct frame once.

Device side: ``DeferredBatch.to(device)`` (what Lightning's batch transfer calls) decodes every
distinct frame once with ``torchvision.io.decode_jpeg`` on a list (batched nvJPEG on a CUDA
device, libjpeg-turbo on the CPU), gathers each clip, computes time-difference images, casts to
float32 when ``decode_float``, replays the recorded crops on the device and returns the
``(B, C, T, H, W)`` batch the worker path gives. On the CPU the pixels are identical to the
worker path; nvJPEG's pixels are not bit-identical to libjpeg-turbo's.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sce_builtins.data.decoders.time_difference import difference_image_torch
from sce_builtins.data.decoders.tv_jpeg import decode_jpeg_batch

Op = tuple[Callable[..., torch.Tensor], tuple[Any, ...]]


def _sliced(size: int, index: Any) -> int:
    if not isinstance(index, slice):
        raise ValueError(f"decode_on: gpu: only slices can be deferred, got {index!r}")
    start, stop, step = index.indices(size)
    if step != 1:
        raise ValueError("decode_on: gpu: strided slices cannot be deferred")
    return max(stop - start, 0)


class DeferredClip:
    """One clip's encoded frames plus the crops to replay on them (a ``(T, H, W, 3)`` stand-in).

    Args:
        frames: JPEG bytes of the frames to gather (expanded ids for a time-difference clip).
        height: frame height (from the header).
        width: frame width.
        keep: time-difference keep mask over ``frames`` (None: a plain clip).
        decode_float: cast to float32 (values 0..255) before the crops, as the worker path.
    """

    ndim = 4

    def __init__(
        self,
        frames: Sequence[bytes],
        height: int,
        width: int,
        keep: np.ndarray | None = None,
        decode_float: bool = False,
        ops: tuple[Op, ...] = (),
        shape: tuple[int, int, int, int] | None = None,
    ) -> None:
        self.frames = list(frames)
        self.height, self.width = int(height), int(width)
        self.keep = keep
        self.decode_float = bool(decode_float)
        self.ops = ops
        t = len(self.frames) if keep is None else int(np.count_nonzero(keep))
        self.shape = shape or (t, self.height, self.width, 3)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.decode_float else torch.uint8

    def defer(self, fn: Callable[..., torch.Tensor], *args: Any, shape: tuple[int, ...]) -> DeferredClip:
        """A copy that also runs ``fn(clip, *args)`` on the device; ``shape`` is its output's."""
        return DeferredClip(self.frames, self.height, self.width, self.keep, self.decode_float,
                            self.ops + ((fn, args),), tuple(shape))

    def __getitem__(self, index: Any) -> DeferredClip:
        index = index if isinstance(index, tuple) else (index,)
        shape = tuple(_sliced(n, i) for n, i in zip(self.shape, index)) + self.shape[len(index):]
        return self.defer(operator.getitem, index, shape=shape)

    def clone(self) -> DeferredClip:
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"decode_on: gpu: a CPU transform used clip.{name}, but the clip is not decoded yet; "
            "only crops and resizes (random_resized_crop, random_crop, center_crop, uniform_crop, "
            "short_side_scale, random_short_side_scale) run before decoding; use decode_on: cpu")

    def finish(self, decoded: Sequence[torch.Tensor]) -> torch.Tensor:
        """The clip ``(C, T, H, W)`` from its decoded frames ``(3, H, W)``, crops replayed."""
        sizes = {tuple(f.shape) for f in decoded}
        if sizes != {(3, self.height, self.width)}:
            raise ValueError(f"decode_on: gpu: frames of one clip differ in size: {sorted(sizes)}")
        clip = torch.stack(list(decoded)).permute(0, 2, 3, 1)
        if self.keep is not None:
            clip = difference_image_torch(clip, self.keep)
        if self.decode_float:
            clip = clip.to(torch.float32)
        for fn, args in self.ops:
            clip = fn(clip, *args)
        return clip.permute(3, 0, 1, 2)

    def __repr__(self) -> str:
        return f"DeferredClip(shape={self.shape}, ops={len(self.ops)})"


class DeferredBatch:
    """The deferred clips of one batch position; ``to(device)`` decodes them there.

    Args:
        clips: the batch's clips, in batch order.
    """

    def __init__(self, clips: Sequence[DeferredClip]) -> None:
        index: dict[int, int] = {}
        blobs: list[bytes] = []
        self.clips = list(clips)
        self.frame_ids: list[list[int]] = []
        for clip in self.clips:
            ids = []
            for blob in clip.frames:
                if id(blob) not in index:
                    index[id(blob)] = len(blobs)
                    blobs.append(blob)
                ids.append(index[id(blob)])
            self.frame_ids.append(ids)
        self.offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()
        self.data = torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def num_frames(self) -> int:
        """Distinct frames decoded for this batch position."""
        return len(self.offsets) - 1

    def pin_memory(self) -> DeferredBatch:
        self.data = self.data.pin_memory()
        return self

    def to(self, device: torch.device | str, non_blocking: bool = False) -> torch.Tensor:
        """Decode on ``device`` and return the ``(B, C, T, H, W)`` clips."""
        chunks = [self.data[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]
        frames = decode_jpeg_batch(chunks, torch.device(device))
        return torch.stack(
            [clip.finish([frames[i] for i in ids]) for clip, ids in zip(self.clips, self.frame_ids)]
        )

    def __repr__(self) -> str:
        return f"DeferredBatch({len(self.clips)} clips, {self.num_frames} frames)"


def collate_deferred(batch: Sequence[DeferredClip], *, collate_fn_map: Any = None) -> DeferredBatch:
    """``torch.utils.data`` collate entry for :class:`DeferredClip`."""
    return DeferredBatch(batch)
