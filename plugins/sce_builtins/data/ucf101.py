"""UCF101 datamodule reading the official train/test split lists.

Expected files (the official ``UCF101TrainTestSplits-RecognitionTask.zip`` unpacked in datadir)::

    <datadir>/ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup" ... "101 YoYo"
    <datadir>/ucfTrainTestlist/trainlist01.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    <datadir>/ucfTrainTestlist/testlist01.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    (trainlist02/03, testlist02/03 for splits 2 and 3)
    <datadir>/UCF-101/<class>/<video>.avi          the videos (else <datadir>/<class>/<video>.avi)

Labels are the 1-based classInd numbers minus one; test-list classes are matched to classInd
case-insensitively (the lists spell ``HandstandPushups`` where classInd says
``HandStandPushups``). With ``frame_folders: true`` the extension is dropped so that
``<prefix>/<class>/<video>/`` frame folders are read. ``train`` reads the train list, ``val``
and ``test`` read the test list, unless a split sets its own ``dataset.datadir``.
"""

from __future__ import annotations

import os

from sce_builtins.data.health import DataLayoutError, DataPathError
from sce_builtins.data.split_files import SplitFilesDataModule
from sce_builtins.data.types import VideoRecord


def _read_lines(path: str, component: str) -> list[str]:
    if not os.path.isfile(path):
        raise DataPathError(f"{component}: split file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


class UCF101DataModule(SplitFilesDataModule):
    """UCF101 (101 actions) with the official split lists (split 1, 2 or 3).

    Args:
        split_id: official split number, 1 to 3.
        splits_dir: folder of the split files, relative to datadir or absolute (null: ``ucfTrainTestlist``).
        frame_folders: drop the video extension (read frame folders instead of files).

    Every other argument is one of ``video_folder``; ``video_path_prefix`` defaults to ``<datadir>/UCF-101`` when it exists, else datadir.
    """

    name = "ucf101"
    num_classes = 101
    default_splits_dir = "ucfTrainTestlist"

    def _video_prefix(self, split: str) -> str:
        prefix = self._explicit_prefix(split)
        if prefix:
            return prefix
        nested = os.path.join(self.datadir, "UCF-101")
        return nested if os.path.isdir(nested) else self.datadir

    def _name(self, rel: str) -> str:
        rel = rel.replace("\\", "/")
        return os.path.splitext(rel)[0] if self.frame_folders else rel

    def class_names(self) -> list[str]:
        """Class names in label order, from classInd.txt."""
        lines = _read_lines(os.path.join(self.splits_dir, "classInd.txt"), self.name)
        pairs = sorted((int(n), cls) for n, cls in (line.split(None, 1) for line in lines))
        return [cls.strip() for _, cls in pairs]

    def records(self, split: str) -> list[VideoRecord]:
        """Videos of a split from the official lists (or the split's own annotation file)."""
        if self._own_annotations(split):
            return super().records(split)
        lookup = {c.lower(): i for i, c in enumerate(self.class_names())}
        kind = "trainlist" if split == "train" else "testlist"
        path = os.path.join(self.splits_dir, f"{kind}{self.split_id:02d}.txt")
        prefix = self._video_prefix(split)
        records = []
        for line in _read_lines(path, self.name):
            parts = line.split()
            rel = parts[0]
            if len(parts) > 1:
                label = int(parts[1]) - 1
            else:
                cls = rel.replace("\\", "/").split("/")[0].lower()
                if cls not in lookup:
                    raise DataLayoutError(f"{self.name}: class of {rel} in {path} is not in classInd.txt")
                label = lookup[cls]
            name = self._name(rel)
            records.append(VideoRecord(os.path.join(prefix, name), label, None, name))
        return records
