"""Never overwrite what the user made: the checks shared by every command that writes files.

A command refuses an existing output unless ``--force``; a folder a command fills over several
calls (a synthetic dataset, extracted frames) carries a small JSON marker file written when the
folder is created, and only a folder holding that marker counts as the command's own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sce_core.errors import SCEError

__all__ = ["OutputExistsError", "atomic_torch_save", "atomic_write", "atomic_write_text",
           "read_marker", "refuse_existing", "write_marker"]

TEMP_SUFFIX = ".tmp"


class OutputExistsError(SCEError, FileExistsError):
    """An output that exists and that the command may not replace (``--force`` may allow it)."""


def refuse_existing(path: str | os.PathLike[str], force: bool, command: str) -> None:
    """Raise ``OutputExistsError`` when ``path`` exists and ``force`` is false."""
    target = Path(path)
    if not force and (target.exists() or target.is_symlink()):
        raise OutputExistsError(
            f"{command}: {target} already exists; choose another path or pass --force to "
            "overwrite it"
        )


def read_marker(folder: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """The JSON object of marker file ``name`` in ``folder``; ``None`` if absent or unreadable."""
    try:
        data = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(folder: str | os.PathLike[str], name: str, info: dict[str, Any]) -> None:
    """Write marker file ``name`` (a JSON object) into ``folder``, atomically."""
    atomic_write_text(Path(folder) / name, json.dumps(info, indent=1, sort_keys=True) + "\n")


def temp_path(path: Path) -> Path:
    """The hidden temporary file beside ``path`` that this process writes first."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(handle)`` into a temporary file beside it, flushed to
    disk and renamed onto ``path``: a kill at any moment leaves the previous file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """:func:`atomic_write` of ``torch.save(obj)``."""
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
