"""Annotation lines are checked at setup: bad labels, labels out of range and paths leaving the
data root are reported with ``file:line``; one bad line never changes how the others parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sce_builtins.data.annotations import (
    AnnotationError,
    RecordChecks,
    load_annotations,
    parse_csv_lines,
)
from sce_builtins.data.types import VideoRecord
from sce_builtins.tools.synth import make_synthetic_dataset

import sce_core

GOOD = ["cat/v1 0 30", "cat/v2 0 31", "dog/v1 1 32", "dog/v2 1 33"]


def test_one_bad_label_is_reported_and_leaves_the_other_lines_alone(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("# comment\n" + "\n".join(GOOD[:2] + ["", "dog/v0 x 29"] + GOOD[2:]) + "\n")
    with pytest.raises(AnnotationError) as err:
        load_annotations(csv, "/data/train")
    msg = str(err.value)
    assert msg == (f"annotations: 1 bad line(s) in {csv}: {csv}:5: label 'x' is not an integer; "
                   "fix or remove these lines")
    # the other lines parse exactly as they do without the bad one (3 columns, not 1)
    csv.write_text("\n".join(GOOD) + "\n")
    assert load_annotations(csv, "/data/train") == [
        VideoRecord(f"/data/train/{name}", label, frames, name)
        for name, label, frames in [("cat/v1", 0, 30), ("cat/v2", 0, 31), ("dog/v1", 1, 32),
                                    ("dog/v2", 1, 33)]
    ]


def test_bad_frame_count_and_missing_columns():
    with pytest.raises(AnnotationError) as err:
        parse_csv_lines([*GOOD, "dog/v3 1 many", "lonely"], RecordChecks("/r"), source="a.csv")
    msg = str(err.value)
    assert "2 bad line(s) in a.csv" in msg
    assert "a.csv:5: num_frames 'many' is not an integer" in msg
    assert "a.csv:6: expected a path and 2 number(s), got 'lonely'" in msg


def test_labels_out_of_range(tmp_path):
    lines = ["a/v 0", "a/w -1", "b/v 2", "b/w 3"]
    with pytest.raises(AnnotationError, match=r"x.csv:2: label -1 is negative") as err:
        parse_csv_lines(lines, RecordChecks("/r"), source="x.csv")
    assert "1 bad line(s)" in str(err.value)  # without a class count, 3 is fine
    with pytest.raises(AnnotationError) as err:
        parse_csv_lines(lines, RecordChecks("/r", num_classes=3), source="x.csv")
    msg = str(err.value)
    assert "2 bad line(s)" in msg and "x.csv:4: label 3 is out of range for 3 classes" in msg
    assert [r.label for r in parse_csv_lines(lines[:1] + lines[2:], RecordChecks("/r", num_classes=4))] == [0, 2, 3]


def test_paths_outside_the_data_root_need_the_opt_in(tmp_path):
    root = tmp_path / "data" / "train"
    lines = ["cat/v1 0", "../secret 0", "cat/../../x 1", "/etc/passwd 1", "cat/../cat/v2 0",
             f"{root}/dog/v3 1"]
    with pytest.raises(AnnotationError) as err:
        parse_csv_lines(lines, RecordChecks(str(root)), source="train.csv")
    msg = str(err.value)
    assert msg.startswith("annotations: 3 bad line(s) in train.csv: ")
    assert f"train.csv:2: path '../secret' is outside the data root {root}" in msg
    assert "train.csv:3: path 'cat/../../x'" in msg and "train.csv:4: path '/etc/passwd'" in msg
    assert msg.endswith("(or set allow_outside_root: true to use paths outside the data root)")
    records = parse_csv_lines(lines, RecordChecks(str(root), allow_outside_root=True))
    assert [r.path for r in records] == [
        f"{root}/cat/v1", f"{root}/../secret", f"{root}/cat/../../x", "/etc/passwd",
        f"{root}/cat/../cat/v2", f"{root}/dog/v3"]


def test_all_bad_lines_in_one_error_quoting_the_first_few(tmp_path):
    csv = tmp_path / "val.csv"
    csv.write_text("".join(f"c/v{i} {'x' if i % 5 in (1, 3) else i % 3} 10\n" for i in range(20)))
    with pytest.raises(AnnotationError) as err:
        load_annotations(csv, str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"annotations: 8 bad line(s) in {csv}: ")
    assert [f"{csv}:{n}:" in msg for n in (2, 4, 7, 9, 12, 14)] == [True] * 5 + [False]
    assert "(and 3 more)" in msg


def test_json_entries_are_checked_too(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"annotation": {
        "a/v1": {"class": 0, "num_frames": 10}, "../b": {"class": 1}, "c/v": {"class": "x"}}}))
    with pytest.raises(AnnotationError) as err:
        load_annotations(path, str(tmp_path / "train"))
    msg = str(err.value)
    assert f"{path}: entry '../b': path '../b' is outside the data root" in msg
    assert f"{path}: entry 'c/v': label 'x' is not an integer" in msg


def test_bad_line_fails_datamodule_setup_with_file_and_line(tmp_path):
    for split, per_class in (("train", 2), ("val", 1)):
        for c in range(2):
            for k in range(per_class):
                (tmp_path / split / f"c{c}" / f"v{k}").mkdir(parents=True)
    (tmp_path / "train.csv").write_text("c0/v0 0 8\nc0/v1 0 8\nc1/v0 one 8\nc1/v1 1 8\n")
    dm = sce_core.build("datamodules", {
        "_name_": "video_folder", "datadir": str(tmp_path), "decoder": "frame",
        "train": {"clip_sampler": {"_name_": "random_clip", "clip_duration": 1.0},
                  "global_batch_size": 2}})
    with pytest.raises(AnnotationError) as err:
        dm.setup("fit")
    assert f"{tmp_path / 'train.csv'}:3: label 'one' is not an integer" in str(err.value)


def test_sce_pretrain_reports_a_bad_annotation_line(tmp_path):
    overrides = ["datamodule.synthetic.num_classes=2", "datamodule.synthetic.train_per_class=2",
                 "datamodule.synthetic.val_per_class=1", "datamodule.synthetic.frames=8",
                 "datamodule.synthetic.size=16", "trainer.max_epochs=1",
                 "model.optimizer.scheduler.params.warmup_epochs=1"]
    data = tmp_path / "data"
    cfg = sce_core.load_config("demo", overrides)
    make_synthetic_dataset(data, **dict(cfg.datamodule.synthetic))
    csv = data / "train.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace(" 0 8", " -3 8")
    csv.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sce_core.cli", "pretrain", "demo", *overrides, f"dir.data={data}",
         f"dir.root={tmp_path / 'runs'}"], capture_output=True, text=True, timeout=180,
        env=dict(os.environ))
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sce: error")]
    assert len(errors) == 1 and f"{csv}:2: label -3 is negative" in errors[0], proc.stderr


def _folder_split(root):
    for c in range(2):
        (root / "train" / f"c{c}" / "v0").mkdir(parents=True)
    return {"_name_": "video_folder", "datadir": str(root), "decoder": "frame",
            "train": {"clip_sampler": {"_name_": "random_clip", "clip_duration": 1.0},
                      "global_batch_size": 2}}


def test_datamodule_allow_outside_root_opt_in(tmp_path):
    (tmp_path / "elsewhere" / "v9").mkdir(parents=True)
    node = _folder_split(tmp_path / "data")
    (tmp_path / "data" / "train.csv").write_text("c0/v0 0 8\n../../elsewhere/v9 1 8\n")
    with pytest.raises(AnnotationError, match=r"train\.csv:2: .*outside"):
        sce_core.build("datamodules", node).setup("fit")
    node["train"]["dataset"] = {"allow_outside_root": True}
    dm = sce_core.build("datamodules", node)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 2


def test_known_class_count_bounds_the_labels(tmp_path):
    for c in range(200):
        (tmp_path / "train" / f"class{c:03d}").mkdir(parents=True)
    (tmp_path / "train" / "class000" / "v0").mkdir()
    (tmp_path / "train.csv").write_text("class000/v0 0 8\nclass000/v0 200 8\n")
    dm = sce_core.build("datamodules", {
        "_name_": "kinetics200", "datadir": str(tmp_path), "decoder": "frame",
        "train": {"clip_sampler": {"_name_": "random_clip", "clip_duration": 1.0},
                  "global_batch_size": 2}})
    with pytest.raises(AnnotationError, match=r"train\.csv:2: label 200 is out of range for 200 classes"):
        dm.setup("fit")
