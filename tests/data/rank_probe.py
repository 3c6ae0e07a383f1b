"""Test helper run with `sce pretrain --code` on 2 DDP ranks: each rank writes what it saw to
`<SCE_TEST_PROBE>/rank<R>.json` (RNG streams, BatchNorm classes, DDP's ignored buffers, its
own step losses, its queue) and, when SCE_TEST_BAD_LOADS is "n0,n1", rank r's first n_r
training video loads fail (a missing file)."""

import hashlib
import json
import os
from pathlib import Path

import torch
from sce_builtins.data import dataset
from sce_builtins.models import sce

OUT = Path(os.environ["SCE_TEST_PROBE"])
BAD = [int(n) for n in os.environ.get("SCE_TEST_BAD_LOADS", "0,0").split(",")]
record = {"losses": [], "bad_loads": 0}


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


original_load = dataset.VideoDataset._load


def _load(self, current, rng):
    if self.split == "train" and record["bad_loads"] < BAD[_rank()]:
        record["bad_loads"] += 1
        raise FileNotFoundError(f"probe: planted missing video {current}")
    return original_load(self, current, rng)


original_train_start = sce.SCEModel.on_train_start


def on_train_start(self):
    original_train_start(self)
    record["rng_cpu"] = _digest(torch.get_rng_state())
    record["online_bn"] = sorted({type(m).__name__ for m in self.trunk.modules() if "Norm" in type(m).__name__})
    record["target_bn"] = sorted({type(m).__name__ for m in self.momentum_trunk.modules()
                                  if "Norm" in type(m).__name__})
    record["queue_start"] = _digest(self.queue.queue)
    record["ddp_ignored"] = sorted(getattr(self.trainer.strategy.model, "parameters_to_ignore", []))
    # The first GPU-transform draws of this rank (on a copy of the generator state).
    state = torch.get_rng_state()
    record["draws"] = torch.rand(4).tolist()
    torch.set_rng_state(state)


def on_train_batch_end(self, outputs, batch, batch_idx):
    record["losses"].append(float(outputs["loss"]))


def on_train_end(self):
    record["queue"] = _digest(self.queue.queue) if self.queue is not None else None
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"rank{_rank()}.json").write_text(json.dumps(record))


dataset.VideoDataset._load = _load
sce.SCEModel.on_train_start = on_train_start
sce.SCEModel.on_train_batch_end = on_train_batch_end
sce.SCEModel.on_train_end = on_train_end
