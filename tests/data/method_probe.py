"""Test helper run with `sce pretrain --code` on 2 DDP ranks: each rank writes to
`<SCE_TEST_PROBE>/rank<R>.json` its first NT-Xent call (both views' local embeddings and the
loss), its first enqueued keys and target keys, its first step loss, and digests of its weights."""

import hashlib
import json
import os
from pathlib import Path

import torch
from sce_builtins.losses import ntxent
from sce_builtins.models import queue, siamese

OUT = Path(os.environ["SCE_TEST_PROBE"])
record: dict = {}


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


original_ntxent = ntxent.NTXentLoss.forward


def ntxent_forward(self, a, b, queue=None, k_global=None):
    loss = original_ntxent(self, a, b, queue, k_global)
    record.setdefault("ntxent", {"a": a.tolist(), "b": b.tolist(), "loss": float(loss), "temp": self.temp})
    return loss


original_enqueue = queue.FeatureQueue.enqueue


def enqueue(self, keys, gather=False):
    record.setdefault("enqueued", keys.tolist())
    original_enqueue(self, keys, gather)
    record.setdefault("queue_after", self.queue[: keys.shape[0]].tolist())


original_momentum_step = siamese.SiameseModel.momentum_shared_step


def momentum_shared_step(self, x):
    out = original_momentum_step(self, x)
    keys = record.setdefault("local_keys", [])
    if len(keys) < 2:  # the first step's two views
        keys.append(out["z"].tolist())
    return out


def on_train_end(self):
    params = torch.cat([p.detach().flatten() for p in self.learnable_params])
    record["weights"] = hashlib.sha256(params.numpy().tobytes()).hexdigest()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"rank{_rank()}.json").write_text(json.dumps(record))


ntxent.NTXentLoss.forward = ntxent_forward
queue.FeatureQueue.enqueue = enqueue
siamese.SiameseModel.momentum_shared_step = momentum_shared_step
siamese.SiameseModel.on_train_end = on_train_end
