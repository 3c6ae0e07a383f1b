"""Frame extraction: a folder of videos -> JPEG frame folders, with PyAV (no ffmpeg binary needed).

``IN/<class>/<file>.mp4`` (any depth) becomes ``OUT/<class>/<file stem>/00000001.jpg ...``, the
layout of docs/reference.md §5.1, like ``ffmpeg -i IN -vf scale=... -r FPS -q:v Q OUT/%08d.jpg``.

Resampling to ``fps`` (ffmpeg's ``-r`` with its default rounding to the nearest):
  * a frame's time is ``(pts - first pts) * time_base``; the video ends at the last frame's time
    plus its duration; the output has ``round(end * fps)`` frames (at least one);
  * output frame ``k`` (time ``k / fps``) is the input frame nearest in time (ties go to the
    earlier one): frames are duplicated when ``fps`` is above the source rate, dropped below it.
  * ``fps <= 0`` keeps every decoded frame.

Resizing: the short side becomes ``short_side`` and the other side ``round(other * short_side /
short)`` rounded to an even number (ffmpeg's ``scale=-2:256``), bicubic (ffmpeg's default);
``short_side <= 0`` keeps the size. Only frames that are written are converted.

JPEG quality: ffmpeg's ``-q:v`` (1 best .. 31 worst) is mapped to a libjpeg quality (1..100) by
``FFMPEG_Q_TO_JPEG_QUALITY``. The table was measured with PyAV's bundled FFmpeg: for each ``q`` the
luminance quantisation table written by the ``mjpeg`` encoder (the MPEG-1 intra matrix scaled by
``q / 8``) was compared with libjpeg's scaled standard table, and the quality with the smallest
squared log-ratio over the 63 AC entries was kept (``-q:v 1`` -> 96, ``2`` -> 92, ``5`` -> 80).
Chroma is 4:2:0 like ffmpeg's ``yuvj420p``. Encoding uses simplejpeg when installed, else PIL.

Resumable: a video is written to ``.<stem>.partial`` next to its final folder and renamed when
complete, so an existing final folder means done (skipped) and a leftover partial folder is redone.

Ownership: a new or empty output folder gets the marker file ``.sce-frames`` (the extraction
options, JSON) before anything else; a later call resumes into it when the options match. A
non-empty folder without the marker, or with other options, is refused unless ``force``; even
then existing video folders are kept as they are (skipped), never deleted.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from sce_core.outputs import OutputExistsError, read_marker, write_marker

__all__ = [
    "FFMPEG_Q_TO_JPEG_QUALITY",
    "MARKER",
    "ExtractionReport",
    "encode_jpeg",
    "extract_frames",
    "extract_video",
    "ffmpeg_q_to_jpeg_quality",
    "find_videos",
    "output_size",
]

FFMPEG_Q_TO_JPEG_QUALITY: dict[int, int] = {
    1: 96, 2: 92, 3: 87, 4: 82, 5: 80, 6: 76, 7: 72, 8: 67, 9: 62, 10: 57,
    11: 51, 12: 51, 13: 47, 14: 43, 15: 40, 16: 37, 17: 34, 18: 34, 19: 31, 20: 30,
    21: 28, 22: 27, 23: 26, 24: 25, 25: 23, 26: 22, 27: 20, 28: 19, 29: 18, 30: 16, 31: 16,
}  # fmt: skip

MARKER = ".sce-frames"
"""File written first into an output folder ``extract_frames`` creates (its options, JSON)."""

# not videos: skipped while walking the input folder (as the reference script skips .txt)
_NOT_VIDEO = {".txt", ".csv", ".json", ".md", ".jpg", ".jpeg", ".png", ".py", ".sh", ".log"}


def ffmpeg_q_to_jpeg_quality(q: int) -> int:
    """libjpeg quality (1..100) matching ffmpeg's ``-q:v q`` (1..31); see the module docstring."""
    if int(q) != q or not 1 <= q <= 31:
        raise ValueError(
            f"frames: quality {q} is not an ffmpeg -q:v value; use an integer in 1..31"
        )
    return FFMPEG_Q_TO_JPEG_QUALITY[int(q)]


