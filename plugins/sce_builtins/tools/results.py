"""``sce results DIR... [--markdown]``: the ``results.json`` of evaluation runs as one table
(a command of the built-ins, declared in ``sce.commands``).

Rows are the pretrained checkpoints (``random init`` for a trunk trained from scratch), columns
the metrics of each ``protocol/dataset`` (``-N`` for official split N), values in percent as
papers print them. When two runs fill the same cell the newest file is shown.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sce_core.runner import RESULTS_FILE

SCRATCH = "random init"


def find_results(folders: Iterable[Path]) -> list[Path]:
    """Every ``results.json`` under ``folders`` (recursively), oldest first."""
    from sce_core.errors import SCEError

    found = []
    for folder in folders:
        if not folder.exists():
            raise SCEError(f"sce results: '{folder}' does not exist; give run folders or a folder above them")
        found += [folder] if folder.is_file() else sorted(folder.rglob(RESULTS_FILE))
    return sorted(set(found), key=lambda p: (p.stat().st_mtime, str(p)))


def read_record(path: Path) -> dict[str, Any]:
    """One results record; a one-line error naming the file if it is not one."""
    from sce_core.errors import SCEError

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SCEError(f"sce results: cannot read {path}: {exc}; remove it or re-run the evaluation") from exc
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict) or "protocol" not in record:
        raise SCEError(f"sce results: {path} is not an `sce evaluate` record (needs protocol and metrics)")
    return record


def row_name(pretrained: str | None) -> str:
    """The checkpoint as shown: relative to the current folder when inside it."""
    if not pretrained:
        return SCRATCH
    try:
        relative = os.path.relpath(pretrained)
    except ValueError:  # another drive
        return pretrained
    return pretrained if relative.startswith("..") else relative


def column_group(record: dict[str, Any]) -> str:
    """``protocol/dataset``, with ``-split`` when the dataset has official splits."""
    dataset = str(record.get("dataset"))
    if record.get("split_id") is not None:
        dataset += f"-{record['split_id']}"
    return f"{record['protocol']}/{dataset}"


Column = tuple[str, str]  # (protocol/dataset, metric)


def results_table(records: Iterable[dict[str, Any]]) -> tuple[list[Column], list[list[str]]]:
    """``(columns, rows)``: one row per checkpoint (its name first, then values in percent),
    one column per protocol/dataset and metric; ``-`` where a checkpoint has no result."""
    cells: dict[tuple[str, Column], float] = {}
    rows: list[str] = []
    columns: list[Column] = []
    for record in records:
        row = row_name(record.get("pretrained"))
        rows += [row] if row not in rows else []
        for metric, value in record["metrics"].items():
            column = (column_group(record), metric)
            columns += [column] if column not in columns else []
            cells[row, column] = float(value)
    columns.sort(key=lambda c: (c[0], _metric_order(c[1])))
    rows.sort(key=lambda r: (r == SCRATCH, r))
    body = [[r, *(f"{100 * cells[r, c]:.1f}" if (r, c) in cells else "-" for c in columns)] for r in rows]
    return columns, body


def _metric_order(metric: str) -> tuple[int, str]:
    digits = "".join(ch for ch in metric if ch.isdigit())
    return (int(digits) if digits else 0, metric)


def format_table(columns: list[Column], rows: list[list[str]], markdown: bool = False) -> str:
    """Aligned text (a line of protocol/dataset groups above the metric names), or markdown."""
    if markdown:
        header = ["pretrained", *(f"{group} {metric}" for group, metric in columns)]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    header = ["pretrained", *(metric for _, metric in columns)]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    groups: list[tuple[str, list[int]]] = []
    for i, (group, _) in enumerate(columns, start=1):
        if groups and groups[-1][0] == group:
            groups[-1][1].append(i)
        else:
            groups.append((group, [i]))
    for group, members in groups:  # a group's label fits over its columns
        span = sum(widths[i] for i in members) + 2 * (len(members) - 1)
        widths[members[0]] += max(len(group) - span, 0)
    top = " " * widths[0]
    for group, members in groups:
        span = sum(widths[i] for i in members) + 2 * (len(members) - 1)
        top += "  " + group.ljust(span)

    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
    return "\n".join(text.rstrip() for text in [top, fmt(header), *map(fmt, rows)])


def build_parser() -> argparse.ArgumentParser:
    """The ``sce results`` argument parser."""
    parser = argparse.ArgumentParser(prog="sce results",
                                     description="The results of evaluation runs as one table (%).")
    parser.add_argument("folders", nargs="+", type=Path, help="run folders, or folders above them")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sce results ARGS``."""
    from sce_core.errors import SCEError

    args = build_parser().parse_args(argv)
    paths = find_results(args.folders)
    if not paths:
        raise SCEError(f"sce results: no {RESULTS_FILE} under {', '.join(map(str, args.folders))}; "
                       f"`sce evaluate PROTOCOL CONFIG` writes one into its run folder")
    columns, rows = results_table(read_record(p) for p in paths)
    print(format_table(columns, rows, args.markdown))
    return 0
