"""JPEG backends: simplejpeg (fastest, accurate DCT), then OpenCV, then torchvision, then PIL.

A backend is a :class:`JpegBackend` with ``shape(data) -> (H, W)`` and
``decode_into(data, out)`` writing RGB uint8 into a preallocated ``(H, W, 3)`` array, so
clips are assembled in one numpy buffer without stacking. ``"auto"`` picks the first
importable backend in the order above; simplejpeg is a dependency of sce-core, so a default
install takes it (``benchmarks/data_loading.py --jpeg-backends`` times each one; all give the
same pixels as PIL). Decoders raise ``ValueError`` on corrupt data; callers wrap it in
``VideoDecodeError``.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np

BackendName = Literal["auto", "simplejpeg", "cv2", "torchvision", "pil"]
AUTO_ORDER = ("simplejpeg", "cv2", "torchvision", "pil")


def header_shape(data: bytes) -> tuple[int, int]:
    """``(H, W)`` from a JPEG header read by Pillow (``ValueError`` when unreadable)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except Exception as exc:  # PIL raises several types for garbage input
        raise ValueError(f"unreadable JPEG header ({exc})") from exc
    return h, w


class JpegBackend:
    """Interface of a JPEG backend (see module docstring)."""

    name = "base"

    def shape(self, data: bytes) -> tuple[int, int]:
        """Image height and width from the header."""
        raise NotImplementedError

    def decode_into(self, data: bytes, out: np.ndarray) -> None:
        """Decode RGB into ``out`` (H, W, 3) uint8; ``ValueError`` on corrupt or mismatched data."""
        raise NotImplementedError


class SimpleJpegBackend(JpegBackend):
    """libjpeg-turbo through simplejpeg, decoding straight into the output buffer."""

    name = "simplejpeg"

    def __init__(self) -> None:
        import simplejpeg

        self._sj = simplejpeg

    def shape(self, data: bytes) -> tuple[int, int]:
        h, w, _, _ = self._sj.decode_jpeg_header(data)
        return h, w

    def decode_into(self, data: bytes, out: np.ndarray) -> None:
        h, w, _, _ = self._sj.decode_jpeg_header(data)
        if (h, w) != out.shape[:2]:
            raise ValueError(
                f"frame size {h}x{w} differs from the clip's {out.shape[0]}x{out.shape[1]}"
            )
        self._sj.decode_jpeg(data, colorspace="RGB", buffer=out, strict=True)


class OpenCVBackend(JpegBackend):
    """OpenCV ``imdecode`` (RGB directly with OpenCV >= 4.10, else BGR + ``cvtColor``)."""

    name = "cv2"

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)

    def _decode(self, data: bytes) -> np.ndarray:
        buf = np.frombuffer(data, dtype=np.uint8)
        if self._rgb_flag is not None:
            img = self._cv2.imdecode(buf, self._rgb_flag)
        else:
            img = self._cv2.imdecode(buf, self._cv2.IMREAD_COLOR)
            if img is not None:
                img = self._cv2.cvtColor(img, self._cv2.COLOR_BGR2RGB)
        if img is None:
            raise ValueError("OpenCV could not decode the JPEG data")
        return img

    def shape(self, data: bytes) -> tuple[int, int]:
        return header_shape(data)

    def decode_into(self, data: bytes, out: np.ndarray) -> None:
        img = self._decode(data)
        if img.shape != out.shape:
            raise ValueError(f"frame shape {img.shape} differs from the clip's {out.shape}")
        out[...] = img


class TorchvisionBackend(JpegBackend):
    """torchvision's libjpeg-turbo ``decode_jpeg`` (the CPU side of the ``decode_on: gpu`` path).

    The header is not exposed by torchvision: ``shape`` decodes the frame and keeps it for the
    ``decode_into`` call on the same bytes that follows.
    """

    name = "torchvision"

    def __init__(self) -> None:
        import torch

        from sce_builtins.data.decoders.tv_jpeg import decode_jpeg_rgb

        self._torch = torch
        self._decode_rgb = decode_jpeg_rgb
        self._last: tuple[bytes, np.ndarray] | None = None

    def _decode(self, data: bytes) -> np.ndarray:
        last = self._last
        if last is not None and last[0] is data:
            return last[1]
        buf = self._torch.frombuffer(bytearray(data), dtype=self._torch.uint8)
        return self._decode_rgb(buf).permute(1, 2, 0).numpy()

    def shape(self, data: bytes) -> tuple[int, int]:
        img = self._decode(data)
        self._last = (data, img)
        return img.shape[0], img.shape[1]

    def decode_into(self, data: bytes, out: np.ndarray) -> None:
        img = self._decode(data)
        if img.shape != out.shape:
            raise ValueError(f"frame shape {img.shape} differs from the clip's {out.shape}")
        out[...] = img


class PilBackend(JpegBackend):
    """Pillow (always available); truncated files raise instead of being padded."""

    name = "pil"

    def __init__(self) -> None:
        from PIL import Image

        self._image = Image

    def shape(self, data: bytes) -> tuple[int, int]:
        return header_shape(data)

    def decode_into(self, data: bytes, out: np.ndarray) -> None:
        try:
            with self._image.open(io.BytesIO(data)) as img:
                img.load()
                arr = np.asarray(img.convert("RGB"))
        except Exception as exc:
            raise ValueError(f"PIL could not decode the JPEG data ({exc})") from exc
        if arr.shape != out.shape:
            raise ValueError(f"frame shape {arr.shape} differs from the clip's {out.shape}")
        out[...] = arr


_BACKENDS: dict[str, type[JpegBackend]] = {
    "simplejpeg": SimpleJpegBackend,
    "cv2": OpenCVBackend,
    "torchvision": TorchvisionBackend,
    "pil": PilBackend,
}


def make_backend(name: BackendName = "auto") -> JpegBackend:
    """Instantiate a backend by name; ``"auto"`` takes the first importable of :data:`AUTO_ORDER`."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            try:
                return _BACKENDS[candidate]()
            except ImportError:
                continue
        raise ImportError("no JPEG backend: install simplejpeg (pip install simplejpeg)")
    if name not in _BACKENDS:
        raise ValueError(
            f"frame decoder: jpeg_backend must be one of auto, {', '.join(_BACKENDS)}; got {name!r}"
        )
    try:
        return _BACKENDS[name]()
    except ImportError as exc:
        raise ValueError(
            f"frame decoder: jpeg_backend {name!r} is not importable ({exc}); use 'auto' or install it"
        ) from exc
