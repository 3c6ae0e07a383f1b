"""A test-only reduction of configs/demo.yaml (a few tiny videos, a tiny batch and queue) and
the `sce` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

TINY = [
    "datamodule.synthetic.num_classes=4",
    "datamodule.synthetic.train_per_class=6",
    "datamodule.synthetic.val_per_class=3",
    "datamodule.synthetic.frames=24",
    "datamodule.synthetic.size=16",
    "datamodule.train.transform.transform.target_height=16",
    "datamodule.train.transform.transform.target_width=16",
    "datamodule.train.global_batch_size=8",
    "datamodule.train.loader.num_workers=0",
    "model.queue.size=32",
    "model.optimizer.scheduler.params.warmup_epochs=1",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
]


def sce(*args: str, env: dict | None = None) -> subprocess.Popen:
    """The real `sce` command in a subprocess (output and errors in one text stream)."""
    return subprocess.Popen([sys.executable, "-m", "sce_core.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
