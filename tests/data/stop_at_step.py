"""Test helper run with `sce pretrain --code`: at optimizer step SCE_TEST_STOP_STEP, each rank
writes `<SCE_TEST_MARKERS>/rank<R>` (its pid) and waits until a signal from outside reached it
(or, on a rank the test does not signal, until the stop flag arrives through the collective),
so the test can send a real SIGTERM at a known step."""

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
        wait_for_signal = str(trainer.global_rank) in os.environ.get("SCE_TEST_SIGNALLED_RANKS", "0,1")
        while wait_for_signal and not self.stop.requested and time.monotonic() < deadline:
            time.sleep(0.05)
    return original(self, trainer, pl_module, *args)


checkpointing.RunCheckpoint.on_train_batch_end = on_train_batch_end
