"""sce_core.host_sync on two real gloo processes: sums and gathers over ranks, and the separate
gloo group a job on another backend (NCCL) gets for host values."""

from __future__ import annotations

import json
import tempfile
import warnings

import torch.distributed as dist
import torch.multiprocessing as mp

from sce_core import host_sync


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    sums = host_sync.sum_over_ranks([rank + 1, 10 * rank])
    gathered = host_sync.gather_objects({"rank": rank})
    default_group = host_sync.host_group() is dist.group.WORLD
    dist.get_backend = lambda *a, **k: "nccl"  # as on a GPU job: a gloo group of its own
    own = host_sync.host_group()
    again = host_sync.host_group() is own
    sums_own = host_sync.sum_over_ranks([1])
    host_sync._GROUP.clear()  # a cluster where gloo cannot be set up: the default group serves
    dist.new_group = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no interface"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback_sums = host_sync.sum_over_ranks([rank, 1])
    fallback_warned = any("no gloo group for host values (no interface)" in str(w.message) for w in caught)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"sums": sums, "gathered": gathered, "default_group": default_group,
                   "own_is_world": own is dist.group.WORLD, "again": again, "sums_own": sums_own,
                   "fallback_sums": fallback_sums, "fallback_warned": fallback_warned}, f)
    dist.destroy_process_group()


def test_two_ranks_agree_on_host_values():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(f"file://{tmp}/init", tmp), nprocs=2, join=True)
        ranks = [json.load(open(f"{tmp}/rank{r}.json")) for r in range(2)]
    for r in ranks:
        assert r["sums"] == [3, 10]
        assert r["gathered"] == [{"rank": 0}, {"rank": 1}]
        assert r["default_group"] is True  # a gloo job uses its own group
        assert r["own_is_world"] is False and r["again"] is True  # created once, then reused
        assert r["sums_own"] == [2]
        assert r["fallback_sums"] == [1, 2] and r["fallback_warned"] is True


def test_one_process_needs_no_group():
    assert host_sync.sum_over_ranks([4, 5]) == [4, 5]
    assert host_sync.gather_objects("x") == ["x"]
