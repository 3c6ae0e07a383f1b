"""HMDB51 datamodule reading the official 70/30 split files.

Expected files (``test_train_splits.rar`` unpacked in datadir)::

    <datadir>/testTrainMulti_7030_splits/<class>_test_split1.txt   "<video>.avi 1" per line
        (1 = train, 2 = test, 0 = unused; splits 1, 2, 3)
    <datadir>/<class>/<video>.avi            the videos (``hmdb51_org`` unpacked per class)

The 51 classes are the sorted class names of the split files; labels are their indices.
``train`` reads the videos marked 1, ``val`` and ``test`` those marked 2, unless a split sets
its own ``dataset.datadir``.
"""

from __future__ import annotations

import os
import re

from sce_builtins.data.health import DataPathError
from sce_builtins.data.split_files import SplitFilesDataModule
from sce_builtins.data.types import VideoRecord


class HMDB51DataModule(SplitFilesDataModule):
    """HMDB51 (51 actions) with the official split files (split 1, 2 or 3).

    Args:
        split_id: official split number, 1 to 3.
        splits_dir: folder of the split files, relative to datadir or absolute (null: ``testTrainMulti_7030_splits``).
        frame_folders: drop the video extension (read frame folders instead of files).

    Every other argument is one of ``video_folder``; ``video_path_prefix`` defaults to datadir (the class folders).
    """

    name = "hmdb51"
    num_classes = 51
    default_splits_dir = "testTrainMulti_7030_splits"

    def split_files(self) -> dict[str, str]:
        """Class name -> split file of ``split_id``, sorted by class."""
        if not os.path.isdir(self.splits_dir):
            raise DataPathError(f"{self.name}: split folder not found: {self.splits_dir}")
        pattern = re.compile(rf"^(.+)_test_split{self.split_id}\.txt$")
        found = {}
        for entry in os.scandir(self.splits_dir):
            m = pattern.match(entry.name)
            if m:
                found[m.group(1)] = entry.path
        if not found:
            raise DataPathError(
                f"{self.name}: no <class>_test_split{self.split_id}.txt files in {self.splits_dir}"
            )
        return dict(sorted(found.items()))

    def records(self, split: str) -> list[VideoRecord]:
        """Videos of a split from the official files (or the split's own annotation file)."""
        if self._own_annotations(split):
            return super().records(split)
        wanted = "1" if split == "train" else "2"
        prefix = self._explicit_prefix(split) or self.datadir
        records = []
        for label, (cls, path) in enumerate(self.split_files().items()):
            with open(path, encoding="utf-8") as f:
                rows = [line.rsplit(None, 1) for line in f if line.strip()]
            for video, mark in sorted(r for r in rows if len(r) == 2):
                if mark != wanted:
                    continue
                name = f"{cls}/{os.path.splitext(video)[0] if self.frame_folders else video}"
                records.append(VideoRecord(os.path.join(prefix, name), label, None, name))
        return records
