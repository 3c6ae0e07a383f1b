"""Test helper run with `sce pretrain --code`: the Nth checkpoint write (SCE_TEST_KILL_AT_SAVE)
writes half of its bytes, then the process kills itself with SIGKILL, as a node failure or an
OOM kill in the middle of a save would."""

import io
import os
import signal

import torch

from sce_core import checkpoint_files

KILL_AT = int(os.environ["SCE_TEST_KILL_AT_SAVE"])
real_save = torch.save
calls = {"n": 0}


def save(obj, f, *args, **kwargs):
    calls["n"] += 1
    if calls["n"] < KILL_AT or not hasattr(f, "write"):
        return real_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)


checkpoint_files.torch.save = save
