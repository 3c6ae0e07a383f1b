"""Every evaluation gives the same numbers on 1 process and on 2 DDP processes (gloo, CPU), through
the real `sce` command, on test splits of 9 videos (the distributed sampler pads one rank)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_data import (  # noqa: F401 (data and trunk_file are fixtures)
    DDP,
    data,
    frame_decoder,
    pyav_decoder,
    retrieval_config,
    tiny_split,
    trunk_file,
    write_config,
)
from tiny_demo import sce

pytestmark = pytest.mark.ddp


def results(root: Path, folder: str) -> dict:
    return json.loads((root / folder / "results.json").read_text())


def together(*commands: list[str]) -> None:
    """Run the ``sce`` commands at the same time; each must succeed."""
    procs = [sce(*args) for args in commands]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]


def one_and_two(args: list[str], root: Path) -> tuple[Path, Path]:
    """Run ``sce ARGS`` with 1 process into ``root/one`` and, at the same time, with 2 into ``root/two``."""
    together([*args, f"dir.root={root / 'one'}"], [*args, f"dir.root={root / 'two'}", *DDP])
    return root / "one", root / "two"


def test_extraction_and_retrieval_on_two_processes(data, trunk_file, tmp_path):  # noqa: F811
    cfg = retrieval_config(tmp_path / "retrieval.yaml", "eval/retrieval_r3d18_hmdb51", trunk_file)
    args = [f"dir.data={data['hmdb51']}", *pyav_decoder()]
    one, two = one_and_two(["evaluate", "retrieval", str(cfg), *args], tmp_path)
    assert results(one, "retrieval_hmdb51") == results(two, "retrieval_hmdb51")
    together(["extract", str(cfg), str(tmp_path / "one.npz"), *args],
             ["extract", str(cfg), str(tmp_path / "two.npz"), *args, *DDP])
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert a["paths"].tolist() == b["paths"].tolist() and len(set(a["paths"].tolist())) == 9
    assert a["labels"].tolist() == b["labels"].tolist()
    np.testing.assert_array_equal(a["features"], b["features"])


def test_knn_linear_and_finetune_tests_on_two_processes(data, trunk_file, tmp_path):  # noqa: F811
    """kNN, and the video-level test of linear and fine-tuning (no training: max_epochs=0, so
    both process counts test the same weights) on 2 clips x 3 crops per video."""
    trunk = {"_name_": "small_3d_cnn", "widths": [4, 8], "strides": [[1, 2, 2], [2, 2, 2]],
             "pretrained": str(trunk_file)}
    classifier = {"_name_": "linear_head", "input_dim": 8, "output_dim": 3}
    schedule = {"scheduler": {"params": {"max_epochs": 1, "warmup_epochs": 0}}}  # never stepped
    train = {"global_batch_size": 4, "loader": {"num_workers": 0, "pin_memory": False},
             "transform": {"_name_": "only_input_transform",
                           "transform": {"_name_": "random_crop", "size": 16}}}
    cpu = {"accelerator": "cpu", "devices": 1, "benchmark": False, "enable_progress_bar": False,
           "max_epochs": 0, "strategy": "auto"}
    ucf = [f"dir.data={data['ucf101']}", *frame_decoder()]
    views = tiny_split(views=2)
    knn = write_config(tmp_path / "knn.yaml", "eval/knn_r3d18_ucf101", {
        "model": {"trunk": trunk, "k": 3,
                  "bank": {"batch_size": 4, "num_workers": 0, "transform": views["transform"],
                           "clip_sampler": views["clip_sampler"]}},
        "datamodule": {"test": tiny_split(views=2, crops=3)},
        "trainer": {**cpu, "max_epochs": None}})
    linear = write_config(tmp_path / "linear.yaml", "eval/linear_r3d18_ucf101", {
        "model": {"trunk": trunk, "classifier": classifier, "optimizer": schedule},
        "datamodule": {"train": train, "val": tiny_split(views=2, crops=3), "test": tiny_split(views=2, crops=3)},
        "trainer": cpu})
    finetune = write_config(tmp_path / "finetune.yaml", "eval/finetune_r3d18_hmdb51", {
        "model": {"trunk": trunk, "classifier": classifier, "optimizer": schedule},
        "datamodule": {"train": train, "val": tiny_split(views=2, crops=3), "test": tiny_split(views=2, crops=3)},
        "trainer": cpu})
    for name, cfg, protocol, extra in (("knn_eval_ucf101", knn, "knn", ucf),
                                       ("linear_eval_ucf101", linear, "linear", ucf),
                                       ("finetune_hmdb51", finetune, "finetune",
                                        [f"dir.data={data['hmdb51']}", *pyav_decoder()])):
        one, two = one_and_two(["evaluate", protocol, str(cfg), *extra], tmp_path / protocol)
        first, second = results(one, name), results(two, name)
        assert first == second, protocol
        assert set(first["metrics"]) == {"top1", "top5"}
        assert all(0.0 <= v <= 1.0 for v in first["metrics"].values())


def _view_rows_worker(rank: int, port: int, out_dir: str) -> None:
    import torch
    import torch.distributed as dist
    from sce_builtins.evaluation.views import ViewRows

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        rows = ViewRows()
        if rank == 0:  # video 3's clips 0 and 1 here, in two batches; video 5 whole
            rows.add(torch.tensor([[1.0], [10.0]]), {"idx": [3, 5], "label": [1, 2], "clip_index": [0, 0]})
            rows.add(torch.tensor([[2.0], [20.0]]), {"idx": [3, 5], "label": [1, 2], "clip_index": [1, 1]})
        else:  # video 3's clip 2 here, and video 5 again (what a sampler's padding adds)
            rows.add(torch.tensor([[6.0], [10.0], [20.0]]),
                     {"idx": [3, 5, 5], "label": [1, 2, 2], "clip_index": [2, 0, 1]})
        torch.save(rows.videos("mean"), f"{out_dir}/views{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_views_of_a_video_on_two_ranks_combine_once():
    """The clips of video 3 are split over both ranks and batches; video 5 is repeated whole."""
    import socket
    import tempfile

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_view_rows_worker, args=(port, out), nprocs=2, start_method="fork")
        for rank in (0, 1):
            means, labels, ids = torch.load(f"{out}/views{rank}.pt", weights_only=True)
            assert ids.tolist() == [3, 5] and labels.tolist() == [1, 2]
            assert means.tolist() == [[3.0], [15.0]]  # (1 + 2 + 6) / 3 and (10 + 20) / 2
