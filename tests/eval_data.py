"""Test-only datasets in the official UCF101 and HMDB51 layouts (frame folders and encoded
videos), written from a tiny synthetic moving-digits set, and tiny evaluation configs composed
from the shipped ones (a small trunk, 16-pixel clips, CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tiny_demo import sce

import sce_core

CLASSES = ["Digit0", "Digit1", "Digit2"]
TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 3  # 12 train videos, 9 test videos (odd: DDP pads)
TINY_TRUNK = {"_name_": "small_3d_cnn", "widths": [4, 8], "strides": [[1, 2, 2], [2, 2, 2]]}
CPU = {"accelerator": "cpu", "devices": 1, "benchmark": False, "enable_progress_bar": False}
DDP = ["trainer.devices=2", "trainer.strategy=ddp"]


def make_official_datasets(root: Path) -> dict[str, Path]:
    """``{"ucf101": <UCF101 layout, frame folders>, "hmdb51": <HMDB51 layout, .avi videos>}``.

    UCF101: ``ucfTrainTestlist/classInd.txt``, ``trainlist01.txt`` (``Class/v_Class_gNN_c01.avi
    label``), ``testlist01.txt`` and ``UCF-101/<Class>/<video>/`` frame folders. HMDB51:
    ``testTrainMulti_7030_splits/<class>_test_split1.txt`` (``video.avi 1|2|0``) and
    ``<class>/<video>.avi`` encoded videos (one extra video per class is marked 0, unused).
    """
    from sce_builtins.tools.synth import make_synthetic_dataset

    synth = root / "synth"
    make_synthetic_dataset(synth, num_classes=len(CLASSES), train_per_class=TRAIN_PER_CLASS,
                           val_per_class=TEST_PER_CLASS, frames=16, size=16, fps=8,
                           formats=("frames", "mp4"))
    ucf, hmdb = root / "ucf101", root / "hmdb51"
    lists = ucf / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    train, test = [], []
    splits = hmdb / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for label, cls in enumerate(CLASSES):
        hmdb_lines = []
        for split, count, offset in (("train", TRAIN_PER_CLASS, 0), ("val", TEST_PER_CLASS, TRAIN_PER_CLASS)):
            for k in range(count):
                name = f"v_{cls}_g{offset + k + 1:02d}_c01"
                (ucf / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
                shutil.copytree(synth / split / f"digit_{label}" / f"video_{k:05d}", ucf / "UCF-101" / cls / name)
                (train if split == "train" else test).append(
                    f"{cls}/{name}.avi {label + 1}" if split == "train" else f"{cls}/{name}.avi")
                (hmdb / cls.lower()).mkdir(parents=True, exist_ok=True)
                shutil.copy(synth / "videos" / split / f"digit_{label}" / f"video_{k:05d}.mp4",
                            hmdb / cls.lower() / f"{name}.avi")
                hmdb_lines.append(f"{name}.avi {1 if split == 'train' else 2} ")
        hmdb_lines.append(f"v_{cls}_g99_c01.avi 0 ")
        (splits / f"{cls.lower()}_test_split1.txt").write_text("\n".join(hmdb_lines) + "\n")
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return {"ucf101": ucf, "hmdb51": hmdb}


def write_config(path: Path, base: str, body: dict[str, Any]) -> Path:
    """A config file composed from shipped config ``base`` (``defaults: [base, _self_]``)."""
    OmegaConf.save(OmegaConf.create({"defaults": [base, "_self_"], **body}), path)
    return path


def tiny_split(views: int, crops: int = 1, batch: int = 4) -> dict[str, Any]:
    """A val/test split: ``views`` clips of 1 s x ``crops`` crops per video, 16-pixel clips."""
    if crops == 1:
        transform = {"_name_": "only_input_transform",
                     "transform": {"_name_": "scale_center_crop", "size": 16, "crop_size": 16}}
    else:
        transform = {"_name_": "only_input_transform_with_dict_transform",
                     "transform": {"_name_": "short_side_scale", "size": 16},
                     "dict_transform": {"_name_": "uniform_crop_video", "size": 12}}
    return {"transform": transform,
            "clip_sampler": {"_name_": "constant_clips_per_video", "clip_duration": 1.0,
                             "clips_per_video": views, "augs_per_clip": crops},
            "loader": {"num_workers": 0, "pin_memory": False}, "global_batch_size": batch}


def frame_decoder() -> list[str]:
    """Overrides turning a shipped UCF101 config (PyAV) into one reading frame folders."""
    return ["datamodule.frame_folders=true", "datamodule.decoder=frame",
            "~datamodule.decoder_args.thread_count", "datamodule.decoder_args.fps=8",
            "datamodule.decoder_args.frame_filter.num_samples=4"]


def pyav_decoder() -> list[str]:
    """Overrides of a shipped PyAV config for the tiny 2 s videos."""
    return ["datamodule.decoder_args.frame_filter.num_samples=4"]


def numpy_recall(query: np.ndarray, query_labels: np.ndarray, bank: np.ndarray,
                 bank_labels: np.ndarray, ks: tuple[int, ...], center: bool = True) -> dict[str, float]:
    """R@k computed directly (float64): centre by the bank mean, L2-normalise, dot product."""
    query, bank = query.astype(np.float64), bank.astype(np.float64)
    if center:
        mean = bank.mean(axis=0, keepdims=True)
        query, bank = query - mean, bank - mean
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    order = np.argsort(-(query @ bank.T), axis=1, kind="stable")
    same = bank_labels[order] == query_labels[:, None]
    return {f"R@{k}": float(same[:, :k].any(axis=1).mean()) for k in ks}


def run_sce(*args: str, ok: bool = True) -> str:
    """``sce ARGS`` in a subprocess; its output (it must succeed, or fail when not ``ok``)."""
    proc = sce(*args)
    out, _ = proc.communicate(timeout=300)
    assert (proc.returncode == 0) == ok, out[-3000:]
    return out


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> dict[str, Path]:
    """The UCF101 and HMDB51 test datasets (:func:`make_official_datasets`)."""
    return make_official_datasets(tmp_path_factory.mktemp("official"))


@pytest.fixture(scope="session")
def trunk_file(tmp_path_factory) -> Path:
    """A tiny trunk's weights as `sce export` writes them (a plain state dict)."""
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("trunk") / "trunk.pt"
    torch.save(sce_core.build("trunks", TINY_TRUNK).state_dict(), path)
    return path


def retrieval_config(path: Path, base: str, trunk: Path | None) -> Path:
    """Shipped retrieval config ``base`` with the tiny trunk (``pretrained: trunk``), 2 clips per video."""
    return write_config(path, base, {
        "model": {"trunk": {**TINY_TRUNK, "pretrained": str(trunk) if trunk else None},
                  "bank": {"batch_size": 4, "num_workers": 0}},
        "datamodule": {"test": tiny_split(views=2)},
        "trainer": CPU,
    })
