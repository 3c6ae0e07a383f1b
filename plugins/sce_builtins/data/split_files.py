"""Shared base of datamodules that read a dataset's official split files (HMDB51, UCF101)."""

from __future__ import annotations

import os

from sce_builtins.data.datamodule import VideoDataModule
from sce_core.slots import BaseArgs


class SplitFilesDataModule(VideoDataModule):
    """Base of datamodules reading official split files (split 1, 2 or 3); not registered.

    Subclasses set ``name``, ``num_classes`` and ``default_splits_dir`` (used when
    ``splits_dir`` is null) and implement ``records`` for their file format, using
    :meth:`_own_annotations` to fall back to a split's own annotation file.

    Args:
        split_id: official split number, 1 to 3.
        splits_dir: folder of the split files (relative to datadir or absolute; null: the
            dataset's usual folder name).
        frame_folders: drop the video extension (read frame folders instead of files).

    Every other argument is one of ``video_folder`` (``sce info video_folder``).
    """

    default_splits_dir = ""

    def __init__(
        self,
        *,
        split_id: int = 1,
        splits_dir: str | None = None,
        frame_folders: bool = False,
        **kwargs: BaseArgs,
    ) -> None:
        super().__init__(**kwargs)
        if split_id not in (1, 2, 3):
            raise ValueError(f"{self.name}: split_id must be 1, 2 or 3, got {split_id!r}.")
        self.split_id = split_id
        self.splits_dir = os.path.join(self.datadir, splits_dir or self.default_splits_dir)
        self.frame_folders = bool(frame_folders)

    def _own_annotations(self, split: str) -> bool:
        """Whether ``split`` sets its own ``dataset.datadir`` (then the split files are not read)."""
        cfg = self.splits[split] or {}
        return bool(cfg["dataset"].get("datadir"))
