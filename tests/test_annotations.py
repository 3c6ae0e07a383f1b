"""Annotation readers: CSV 1/2/3 columns, spaces and quotes, JSON, folders of videos, errors."""

from __future__ import annotations

import json
import os

import pytest
from sce_builtins.data.annotations import (
    RecordChecks,
    load_annotations,
    parse_csv_lines,
    scan_video_folder,
)
from sce_builtins.data.health import DataPathError
from sce_builtins.data.types import VideoRecord


def test_three_column_csv(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("abseiling/0347ZoDXyP0_000095_000105 0 300\nair_drumming/-VtLx-mcPds_000012_000022 1 297\n")
    recs = load_annotations(csv, "/data/train")
    assert recs == [
        VideoRecord("/data/train/abseiling/0347ZoDXyP0_000095_000105", 0, 300, "abseiling/0347ZoDXyP0_000095_000105"),
        VideoRecord("/data/train/air_drumming/-VtLx-mcPds_000012_000022", 1, 297, "air_drumming/-VtLx-mcPds_000012_000022"),
    ]


def test_two_and_one_column_csv():
    two = parse_csv_lines(["a/x.mp4 3", "b/y.mp4 4"])
    assert [(r.path, r.label, r.num_frames) for r in two] == [("a/x.mp4", 3, None), ("b/y.mp4", 4, None)]
    one = parse_csv_lines(["a/x.mp4", "b/y.mp4", ""])
    assert [(r.path, r.label, r.num_frames) for r in one] == [("a/x.mp4", -1, None), ("b/y.mp4", -1, None)]


def test_paths_with_spaces_and_quotes():
    recs = parse_csv_lines(['playing guitar/my clip 01 5 120', '"pandas quoted/a b" 6 30'], RecordChecks("p"))
    assert [(r.name, r.label, r.num_frames) for r in recs] == [
        ("playing guitar/my clip 01", 5, 120),
        ("pandas quoted/a b", 6, 30),
    ]
    assert recs[0].path == os.path.join("p", "playing guitar/my clip 01")


def test_column_count_decided_per_file():
    # a 2-column file whose second path ends with a number is not read as 3 columns
    recs = parse_csv_lines(["cls/vid 1", "cls/take 2 7"])
    assert [(r.name, r.label, r.num_frames) for r in recs] == [("cls/vid", 1, None), ("cls/take 2", 7, None)]
    # a 1-column file of names ending with digits stays 1 column
    recs = parse_csv_lines(["cls/clip 12", "cls/other"])
    assert [(r.name, r.label) for r in recs] == [("cls/clip 12", -1), ("cls/other", -1)]


def test_tab_separated_and_blank_lines():
    recs = parse_csv_lines(["a/v1\t0\t10", "", "b/v2\t1\t20  "])
    assert [(r.name, r.label, r.num_frames) for r in recs] == [("a/v1", 0, 10), ("b/v2", 1, 20)]


def test_json_variant_sorted_by_key(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"annotation": {
        "b/v2": {"class": 1, "num_frames": 20},
        "a/v1": {"class": 0, "num_frames": 10},
    }}))
    recs = load_annotations(path, "/root")
    assert [(r.path, r.label, r.num_frames) for r in recs] == [("/root/a/v1", 0, 10), ("/root/b/v2", 1, 20)]


def test_folder_of_encoded_videos_labels_from_sorted_classes(tmp_path):
    root = tmp_path / "train"
    for cls, files in {"zebra": ["b.mp4", "a.AVI"], "ant": ["x y.webm", "z.mkv", "notes.txt"], "mid": []}.items():
        (root / cls).mkdir(parents=True)
        for f in files:
            (root / cls / f).write_bytes(b"")
    recs = scan_video_folder(root)
    assert [(r.name, r.label) for r in recs] == [
        ("ant/x y.webm", 0), ("ant/z.mkv", 0), ("zebra/a.AVI", 2), ("zebra/b.mp4", 2),
    ]
    assert recs[0].path == str(root / "ant" / "x y.webm")
    assert load_annotations(root) == recs


def test_missing_annotation_file_one_line_message(tmp_path):
    missing = tmp_path / "nope" / "train.csv"
    with pytest.raises(DataPathError) as err:
        load_annotations(missing)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
