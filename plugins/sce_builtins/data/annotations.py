"""Annotation readers: CSV (1, 2 or 3 columns), JSON, and plain folders of encoded videos (docs/reference.md §5.2).

Every reader returns a list of :class:`VideoRecord` whose ``path`` is
``os.path.join(video_path_prefix, <annotated path>)`` and whose ``name`` is the annotated path.

CSV: one video per line, ``<path> [<label> [<num_frames>]]``, whitespace separated, no header.
The numeric columns are split off from the right, so paths may contain spaces; a path wrapped
in double quotes (pandas' quoting) is unquoted. The number of numeric columns is decided per
file: the count most lines end with (the smaller one on a tie), so ``my clip 12.mp4`` in a
1-column file stays a path and one malformed line never changes how the others parse.
Missing label: -1; missing frame count: None.
JSON: ``{"annotation": {"<path>": {"class": int, "num_frames": int}, ...}}``, sorted by path.
Folder: ``<dir>/<class>/<file>.{mp4,avi,mkv,webm}``; label = index of the class folder in the
sorted class folders.

Checks (CSV and JSON), all bad lines reported at once as one :class:`AnnotationError` naming
``file:line``: a line with fewer numeric columns than the file's (e.g. a label ``x``), a
negative label or one ``>= num_classes`` (when the class count is given), and a path that
leaves the data root ``video_path_prefix`` (``../x``, an absolute path elsewhere; checked on
the text of the path, symlinks are not followed) unless ``allow_outside_root``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sce_builtins.data.health import DataLayoutError, DataPathError
from sce_builtins.data.types import VideoRecord

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm")
SHOWN_PROBLEMS = 5
"""Bad lines quoted in an :class:`AnnotationError` (the rest are counted)."""

_COLUMNS = ("label", "num_frames")


class AnnotationError(DataLayoutError):
    """Annotation lines that cannot be used: one line quoting the first few as ``file:line``."""


@dataclass(frozen=True)
class RecordChecks:
    """What every record must satisfy: the data root and the number of classes.

    ``root`` is also the ``video_path_prefix`` joined in front of every annotated path.
    """

    root: str = ""
    allow_outside_root: bool = False
    num_classes: int | None = None

    def problems(self, name: str, path: str, label: int | None) -> list[str]:
        """Why a record is bad (empty: it is fine); ``label`` None when the file has none."""
        found = []
        if label is not None and label < 0:
            found.append(f"label {label} is negative")
        elif label is not None and self.num_classes is not None and label >= self.num_classes:
            found.append(f"label {label} is out of range for {self.num_classes} classes")
        if self.root and not self.allow_outside_root and not _inside(path, self.root):
            found.append(f"path {name!r} is outside the data root {self.root}")
        return found


def _inside(path: str, root: str) -> bool:
    root_abs = os.path.abspath(root)
    return os.path.commonpath([root_abs, os.path.abspath(path)]) == root_abs


def _raise_problems(source: str, problems: list[tuple[str, str]], checks: RecordChecks) -> None:
    """One :class:`AnnotationError` for ``(location, message)`` pairs, if there are any."""
    if not problems:
        return
    shown = "; ".join(f"{where}: {what}" for where, what in problems[:SHOWN_PROBLEMS])
    more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
    fix = "fix or remove these lines"
    if any("outside the data root" in what for _, what in problems):
        fix += " (or set allow_outside_root: true to use paths outside the data root)"
    raise AnnotationError(f"annotations: {len(problems)} bad line(s) in {source}: {shown}{more}; {fix}")


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


def _column_count(rows: Sequence[str]) -> int:
    """The numeric column count most rows have; the smaller one on a tie."""
    counts = Counter(_trailing_ints(r) for r in rows)
    return max(counts, key=lambda n: (counts[n], -n))


def _why_short(row: str, numeric: int) -> str:
    """Why ``row`` has fewer than ``numeric`` integer columns."""
    tokens = row.rsplit(None, numeric)
    if len(tokens) <= numeric:
        return f"expected a path and {numeric} number(s), got {row!r}"
    for column, token in zip(_COLUMNS, tokens[1:]):
        if not _is_int(token):
            return f"{column} {token!r} is not an integer"
    return f"cannot read {row!r}"  # pragma: no cover - a short row always has a bad token


def _unquote(path: str) -> str:
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1].replace('""', '"')
    return path


def parse_csv_lines(
    lines: Sequence[str], checks: RecordChecks = RecordChecks(), source: str = "<lines>"
) -> list[VideoRecord]:
    """Parse CSV annotation lines (see the module docstring) into records.

    ``source`` names the file in errors (``source:line``). Raises :class:`AnnotationError`
    listing every bad line.
    """
    rows = [(number, line.strip()) for number, line in enumerate(lines, start=1)]
    rows = [(number, r) for number, r in rows if r and not r.startswith("#")]
    if not rows:
        return []
    numeric = _column_count([r for _, r in rows])
    records, problems = [], []
    for number, row in rows:
        where = f"{source}:{number}"
        if _trailing_ints(row) < numeric:
            problems.append((where, _why_short(row, numeric)))
            continue
        path, *values = row.rsplit(None, numeric) if numeric else (row,)
        name = _unquote(path)
        label = int(values[0]) if numeric >= 1 else None
        num_frames = int(values[1]) if numeric >= 2 else None
        full = os.path.join(checks.root, name)
        problems += [(where, why) for why in checks.problems(name, full, label)]
        records.append(VideoRecord(full, -1 if label is None else label, num_frames, name))
    _raise_problems(source, problems, checks)
    return records


def read_csv(path: str | Path, checks: RecordChecks = RecordChecks()) -> list[VideoRecord]:
    """Read a CSV annotation file (bad lines: :class:`AnnotationError` with ``file:line``)."""
    with open(path, encoding="utf-8") as f:
        return parse_csv_lines(f.read().splitlines(), checks, source=str(path))


def read_json(path: str | Path, checks: RecordChecks = RecordChecks()) -> list[VideoRecord]:
    """Read a JSON annotation file ``{"annotation": {path: {"class", "num_frames"}}}``."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    entries = data.get("annotation", data) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ValueError(f"annotations: {path} must hold an object {{'annotation': {{path: info}}}}.")
    records, problems = [], []
    for name in sorted(entries):
        info = entries[name] or {}
        where = f"{path}: entry {name!r}"
        raw_label = info.get("class", info.get("label"))
        raw_frames = info.get("num_frames")
        if raw_label is not None and not _is_int(str(raw_label)):
            problems.append((where, f"label {raw_label!r} is not an integer"))
            continue
        if raw_frames is not None and not _is_int(str(raw_frames)):
            problems.append((where, f"num_frames {raw_frames!r} is not an integer"))
            continue
        label = None if raw_label is None else int(raw_label)
        full = os.path.join(checks.root, name)
        problems += [(where, why) for why in checks.problems(name, full, label)]
        num_frames = None if raw_frames is None else int(raw_frames)
        records.append(VideoRecord(full, -1 if label is None else label, num_frames, name))
    _raise_problems(str(path), problems, checks)
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


def load_annotations(
    source: str | Path,
    video_path_prefix: str = "",
    *,
    allow_outside_root: bool = False,
    num_classes: int | None = None,
) -> list[VideoRecord]:
    """Read annotations from a CSV/text file, a ``.json`` file or a folder of encoded videos.

    For a folder, ``video_path_prefix`` is ignored (paths are inside the folder).
    Raises :class:`DataPathError` (one line naming the path) when ``source`` does not exist,
    :class:`AnnotationError` (``file:line`` of the first bad lines) for unusable lines: see the
    module docstring; ``allow_outside_root`` accepts paths outside ``video_path_prefix`` and
    ``num_classes`` (when known) bounds the labels.
    """
    source = str(source)
    if not source:
        raise DataPathError("annotations: no annotation file given (dataset.datadir is empty).")
    if os.path.isdir(source):
        return scan_video_folder(source)
    if not os.path.isfile(source):
        raise DataPathError(f"annotations: annotation file or folder not found: {source}")
    read = read_json if source.lower().endswith(".json") else read_csv
    return read(source, RecordChecks(video_path_prefix, allow_outside_root, num_classes))
