"""Two real DDP processes (gloo) through the `sce pretrain` command: what must differ per rank
differs, what must agree agrees, and a bad-data limit stops every rank together."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from tiny_demo import TINY, sce

PROBE = Path(__file__).parent / "data" / "rank_probe.py"
DDP = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=1", "seed={}"]  # unseeded


def probe_run(root: Path, cache: Path, *args: str, bad: str = "0,0",
              timeout: float = 300) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = sce("pretrain", "demo", *TINY, *DDP, *args, f"dir.root={root}", "--code", str(PROBE),
               env={"SCE_TEST_PROBE": str(root / "probe"), "SCE_TEST_BAD_LOADS": bad,
                    "SCE_CACHE_DIR": str(cache)})
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out, time.monotonic() - start


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    cache = tmp_path_factory.getbasetemp() / "shared-cache"  # the session's (conftest.cache)
    code, out, _ = probe_run(root, cache, "trainer.sync_batchnorm=true", "model.shuffle_bn.enabled=true",
                             "trainer.log_every_n_steps=1")
    assert code == 0, out[-3000:]
    ranks = [json.loads((root / "probe" / f"rank{r}.json").read_text()) for r in range(2)]
    with open(root / "demo" / "logs" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return ranks, rows


@pytest.mark.timeout(400)
def test_each_rank_draws_its_own_augmentations(two_ranks):
    ranks, _ = two_ranks
    assert ranks[0]["rng_cpu"] != ranks[1]["rng_cpu"]  # the CPU generator (torchaug's decisions)
    assert ranks[0]["draws"] != ranks[1]["draws"]


@pytest.mark.timeout(400)
def test_shuffle_bn_stays_per_device_under_sync_batchnorm(two_ranks):
    ranks, _ = two_ranks
    for rank in ranks:
        assert rank["online_bn"] == ["GlobalBatchNorm"]
        assert rank["target_bn"] == ["SplitBatchNorm3d"]


@pytest.mark.timeout(400)
def test_the_queue_is_not_broadcast_by_ddp_and_stays_identical(two_ranks):
    ranks, _ = two_ranks
    for rank in ranks:
        assert rank["ddp_ignored"] == ["queue.ptr", "queue.queue"]
    assert ranks[0]["queue_start"] == ranks[1]["queue_start"]  # rank 0's, although unseeded
    assert ranks[0]["queue"] == ranks[1]["queue"]


@pytest.mark.timeout(400)
def test_the_epoch_loss_is_the_mean_over_ranks(two_ranks):
    ranks, rows = two_ranks
    epoch = [float(r["pretrain/loss_epoch"]) for r in rows if r.get("pretrain/loss_epoch")]
    assert len(epoch) == 1
    per_rank = [sum(r["losses"]) / len(r["losses"]) for r in ranks]
    assert per_rank[0] != per_rank[1]
    assert epoch[0] == pytest.approx(sum(per_rank) / 2, rel=1e-6)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("bad", ["2,2", "4,0"], ids=["under-the-limit-on-each-rank", "one-rank-only"])
def test_a_bad_sample_limit_stops_every_rank_at_once(cache, tmp_path, bad):
    code, out, seconds = probe_run(tmp_path, cache, "datamodule.max_bad_samples=3", bad=bad)
    assert code == 1, out[-3000:]
    assert seconds < 200
    total = sum(int(n) for n in bad.split(","))
    message = (f"data: {total} bad samples over all ranks in split 'train' epoch 0 exceed "
               f"max_bad_samples=3 (limit 3); last: missing")
    assert out.count(message) == 1, out[-3000:]  # both ranks raise it; rank 0 prints it
    assert not (tmp_path / "probe").exists()  # no rank trained to the end


@pytest.mark.timeout(400)
def test_sync_batchnorm_trains_under_bf16_mixed_precision(cache, tmp_path):
    """The fast recipe's combination (bf16-mixed with trainer.sync_batchnorm) on two ranks:
    GlobalBatchNorm keeps float32 statistics under autocast and warns about nothing."""
    proc = sce("pretrain", "demo", *TINY, *DDP, "trainer.sync_batchnorm=true", "trainer.precision=bf16-mixed",
               f"dir.root={tmp_path}", env={"SCE_CACHE_DIR": str(cache)})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "Warning" not in out, out[-3000:]
    assert (tmp_path / "demo" / "checkpoints" / "last.ckpt").exists()
