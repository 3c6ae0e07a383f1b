"""Never overwrite what the user made: the checks shared by every command that writes files.

A command refuses an existing output unless ``--force``; a folder a command fills over several
calls (a synthetic dataset, extracted frames) carries a small JSON marker file written when the
folder is created, and only a folder holding that marker counts as the command's own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sce_core.errors import SCEError

__all__ = ["OutputExistsError", "read_marker", "refuse_existing", "write_marker"]


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
    path = Path(folder) / name
    tmp = path.with_name(f"{name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
