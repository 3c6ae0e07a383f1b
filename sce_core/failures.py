"""Plugin load failures remembered across commands, shown while they are still current.

A command that meets a failure saves it in the cache (``plugin_failures.json``) with a
fingerprint of the files involved: the distribution's installed metadata and the source files
of the traceback. ``sce plugins``, ``sce list`` and the one-line notice of every command show a
saved failure only while its entry point is still installed and none of those files changed
(a fix, a re-install, a folder gone from ``sys.path`` all drop it). Nothing here imports a
plugin module.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Any

from sce_core import registries as reg
from sce_core.paths import cache_dir

FAILURES_FILE = "plugin_failures.json"


def _key(record: dict[str, Any]) -> tuple[str, str, str, str]:
    return (record["kind"], record["name"], reg.normalize_dist(record["dist"]), record["target"])


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _metadata_files(kind: str, name: str, dist: str) -> list[str]:
    """The installed metadata files of the distribution declaring ``kind/name``."""
    for ep in reg.scan_entry_points():
        owner = ep.dist.name if ep.dist is not None else ""
        if ep.group == reg.GROUP_PREFIX + kind and ep.name == name and owner == dist:
            folder = getattr(ep.dist, "_path", None)
            if folder is not None:
                return [str(Path(folder) / f) for f in ("entry_points.txt", "METADATA", "RECORD")]
    return []


def _fingerprint(entry: reg.Entry) -> dict[str, list[int] | None]:
    exc = entry.error
    files = _metadata_files(entry.kind, entry.name, entry.dist or "")
    if exc is not None:
        files += [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
        if isinstance(getattr(exc, "filename", None), str):
            files.append(exc.filename)  # a SyntaxError's file is not a frame
    return {f: _stat(f) for f in dict.fromkeys(files) if not f.startswith("<")}


def record_of(entry: reg.Entry) -> dict[str, Any]:
    """A failed entry as saved data (what ``sce plugins --json`` prints)."""
    return {"kind": entry.kind, "name": entry.name, "dist": entry.dist or "unknown",
            "provider": entry.provider, "target": entry.target or "",
            "error": f"{type(entry.error).__name__}: {entry.error}",
            "traceback": entry.error_traceback, "files": _fingerprint(entry)}


def _saved() -> list[dict[str, Any]]:
    try:
        data = json.loads((cache_dir() / FAILURES_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict) and {"kind", "name", "dist", "target"} <= set(r)]


def _installed() -> set[tuple[str, str, str, str]]:
    out = set()
    for ep in reg.scan_entry_points():
        dist = ep.dist.name if ep.dist is not None else "unknown"
        out.add((ep.group[len(reg.GROUP_PREFIX):], ep.name, reg.normalize_dist(dist), ep.value))
    return out


def _current(record: dict[str, Any], installed: set[tuple[str, str, str, str]]) -> bool:
    files = record.get("files") or {}
    return _key(record) in installed and all(_stat(f) == s for f, s in files.items())


def _loaded_now() -> set[tuple[str, str, str, str]]:
    """Entries this process imported successfully (their saved failures are over)."""
    state = reg.snapshot()
    return {(e.kind, e.name, reg.normalize_dist(e.dist or ""), e.target or "")
            for r in (state or {}).values() for e in r.entries() if e.obj is not None and e.dist}


def known_failures() -> list[dict[str, Any]]:
    """This process's failures, then the saved ones that are still current."""
    now = [record_of(e) for e in reg.load_failures()]
    seen = {_key(r) for r in now} | _loaded_now()
    installed = _installed()
    disabled = reg.disabled_dists()
    earlier = [r for r in _saved() if _key(r) not in seen and _current(r, installed)
               and reg.normalize_dist(r["dist"]) not in disabled]
    return now + earlier


def save() -> None:
    """Write the current failures (this process's and still-current saved ones) to the cache."""
    path = cache_dir() / FAILURES_FILE
    records = known_failures()
    try:
        if not records and not path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=2))
    except OSError:
        pass


def failed_keys() -> set[tuple[str, str, str]]:
    """``(kind, name, dist)`` of every known failure (for ``sce list``)."""
    return {(r["kind"], r["name"], reg.normalize_dist(r["dist"])) for r in known_failures()}
