"""Where sce-core keeps its own files (no heavy imports: the CLI's light commands use it)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SCE_CACHE_DIR"


def cache_dir() -> Path:
    """sce-core's cache folder: ``SCE_CACHE_DIR``, default ``~/.cache/sce-core``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "sce-core")).expanduser()
