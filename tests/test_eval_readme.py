"""The README's demo chain (export, fine-tuning and retrieval of the learned vs the random trunk,
one `sce results` table): its commands run as written on a reduced demo, and its table is
exactly what `sce results` prints for those values."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sce_builtins.tools.results import format_table, results_table
from tiny_demo import TINY

README = (Path(__file__).parents[1] / "README.md").read_text()
SECTION = README[README.index("### After the demo: fine-tuning and retrieval"):]
COMMANDS, TABLE = re.findall(r"```(?:bash)?\n(.*?)```", SECTION, re.S)[:2]

SYNTHETIC = [o for o in TINY if o.startswith("datamodule.synthetic.")]
FINETUNE = [*SYNTHETIC, *(o for o in TINY if o.startswith("datamodule.train.")),
            "datamodule.test.loader.num_workers=0", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
RETRIEVAL = [*SYNTHETIC, "datamodule.test.loader.num_workers=0", "model.bank.num_workers=0",
             "trainer.enable_progress_bar=false"]


def test_readme_demo_chain_runs_as_written_and_prints_one_table(cache, tmp_path):
    """The README's commands, verbatim, after a reduced demo; `sce` is the real command with the
    reduced sizes appended to `sce evaluate` (the same tiny synthetic set as the demo's)."""
    shell = (f'sce() {{ case "$1 $2" in\n'
             f'  "evaluate finetune") {sys.executable} -m sce_core.cli "$@" {" ".join(FINETUNE)};;\n'
             f'  "evaluate retrieval") {sys.executable} -m sce_core.cli "$@" {" ".join(RETRIEVAL)};;\n'
             f'  *) {sys.executable} -m sce_core.cli "$@";;\nesac; }}\n'
             f'set -e\nsce pretrain demo {" ".join(TINY)} trainer.max_epochs=1\n{COMMANDS}')
    proc = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    table = proc.stdout.splitlines()[-4:]
    assert table[0].split() == ["finetune/synthetic_videos", "retrieval/synthetic_videos"]
    assert table[1].split() == ["pretrained", "top1", "top5", "R@1", "R@5", "R@10", "R@20", "R@50"]
    assert table[2].split()[0] == "runs/demo/trunk.pt" and table[3].startswith("random init ")
    assert all(0.0 <= float(v) <= 100.0 for line in table[2:] for v in line.split()[-7:])
    assert sorted(p.parent.name for p in (tmp_path / "runs").glob("*/results.json")) == [
        "finetune_demo", "finetune_demo-1", "retrieval_demo", "retrieval_demo-1"]


def test_readme_table_is_what_sce_results_prints_for_its_values():
    lines = TABLE.strip("\n").splitlines()
    columns = [("finetune/synthetic_videos", m) for m in ("top1", "top5")] + [
        ("retrieval/synthetic_videos", m) for m in ("R@1", "R@5", "R@10", "R@20", "R@50")]
    records = []
    for line, pretrained in ((lines[2], os.path.abspath("runs/demo/trunk.pt")), (lines[3], None)):
        values = [float(v) / 100 for v in line.split()[-7:]]
        for protocol, names, part in (("finetune", ("top1", "top5"), values[:2]),
                                      ("retrieval", ("R@1", "R@5", "R@10", "R@20", "R@50"), values[2:])):
            records.append({"protocol": protocol, "metrics": dict(zip(names, part)),
                            "pretrained": pretrained, "dataset": "synthetic_videos", "split_id": None})
    found, rows = results_table(records)
    assert found == columns
    assert format_table(found, rows) == "\n".join(lines)
