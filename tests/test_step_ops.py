"""benchmarks/step_ops.py in reduced size: one real step cycle of the recipe counted on the CPU
(so the benchmark does not rot), and what it shows about our own code: no host read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_ops.py"
# Reads that stay on the host in a GPU run too: torchaug's CPU draws (``torch.rand(1).item()``)
# and its normalise value check, which runs only for CPU tensors.
CPU_ONLY_SITES = ("torchaug/batch_transforms/_transform.py", "transforms/functional/_misc.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ops")


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tmpdir")


@pytest.fixture(scope="module")
def counts(run_dir, temp_root):
    env = {**os.environ, "TMPDIR": str(temp_root)}
    out = subprocess.run([sys.executable, str(SCRIPT), "--reduced", "--json"], capture_output=True,
                         text=True, timeout=600, cwd=run_dir, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.timeout(700)
def test_the_benchmark_leaves_nothing_behind_in_the_temporary_folder(counts, temp_root, run_dir):
    # Each count fits the recipe with checkpoints (about 256 MB at full size): left behind, a few
    # dozen runs of the suite filled this machine's disk.
    assert counts["exact"]["ops"] > 0
    # (torch's own compile cache, torchinductor_<user>, may appear there: it is not ours)
    assert [p.name for p in temp_root.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert sorted(p.name for p in run_dir.iterdir()) == []


@pytest.mark.timeout(700)
def test_a_step_reads_nothing_on_the_host_outside_torchaug_cpu_draws(counts):
    for name in ("exact", "fast"):
        sites = counts[name]["reads_by_site"]
        assert sites, "the counter saw no read at all: it is not counting"
        assert all(site.split(" at ")[1].startswith(CPU_ONLY_SITES) for site in sites), sites
        assert counts[name]["host_reads"] <= 10


@pytest.mark.timeout(700)
def test_every_part_of_the_step_is_counted_and_batch_norm_is_emulated_for_8_ranks(counts):
    parts = counts["exact"]["ops_by_part"]
    for part in ("augmentations", "trunk forward", "heads forward", "loss", "backward", "optimizer",
                 "queue", "EMA", "batch norm"):
        assert parts.get(part, 0) > 0, parts
    assert counts["exact"]["ranks"] == 8
    assert parts["augmentations"] < 400  # the batched colour jitter: 168 ops whatever the batch
