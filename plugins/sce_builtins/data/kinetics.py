"""Kinetics datamodules (200/400/600/700): the video datamodule plus class-count checks (docs/reference.md §5.1).

Layout (frame folders, as the recipe)::

    <datadir>/train.csv   <class>/<video> <label> <num_frames>
    <datadir>/val.csv
    <datadir>/train/<class>/<video>/00000001.jpg ...
    <datadir>/val/<class>/<video>/00000001.jpg ...

or encoded videos ``<datadir>/<split>/<class>/<video>.mp4`` with 2-column CSVs or no CSV.
Before loading, every configured split's folder must hold exactly ``num_classes`` class
folders. The split folder is the split's ``dataset.datadir`` when it is a folder, else its
``dataset.video_path_prefix`` (or the top-level prefix) when that differs from ``datadir``,
else ``<datadir>/train`` for train and ``<datadir>/val`` for val and test.
"""

from __future__ import annotations

import os

from sce_builtins.data.annotations import list_classes
from sce_builtins.data.datamodule import VideoDataModule
from sce_builtins.data.health import DataLayoutError, DataPathError


class KineticsDataModule(VideoDataModule):
    """Kinetics videos with a check of the number of class folders per split.

    Args:
        datadir: Kinetics root holding ``train.csv``, ``val.csv``, ``train/`` and ``val/``.
        train: training split options (see ``video_folder``).
        val: validation split options.
        test: test split options.
        video_path_prefix: prefix of annotated paths when a split does not set its own.
        decode_audio: must be false.
        decoder: video decoder (``frame`` for the recipe's frame folders, ``pyav`` for videos).
        decoder_args: arguments of ``decoder``.
        max_bad_samples: unreadable samples allowed per split and epoch (int count or fraction).
        seed: seed of shuffling and per-sample randomness (null: the global seed).
    """

    name = "kinetics"
    num_classes = 0

    def split_folder(self, split: str) -> str:
        """Folder whose class sub-folders are counted for ``split``."""
        cfg = self.splits[split] or {}
        source = cfg["dataset"].get("datadir")
        if source and os.path.isdir(source):
            return str(source)
        prefix = self._explicit_prefix(split)
        if prefix and os.path.normpath(prefix) != os.path.normpath(self.datadir or "."):
            return prefix
        return os.path.join(self.datadir, "train" if split == "train" else "val")

    def check_data(self) -> None:
        """Data root exists and every configured split folder has ``num_classes`` classes."""
        super().check_data()
        for split, cfg in self.splits.items():
            if cfg is None:
                continue
            folder = self.split_folder(split)
            if not os.path.isdir(folder):
                raise DataPathError(f"{self.name}: {split} folder not found: {folder}")
            found = len(list_classes(folder))
            if self.num_classes and found != self.num_classes:
                raise DataLayoutError(
                    f"{self.name}: {folder} has {found} class folders, expected {self.num_classes}; "
                    f"point datadir at a Kinetics-{self.num_classes} root or use the matching datamodule."
                )


def kinetics_variant(num_classes: int, title: str) -> type[KineticsDataModule]:
    """The datamodule of one Kinetics variant: ``kinetics<N>`` checking N class folders."""
    doc = KineticsDataModule.__doc__ or ""
    return type(f"Kinetics{num_classes}DataModule", (KineticsDataModule,), {
        "name": f"kinetics{num_classes}",
        "num_classes": num_classes,
        "__module__": __name__,
        "__doc__": f"{title}: {num_classes} class folders per split.\n\n{doc[doc.index('    Args:'):]}",
    })


Kinetics200DataModule = kinetics_variant(200, "Kinetics-200 (Mini-Kinetics)")
Kinetics400DataModule = kinetics_variant(400, "Kinetics-400")
Kinetics600DataModule = kinetics_variant(600, "Kinetics-600")
Kinetics700DataModule = kinetics_variant(700, "Kinetics-700")
