"""`sce evaluate retrieval|finetune`, `sce extract` and `sce results` end to end, through the real
`sce` command, on datasets written in the official UCF101 (frame folders) and HMDB51 (encoded
videos) layouts, from the shipped configs with a tiny trunk."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_data import (  # noqa: F401 (data and trunk_file are fixtures)
    CPU,
    data,
    frame_decoder,
    numpy_recall,
    pyav_decoder,
    retrieval_config,
    run_sce,
    tiny_split,
    trunk_file,
    write_config,
)


def test_retrieval_recalls_equal_numpy_on_extracted_ucf101_frames(data, trunk_file, tmp_path):  # noqa: F811
    cfg = retrieval_config(tmp_path / "retrieval.yaml", "eval/retrieval_r3d18_ucf101", trunk_file)
    common = [f"dir.data={data['ucf101']}", f"dir.root={tmp_path}", *frame_decoder()]
    out = run_sce("evaluate", "retrieval", str(cfg), *common)
    record = json.loads((tmp_path / "retrieval_ucf101" / "results.json").read_text())
    assert "sce: retrieval results: R@1 " in out
    run_sce("extract", str(cfg), str(tmp_path / "bank.npz"), "--split", "train", *common)
    run_sce("extract", str(cfg), str(tmp_path / "queries.npz"), *common)
    bank, queries = np.load(tmp_path / "bank.npz"), np.load(tmp_path / "queries.npz")
    assert bank["features"].dtype == np.float32 and bank["features"].shape == (12, 8)
    assert queries["features"].shape == (9, 8) and queries["labels"].dtype == np.int64
    assert bank["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert queries["labels"].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    test_list = (data["ucf101"] / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    assert queries["paths"].tolist() == [p[: -len(".avi")] for p in test_list]  # frame folders
    expected = numpy_recall(queries["features"], queries["labels"], bank["features"], bank["labels"],
                            (1, 5, 10, 20, 50))
    assert list(record["metrics"]) == ["R@1", "R@5", "R@10", "R@20", "R@50"]
    assert record["metrics"] == pytest.approx(expected, abs=1e-6)
    assert record["metrics"]["R@20"] == 1.0  # k beyond the 12 bank videos: the whole bank
    assert record["protocol"] == "retrieval" and record["dataset"] == "ucf101" and record["split_id"] == 1
    assert record["pretrained"] == str(trunk_file.resolve())


def test_extract_refuses_to_overwrite_and_force_replaces(data, trunk_file, tmp_path):  # noqa: F811
    cfg = retrieval_config(tmp_path / "retrieval.yaml", "eval/retrieval_r3d18_hmdb51", trunk_file)
    out_file = tmp_path / "features.npz"
    out_file.write_text("mine")
    args = [f"dir.data={data['hmdb51']}", *pyav_decoder()]
    out = run_sce("extract", str(cfg), str(out_file), *args, ok=False)
    assert out.strip().splitlines()[-1] == (f"sce: error: sce extract: {out_file} already exists; choose "
                                            "another path or pass --force to overwrite it")
    assert out_file.read_text() == "mine"
    out = run_sce("extract", str(cfg), str(tmp_path / "features.txt"), *args, ok=False)
    assert "must end in .npz" in out.strip().splitlines()[-1]
    run_sce("extract", str(cfg), str(out_file), "--force", "--split", "train", *args)
    found = np.load(out_file)
    assert found["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4  # the 0-marked videos left out
    assert found["paths"].tolist()[:2] == ["digit0/v_Digit0_g01_c01.avi", "digit0/v_Digit0_g02_c01.avi"]


def test_finetune_from_a_pretrained_trunk_beats_scratch_and_sce_results_tables_them(data, tmp_path):  # noqa: F811
    """Pretraining known to help: the trunk is first trained (10 epochs) with labels on 180 other
    videos of the same digits, exported with `sce export`, then fine-tuned for 3 epochs on the 12
    UCF101 training videos, against the same 3 epochs from scratch (`pretrained=null`); both are
    tested on 60 held-out videos (handwriting never seen in training)."""
    from sce_builtins.tools.synth import make_synthetic_dataset

    more = tmp_path / "more"
    make_synthetic_dataset(more, num_classes=3, train_per_class=60, val_per_class=20, frames=16, size=16,
                           fps=8, seed=1, formats=("frames",))
    trunk = {"_name_": "small_3d_cnn", "widths": [16, 32], "strides": [[1, 2, 2], [2, 2, 2]]}
    cfg = write_config(tmp_path / "finetune.yaml", "eval/finetune_r3d18_ucf101", {
        "model": {"trunk": trunk, "dropout": 0.0, "train_transform": {"_name_": "div_255_normalize"},
                  "classifier": {"_name_": "linear_head", "input_dim": 32, "output_dim": 3}},
        "datamodule": {"train": {"global_batch_size": 4, "loader": {"num_workers": 0, "pin_memory": False},
                                 "transform": {"_name_": "only_input_transform",
                                               "transform": {"_name_": "random_crop", "size": 16}}},
                       "val": tiny_split(views=2),
                       "test": {**tiny_split(views=2), "dataset": {"datadir": str(more / "val.csv"),
                                                                   "video_path_prefix": str(more / "val")}}},
        "trainer": {**CPU, "strategy": "auto", "max_epochs": 3, "check_val_every_n_epoch": 3}})
    ucf = [f"dir.data={data['ucf101']}", f"dir.root={tmp_path}", *frame_decoder()]
    run_sce("evaluate", "finetune", str(cfg), *ucf, "trainer.max_epochs=10", "model.trunk.pretrained=null",
            "dir.exp=supervised", f"datamodule.train.dataset.datadir={more / 'train.csv'}",
            f"datamodule.train.dataset.video_path_prefix={more / 'train'}",
            "datamodule.train.global_batch_size=8", "model.optimizer.initial_lr=0.4")
    run_sce("export", str(tmp_path / "supervised" / "checkpoints" / "finetune_checkpoints" / "last.ckpt"),
            str(tmp_path / "trunk.pt"))
    run_sce("evaluate", "finetune", str(cfg), *ucf, f"model.trunk.pretrained={tmp_path / 'trunk.pt'}",
            "dir.exp=pretrained")
    run_sce("evaluate", "finetune", str(cfg), *ucf, "model.trunk.pretrained=null", "dir.exp=scratch")
    pretrained, scratch = (json.loads((tmp_path / name / "results.json").read_text())
                           for name in ("pretrained", "scratch"))
    assert pretrained["pretrained"] == str((tmp_path / "trunk.pt").resolve())
    assert scratch["pretrained"] is None and scratch["dataset"] == "ucf101" and scratch["split_id"] == 1
    assert pretrained["metrics"]["top1"] >= scratch["metrics"]["top1"] + 0.15
    out = run_sce("results", str(tmp_path / "pretrained"), str(tmp_path / "scratch"), "--markdown")
    p, s = (f"{100 * r['metrics']['top1']:.1f} | {100 * r['metrics']['top5']:.1f}" for r in (pretrained, scratch))
    assert out.splitlines()[-4:] == [
        "| pretrained | finetune/ucf101-1 top1 | finetune/ucf101-1 top5 |", "|---|---:|---:|",
        f"| {(tmp_path / 'trunk.pt').resolve()} | {p} |", f"| random init | {s} |"]