def encode_jpeg(rgb: np.ndarray, quality: int, subsampling: str = "420") -> bytes:
    """Encode an ``(H, W, 3)`` uint8 RGB image as JPEG (simplejpeg if installed, else PIL)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    try:
        import simplejpeg
    except ImportError:
        simplejpeg = None
    if simplejpeg is not None:
        return simplejpeg.encode_jpeg(
            rgb, quality=int(quality), colorspace="RGB", colorsubsampling=subsampling
        )
    from PIL import Image

    pil_sub = {"444": 0, "422": 1, "420": 2}[subsampling]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality), subsampling=pil_sub)
    return buf.getvalue()


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Size after scaling the short side to ``short_side`` with an even other side."""
    if short_side <= 0:
        return width, height
    if width <= height:
        other = 2 * max(1, round(height * short_side / width / 2))
        return short_side, other
    other = 2 * max(1, round(width * short_side / height / 2))
    return other, short_side


def _resampled(
    frames: Iterator[Any], time_base: Fraction, fps: Fraction | None, default_duration: Fraction
) -> Iterator[Any]:
    """Yield ``(input index, frame)`` at ``fps`` (nearest in time), or every frame if ``fps`` is None."""
    if fps is None:
        yield from enumerate(frames)
        return
    prev = prev_t = None
    prev_index = -1
    origin = None
    k = 0
    last_dur = default_duration
    for index, frame in enumerate(frames):
        if frame.pts is None:
            t = index * default_duration
        else:
            if origin is None:
                origin = frame.pts
            t = (frame.pts - origin) * time_base
        if frame.duration:
            last_dur = frame.duration * time_base
        if prev is not None:
            if t <= prev_t:  # out-of-order or duplicate timestamp: keep the earlier frame
                continue
            midpoint = (prev_t + t) / 2
            while Fraction(k) / fps <= midpoint:
                yield prev_index, prev
                k += 1
        prev, prev_t, prev_index = frame, t, index
    if prev is None:
        return
    total = max(1, round((prev_t + last_dur) * fps))
    while k < total:
        yield prev_index, prev
        k += 1


