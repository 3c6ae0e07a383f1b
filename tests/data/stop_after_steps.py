"""Test helper run with `sce pretrain --code`: stop the run after `SCE_TEST_STOP_AFTER` optimizer
steps without touching any schedule (`trainer.max_steps` would shorten the momentum schedule's
horizon, so the first steps would no longer be the full run's)."""

import os

from sce_builtins.models import siamese

STOP_AFTER = int(os.environ["SCE_TEST_STOP_AFTER"])


def on_train_batch_end(self, outputs, batch, batch_idx):
    if self.trainer.global_step >= STOP_AFTER:
        self.trainer.should_stop = True


siamese.SiameseModel.on_train_batch_end = on_train_batch_end
