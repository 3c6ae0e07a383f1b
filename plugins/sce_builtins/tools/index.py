"""Annotation CSVs for a split folder (docs/reference.md §5.2), safe with spaces in names.

* Frame folders ``SPLIT_DIR/<class>/<video>/<frames>`` -> lines ``<class>/<video> <label> <num_frames>``.
* Encoded videos ``SPLIT_DIR/<class>/<file>.mp4|.avi|.mkv|.webm`` -> lines ``<class>/<file> <label>``.

Classes are the sorted (by code point) non-hidden sub-folders; a class's label is its position in
that order. ``num_frames`` counts the ``.jpg``/``.jpeg``/``.png`` files of the video folder.
Hidden entries (leading ``.``, e.g. the partial folders of ``sce data frames``) are ignored.

An existing CSV is never overwritten unless ``force`` (``sce data index --force``).

Spaces: paths are written as they are, never quoted. The reader splits each line from the right
(at most twice), so ``my class/my video 3 120`` reads back as path ``my class/my video``. What
whitespace splitting cannot carry is refused with a one-line error: a name holding a line break,
and a path starting or ending with whitespace (the split would strip it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from sce_core.outputs import atomic_write_text, refuse_existing

__all__ = [
    "FRAME_SUFFIXES",
    "VIDEO_SUFFIXES",
    "list_classes",
    "write_frame_index",
    "write_video_index",
]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm")


def _visible(entries: Iterable[os.DirEntry[str]]) -> list[os.DirEntry[str]]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def list_classes(split_dir: str | os.PathLike[str]) -> list[str]:
    """Sorted class folder names of a split (labels are their positions)."""
    root = Path(split_dir)
    if not root.is_dir():
        raise ValueError(f"index: split folder {root} does not exist")
    with os.scandir(root) as it:
        return [e.name for e in _visible(it) if e.is_dir()]


def _check_path(rel: str) -> str:
    if "\n" in rel or "\r" in rel:
        raise ValueError(f"index: name {rel!r} holds a line break; rename it")
    if rel != rel.strip():
        raise ValueError(
            f"index: path {rel!r} starts or ends with whitespace, which the CSV cannot keep; rename it"
        )
    return rel


def _write_lines(out_csv: Path, lines: list[str]) -> None:
    atomic_write_text(out_csv, "".join(line + "\n" for line in lines))


def write_frame_index(
    split_dir: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    warn: bool = True,
    force: bool = False,
) -> int:
    """Write the 3-column CSV of a frame-folder split; return the number of lines.

    Video folders without frames are left out (with a warning on stderr when ``warn``). An
    existing ``out_csv`` raises ``OutputExistsError`` unless ``force``.
    """
    refuse_existing(out_csv, force, "sce data index")
    root = Path(split_dir)
    lines: list[str] = []
    empty: list[str] = []
    for label, cls in enumerate(list_classes(root)):
        with os.scandir(root / cls) as it:
            videos = [e.name for e in _visible(it) if e.is_dir()]
        for video in videos:
            rel = _check_path(f"{cls}/{video}")
            with os.scandir(root / cls / video) as it:
                count = sum(
                    1
                    for e in it
                    if not e.name.startswith(".") and e.name.lower().endswith(FRAME_SUFFIXES)
                )
            if count == 0:
                empty.append(rel)
                continue
            lines.append(f"{rel} {label} {count}")
    if empty and warn:
        print(
            f"index: left out {len(empty)} video folder(s) without frames, e.g. {empty[0]}",
            file=sys.stderr,
        )
    _write_lines(Path(out_csv), lines)
    return len(lines)


def write_video_index(
    split_dir: str | os.PathLike[str], out_csv: str | os.PathLike[str], force: bool = False
) -> int:
    """Write the 2-column CSV of a folder of encoded videos; return the number of lines.

    An existing ``out_csv`` raises ``OutputExistsError`` unless ``force``.
    """
    refuse_existing(out_csv, force, "sce data index")
    root = Path(split_dir)
    lines: list[str] = []
    for label, cls in enumerate(list_classes(root)):
        with os.scandir(root / cls) as it:
            files = [
                e.name
                for e in _visible(it)
                if e.is_file() and e.name.lower().endswith(VIDEO_SUFFIXES)
            ]
        lines.extend(f"{_check_path(f'{cls}/{name}')} {label}" for name in files)
    _write_lines(Path(out_csv), lines)
    return len(lines)