def extract_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    fps: float = 30,
    short_side: int = 256,
    quality: int = 1,
    pattern: str = "%08d.jpg",
) -> int:
    """Extract one video's frames into the folder ``dst`` (created); return the frame count.

    ``quality`` is ffmpeg's ``-q:v`` scale (1..31). Raises ``ValueError`` for a file without a
    video stream or without decodable frames, PyAV errors for unreadable files.
    """
    import av

    jpeg_quality = ffmpeg_q_to_jpeg_quality(quality)
    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    rate = Fraction(str(fps)) if fps and fps > 0 else None
    count = 0
    with av.open(str(src)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.thread_count = 1
        time_base = stream.time_base or Fraction(1, 1000)
        avg = stream.average_rate or stream.guessed_rate
        default_duration = 1 / Fraction(avg) if avg else (1 / rate if rate else Fraction(1, 30))
        size = None
        cached_index, cached_jpeg = -1, b""
        for index, frame in _resampled(container.decode(stream), time_base, rate, default_duration):
            if size is None:
                size = output_size(frame.width, frame.height, short_side)
            if index != cached_index:
                if (frame.width, frame.height) == size:
                    rgb = frame.to_ndarray(format="rgb24")
                else:
                    rgb = frame.reformat(
                        width=size[0], height=size[1], format="rgb24", interpolation="BICUBIC"
                    ).to_ndarray()
                cached_index, cached_jpeg = index, encode_jpeg(rgb, jpeg_quality)
            count += 1
            (out / (pattern % count)).write_bytes(cached_jpeg)
    if count == 0:
        raise ValueError("no decodable video frames")
    return count


def find_videos(in_dir: str | os.PathLike[str]) -> list[Path]:
    """Every non-hidden file under ``in_dir`` (recursive, sorted) that is not a text/image file."""
    root = Path(in_dir)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() not in _NOT_VIDEO:
                found.append(Path(dirpath) / name)
    return found


@dataclass
class ExtractionReport:
    """What ``extract_frames`` did: counts and the videos it could not read."""

    extracted: int = 0
    already_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _extract_one(
    src: str, final: str, fps: float, short_side: int, quality: int, pattern: str
) -> tuple[str, str | None]:
    """Worker task: extract into a partial folder, rename when complete; never raises."""
    final_path = Path(final)
    partial = final_path.with_name(f".{final_path.name}.partial")
    try:
        if partial.exists():
            shutil.rmtree(partial)
        extract_video(src, partial, fps, short_side, quality, pattern)
        os.replace(partial, final_path)
        return src, None
    except Exception as exc:  # noqa: BLE001 - any unreadable video is reported, not fatal
        shutil.rmtree(partial, ignore_errors=True)
        reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        return src, reason


def _claim_output(out_dir: Path, options: dict[str, Any], force: bool) -> None:
    """Create ``out_dir`` with the marker, or check it is ours with the same options."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"sce data frames: {out_dir} exists and is not a folder")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        write_marker(out_dir, MARKER, options)
        return
    marker = read_marker(out_dir, MARKER)
    if force or marker == options:
        return
    if marker is None:
        raise OutputExistsError(
            f"sce data frames: {out_dir} is not empty and was not created by sce data frames "
            f"(no {MARKER} marker); choose a new folder or pass --force to add frames to it"
        )
    changed = ", ".join(f"{k}={marker.get(k)!r}" for k in options if marker.get(k) != options[k])
    raise OutputExistsError(
        f"sce data frames: {out_dir} was extracted with other options ({changed}); use the "
        "same options to resume, a new folder, or pass --force to add frames to it"
    )


def extract_frames(
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    fps: float = 30,
    short_side: int = 256,
    quality: int = 1,
    workers: int | None = None,
    pattern: str = "%08d.jpg",
    progress: bool = True,
    force: bool = False,
) -> ExtractionReport:
    """Extract every video under ``in_dir`` into ``out_dir`` in parallel; resumable.

    Videos whose final folder exists are skipped; unreadable ones are listed in the report.
    ``workers`` processes (default: CPU count); 1 runs in this process. ``out_dir`` must be new,
    empty or created earlier by this function with the same options (its ``MARKER`` file);
    ``force`` writes into any other folder (existing video folders are still skipped).
    """
    src_root, dst_root = Path(in_dir), Path(out_dir)
    if not src_root.is_dir():
        raise ValueError(f"frames: input folder {src_root} does not exist")
    ffmpeg_q_to_jpeg_quality(quality)
    try:
        pattern % 1
    except (TypeError, ValueError):
        raise ValueError(
            f"frames: pattern {pattern!r} needs one integer field, e.g. %08d.jpg"
        ) from None
    options = dict(created_by="sce data frames", fps=float(fps), short_side=int(short_side),
                   quality=int(quality), pattern=pattern)
    _claim_output(dst_root, options, force)
    report = ExtractionReport()
    todo: list[tuple[str, str]] = []
    seen: dict[Path, Path] = {}
    for video in find_videos(src_root):
        rel = video.relative_to(src_root)
        final = dst_root / rel.parent / rel.stem
        if final in seen:
            report.failed.append((str(video), f"same output folder as {seen[final]}"))
            continue
        seen[final] = video
        if final.is_dir():
            report.already_done += 1
        else:
            todo.append((str(video), str(final)))
    for _, final in todo:
        Path(final).parent.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="video", desc="frames", file=sys.stderr)

    def record(result: tuple[str, str | None]) -> None:
        src, reason = result
        if reason is None:
            report.extracted += 1
        else:
            report.failed.append((src, reason))
        if bar is not None:
            bar.update()

    try:
        if workers == 1 or len(todo) <= 1:
            for src, final in todo:
                record(_extract_one(src, final, fps, short_side, quality, pattern))
        else:
            with ProcessPoolExecutor(
                min(workers, len(todo)), mp_context=get_context("spawn")
            ) as pool:
                futures = [
                    pool.submit(_extract_one, src, final, fps, short_side, quality, pattern)
                    for src, final in todo
                ]
                for future in as_completed(futures):
                    record(future.result())
    finally:
        if bar is not None:
            bar.close()
    report.failed.sort()
    return report
