"""Annotation readers: CSV (1, 2 or 3 columns), JSON, and plain folders of encoded videos (spec 5.2).

Every reader returns a list of :class:`VideoRecord` whose ``path`` is
``os.path.join(video_path_prefix, <annotated path>)`` and whose ``name`` is the annotated path.

CSV: one video per line, ``<path> [<label> [<num_frames>]]``, whitespace separated, no header.
The numeric columns are split off from the right, so paths may contain spaces; a path wrapped
in double quotes (pandas' quoting) is unquoted. The number of columns is decided per file
(the numeric columns every line has), so ``my clip 12.mp4`` in a 1-column file stays a path.
Missing label: -1; missing frame count: None.
JSON: ``{"annotation": {"<path>": {"class": int, "num_frames": int}, ...}}``, sorted by path.
Folder: ``<dir>/<class>/<file>.{mp4,avi,mkv,webm}``; label = index of the class folder in the
sorted class folders.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from sce_builtins.data.health import DataPathError
from sce_builtins.data.types import VideoRecord

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm")


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _trailing_ints(line: str) -> int:
    """How many of the last two whitespace-separated tokens are integers (path kept non-empty)."""
    tokens = line.rsplit(None, 2)
    count = 0
    for token in reversed(tokens[1:]):
        if not _is_int(token):
            break
        count += 1
    return count


def _unquote(path: str) -> str:
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1].replace('""', '"')
    return path


def parse_csv_lines(lines: Sequence[str], video_path_prefix: str = "") -> list[VideoRecord]:
    """Parse CSV annotation lines (see the module docstring) into records."""
    rows = [line.strip() for line in lines]
    rows = [r for r in rows if r and not r.startswith("#")]
    if not rows:
        return []
    numeric = min(_trailing_ints(r) for r in rows)
    records = []
    for row in rows:
        if numeric == 0:
            path, values = row, []
        else:
            path, *values = row.rsplit(None, numeric)
        name = _unquote(path)
        label = int(values[0]) if numeric >= 1 else -1
        num_frames = int(values[1]) if numeric >= 2 else None
        records.append(VideoRecord(os.path.join(video_path_prefix, name), label, num_frames, name))
    return records


def read_csv(path: str | Path, video_path_prefix: str = "") -> list[VideoRecord]:
    """Read a CSV annotation file."""
    with open(path, encoding="utf-8") as f:
        return parse_csv_lines(f.read().splitlines(), video_path_prefix)


def read_json(path: str | Path, video_path_prefix: str = "") -> list[VideoRecord]:
    """Read a JSON annotation file ``{"annotation": {path: {"class", "num_frames"}}}``."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    entries = data.get("annotation", data) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ValueError(f"annotations: {path} must hold an object {{'annotation': {{path: info}}}}.")
    records = []
    for name in sorted(entries):
        info = entries[name] or {}
        label = int(info.get("class", info.get("label", -1)))
        num_frames = info.get("num_frames")
        records.append(
            VideoRecord(
                os.path.join(video_path_prefix, name),
                label,
                None if num_frames is None else int(num_frames),
                name,
            )
        )
    return records


def list_classes(folder: str | Path) -> list[str]:
    """Sorted names of the sub-folders of ``folder`` (the class folders)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def scan_video_folder(
    folder: str | Path, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> list[VideoRecord]:
    """Records of ``<folder>/<class>/<file>`` encoded videos, labels from sorted class folders."""
    folder = str(folder)
    exts = tuple(e.lower() for e in extensions)
    records = []
    for label, cls in enumerate(list_classes(folder)):
        files = sorted(
            e.name for e in os.scandir(os.path.join(folder, cls))
            if e.is_file() and e.name.lower().endswith(exts)
        )
        for file in files:
            name = f"{cls}/{file}"
            records.append(VideoRecord(os.path.join(folder, name), label, None, name))
    return records


def load_annotations(source: str | Path, video_path_prefix: str = "") -> list[VideoRecord]:
    """Read annotations from a CSV/text file, a ``.json`` file or a folder of encoded videos.

    For a folder, ``video_path_prefix`` is ignored (paths are inside the folder).
    Raises :class:`DataPathError` (one line naming the path) when ``source`` does not exist.
    """
    source = str(source)
    if not source:
        raise DataPathError("annotations: no annotation file given (dataset.datadir is empty).")
    if os.path.isdir(source):
        return scan_video_folder(source)
    if not os.path.isfile(source):
        raise DataPathError(f"annotations: annotation file or folder not found: {source}")
    if source.lower().endswith(".json"):
        return read_json(source, video_path_prefix)
    return read_csv(source, video_path_prefix)
