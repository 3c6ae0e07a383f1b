"""Checkpoint files: atomic writes, leftovers of killed writers, finding the newest complete one.

Every checkpoint is written to a hidden temporary file in its own folder, flushed to disk and
renamed into place, so a kill at any moment leaves the previous complete file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from sce_core.outputs import TEMP_SUFFIX, atomic_torch_save

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "is_resumable", "newest_checkpoint",
           "remove_stale_temp_files"]

log = logging.getLogger("sce")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose local writes are atomic (:func:`atomic_torch_save`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temporary checkpoint files that a killed process of ours left in ``folder``.

    Only names this module writes (``.<name>.<pid>.tmp``) whose process no longer runs.
    """
    removed = []
    for tmp in folder.glob(f".*{TEMP_SUFFIX}") if folder.is_dir() else ():
        pid = tmp.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_resumable(path: Path) -> bool:
    """Whether ``path`` is a complete Lightning training checkpoint (weights, loops, optimizer)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - truncated, empty or foreign file
        return False
    return isinstance(ckpt, dict) and "state_dict" in ckpt and "loops" in ckpt


def newest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder`` (by modification time), or None."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.rglob("*.ckpt") if p.is_file() and not p.name.startswith(".")]
    for path in sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        if is_resumable(path):
            return path
        log.warning("resume: skipping %s: not a complete training checkpoint", path)
    return None
