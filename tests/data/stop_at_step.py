"""Test helper run with `sce pretrain --code`: at optimizer step SCE_TEST_STOP_STEP, each rank
writes `<SCE_TEST_MARKERS>/rank<R>` (its pid) and waits until a signal from outside reached it,
so the test can send a real SIGTERM at a known step. Optional SCE_TEST_SLEEP_S slows steps."""

import os
import time
from pathlib import Path

from sce_core import checkpointing

STEP = int(os.environ["SCE_TEST_STOP_STEP"])
MARKERS = Path(os.environ["SCE_TEST_MARKERS"])
original = checkpointing.RunCheckpoint.on_train_batch_end


def on_train_batch_end(self, trainer, pl_module, *args):
    if trainer.global_step == STEP and not self.stop.requested:
        MARKERS.mkdir(parents=True, exist_ok=True)
        (MARKERS / f"rank{trainer.global_rank}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not self.stop.requested and time.monotonic() < deadline:
            time.sleep(0.05)
    return original(self, trainer, pl_module, *args)


checkpointing.RunCheckpoint.on_train_batch_end = on_train_batch_end
