"""`sce evaluate retrieval|finetune`, `sce extract` and `sce results` end to end, through the real
`sce` command, on datasets written in the official UCF101 (frame folders) and HMDB51 (encoded
videos) layouts, from the shipped configs with a tiny trunk."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_data import (  # noqa: F401 (data and trunk_file are fixtures)
    data,
    frame_decoder,
    numpy_recall,
    pyav_decoder,
    retrieval_config,
    run_sce,
    trunk_file,
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
