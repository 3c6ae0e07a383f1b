"""Test helper run with `sce pretrain --code`: the stop checkpoint takes SCE_TEST_SLOW_SAVE_S
seconds, long enough for a second signal to arrive during the save."""

import os
import time

from sce_core import checkpointing

SECONDS = float(os.environ["SCE_TEST_SLOW_SAVE_S"])
original = checkpointing.RunCheckpoint.save


def slow_save(self, trainer):
    if self.stop.requested:
        marker = os.environ.get("SCE_TEST_SAVING_MARKER")
        if marker:
            open(marker, "w").close()
        time.sleep(SECONDS)
    return original(self, trainer)


checkpointing.RunCheckpoint.save = slow_save
