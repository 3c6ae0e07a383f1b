"""Datamodules: seed config, batch split, shuffling, workers, bad-data limits, split files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from sce_builtins.callbacks.data_health import DataHealthCallback
from sce_builtins.data.datamodule import VideoDataModule, local_batch_size
from sce_builtins.data.health import BadDataLimitError, DataLayoutError, DataPathError
from sce_builtins.data.hmdb51 import HMDB51DataModule
from sce_builtins.data.kinetics import Kinetics200DataModule
from sce_builtins.data.samplers import EpochDistributedSampler
from sce_builtins.data.ucf101 import UCF101DataModule

try:  # tests/ as rootdir-less modules or as a package
    from test_dataset import SIZE, frames_of, make_bad_frame_dataset, make_frame_dataset, video_of
except ImportError:  # pragma: no cover
    from tests.test_dataset import (
        SIZE,
        frames_of,
        make_bad_frame_dataset,
        make_frame_dataset,
        video_of,
    )

import sce_core
from sce_core.errors import ConfigError

DECODER_ARGS = {
    "fps": 10,
    "frame_filter": {"subsample_type": "uniform", "num_samples": 4},
    "time_difference_prob": 0.0,
    "num_threads_io": 0,
    "num_threads_decode": 0,
    "decode_float": False,
}


def split_cfg(root: Path, split: str, sampler: dict, batch: int = 4, **loader) -> dict:
    return {
        "dataset": {"datadir": str(root / f"{split}.csv"), "video_path_prefix": str(root / split)},
        "clip_sampler": sampler,
        "loader": {"drop_last": False, "num_workers": 0, "pin_memory": True, **loader},
        "global_batch_size": batch,
    }


def folder_dm(root: Path, batch: int = 4, **kw) -> VideoDataModule:
    sampler = {"_name_": "random_multi_clip", "num_clips": 2, "clip_duration": 1.0}
    loader = kw.pop("loader", {})
    return VideoDataModule(
        datadir=str(root), decoder="frame", decoder_args=DECODER_ARGS, seed=kw.pop("seed", 3),
        train=split_cfg(root, "train", sampler, batch, **loader), **kw,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("k")
    make_frame_dataset(r, "train", classes=("ant", "bee"), per_class=3)
    make_frame_dataset(r, "val", classes=("ant", "bee"), per_class=1)
    return r


def test_seed_config_builds_through_registry(tmp_path):
    make_frame_dataset(tmp_path, "train", classes=("c000", "c001"), per_class=2)
    make_frame_dataset(tmp_path, "val", classes=("c000", "c001"), per_class=1)
    for split in ("train", "val"):  # 200 class folders per split, as Kinetics200
        for c in range(2, 200):
            (tmp_path / split / f"c{c:03d}").mkdir()
    d = str(tmp_path)
    node = {
        "_name_": "kinetics200",
        "datadir": d,
        "video_path_prefix": d,
        "decoder": "frame",
        "decoder_args": {**DECODER_ARGS, "time_difference_prob": 0.2, "decode_float": True},
        "train": {
            "dataset": {"datadir": f"{d}/train.csv", "video_path_prefix": f"{d}/train"},
            "transform": {
                "_name_": "only_input_list_transform",
                "transform": {
                    "_name_": "random_resized_crop", "target_height": 16, "target_width": 16,
                    "scale": [0.2, 0.766], "aspect_ratio": [0.75, 1.3333], "interpolation": "bilinear",
                },
            },
            "clip_sampler": {"_name_": "random_multi_clip", "num_clips": 2, "clip_duration": 1.0,
                             "speeds": [1], "jitter_factor": 0},
            "loader": {"drop_last": True, "num_workers": 0, "pin_memory": True},
            "global_batch_size": 4,
        },
        "val": {
            "dataset": {"datadir": f"{d}/val.csv", "video_path_prefix": f"{d}/val"},
            "clip_sampler": {"_name_": "random_clip", "clip_duration": 1.0},
            "loader": {"drop_last": False, "num_workers": 0, "pin_memory": True},
            "global_batch_size": 4,
        },
    }
    dm = sce_core.build("datamodules", node)
    assert isinstance(dm, Kinetics200DataModule)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_num_samples == 4 and dm.train_global_batch_size == 4
    batch = next(iter(dm.train_dataloader()))
    assert len(batch["input"]) == 2
    assert batch["input"][0].shape == (4, 3, 4, 16, 16) and batch["input"][0].dtype == torch.float32
    assert sorted(batch["idx"].tolist()) == [0, 1, 2, 3]
    assert batch["label"].tolist() == [i // 2 for i in batch["idx"].tolist()]
    val = next(iter(dm.val_dataloader()))
    assert val["input"].shape == (2, 3, 4, SIZE, SIZE)
    assert node["train"]["loader"] == {"drop_last": True, "num_workers": 0, "pin_memory": True}  # not mutated


def test_kinetics_wrong_class_count_message(root):
    dm = Kinetics200DataModule(datadir=str(root), decoder="frame", decoder_args=DECODER_ARGS,
                               train=split_cfg(root, "train", {"_name_": "random_clip", "clip_duration": 1.0}))
    with pytest.raises(DataLayoutError) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert f"{root / 'train'} has 2 class folders, expected 200" in msg and "\n" not in msg


def test_wrong_root_and_missing_csv_fail_at_setup(root, tmp_path):
    dm = folder_dm(tmp_path / "missing_root")
    with pytest.raises(DataPathError, match="data root not found: .*missing_root$"):
        dm.setup("fit")
    shutil.copytree(root / "train", tmp_path / "train")
    dm = folder_dm(tmp_path)  # train.csv absent
    with pytest.raises(DataPathError) as err:
        dm.setup("fit")
    assert str(tmp_path / "train.csv") in str(err.value) and "\n" not in str(err.value)


def test_global_batch_split_over_devices(root):
    assert local_batch_size(512, 2) == 256 and local_batch_size(512, 8) == 64
    with pytest.raises(ValueError, match="global_batch_size 6 is not divisible by the 4 devices"):
        local_batch_size(6, 4)
    dm = folder_dm(root, batch=4)
    dm._world = lambda: (2, 1)
    loader = dm.train_dataloader()
    assert loader.batch_size == 2
    assert (loader.sampler.num_replicas, loader.sampler.rank) == (2, 1)
    dm = folder_dm(root, batch=5)
    dm._world = lambda: (2, 0)
    with pytest.raises(ValueError, match="not divisible"):
        dm.train_dataloader()


def _order(sampler: EpochDistributedSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return [i for e, i in sampler if e == epoch]


def test_training_is_shuffled_on_one_device_and_reshuffled_per_epoch(root):
    loader = folder_dm(root).train_dataloader()
    sampler = loader.sampler
    assert isinstance(sampler, torch.utils.data.DistributedSampler)  # Lightning keeps it
    e0, e1 = _order(sampler, 0), _order(sampler, 1)
    assert sorted(e0) == sorted(e1) == list(range(6))
    assert e0 != list(range(6)) and e0 != e1
    assert _order(folder_dm(root).train_dataloader().sampler, 0) == e0  # same seed, same order
    assert _order(folder_dm(root, seed=4).train_dataloader().sampler, 0) != e0


def test_ranks_get_disjoint_shards(root):
    dms = [folder_dm(root, batch=2) for _ in range(2)]
    orders = []
    for rank, dm in enumerate(dms):
        dm._world = lambda rank=rank: (2, rank)
        orders.append(_order(dm.train_dataloader().sampler, 0))
    assert len(orders[0]) == len(orders[1]) == 3
    assert sorted(orders[0] + orders[1]) == list(range(6))


def test_val_is_sequential_and_fixed(root):
    dm = VideoDataModule(datadir=str(root), decoder="frame", decoder_args=DECODER_ARGS,
                         val=split_cfg(root, "val", {"_name_": "random_clip", "clip_duration": 1.0}))
    loader = dm.val_dataloader()
    assert list(loader.sampler) == [(0, 0), (0, 1)]
    loader.sampler.set_epoch(5)
    assert list(loader.sampler) == [(0, 0), (0, 1)]
    assert dm.test_dataloader() == []


@pytest.mark.parametrize(("drop_last", "batches"), [(True, 1), (False, 2)])
def test_drop_last_respected(root, drop_last, batches):
    loader = folder_dm(root, loader={"drop_last": drop_last}).train_dataloader()
    assert len(loader) == batches and len(list(loader)) == batches


def test_loader_options(root, caplog):
    dm = folder_dm(root, loader={"num_workers": 2, "prefetch_factor": 3, "batch_size": 99,
                                 "collate_fn": "multiple_samples"})
    assert "batch_size is ignored" in caplog.text
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.prefetch_factor == 3 and loader.batch_size == 4
    assert loader.pin_memory is torch.cuda.is_available()
    assert loader.collate_fn.__name__ == "multiple_samples_collate_fn"
    with pytest.raises(ConfigError, match="datamodule.train.loader.collate_fn: .*got 'stack'"):
        folder_dm(root, loader={"collate_fn": "stack"})
    with pytest.raises(ConfigError, match="datamodule.train.loader.shufle: loader options has no key "
                                          "'shufle'; did you mean 'shuffle'"):
        folder_dm(root, loader={"shufle": True})


def _threads(sample):
    return {**sample, "threads": torch.get_num_threads()}


def test_two_workers_give_the_same_batches_as_none(root):
    def run(workers):
        dm = folder_dm(root, batch=2, loader={"num_workers": workers})
        dm.setup("fit")
        dm.datasets["train"].transform = _threads
        loader = dm.train_dataloader()
        out = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            for b in loader:
                out.append((b["idx"].tolist(), [frames_of(c) for v in b["input"] for c in v],
                            b["threads"].tolist()))
        return out

    single, multi = run(0), run(2)
    assert [x[:2] for x in single] == [x[:2] for x in multi]
    assert len(single) == 6
    assert all(t == [1, 1] for x in multi for t in [x[2]])  # one torch thread per worker


def test_per_split_decoder_override(root):
    from sce_builtins.data.decoders.frame import FrameDecoder
    from sce_builtins.data.decoders.pyav import PyAVDecoder

    dm = folder_dm(root)
    dm.splits["train"]["decoder_args"] = {**DECODER_ARGS, "fps": 5}
    ds = dm.build_dataset("train")
    assert isinstance(ds.decoder, FrameDecoder) and ds.decoder.fps == 5 and dm.decoder.fps == 10
    dm.splits["train"]["decoder"] = "pyav"
    dm.splits["train"]["decoder_args"] = {"thread_count": 1}
    assert isinstance(dm.build_dataset("train").decoder, PyAVDecoder)


class _TinyModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen_keys: set = set()

    def training_step(self, batch, batch_idx):
        self.seen_keys |= set(batch)
        x = torch.stack([v.float().mean(dim=(1, 2, 3, 4)) for v in batch["input"]]).mean(0)
        return self.layer(x[:, None]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _bad_dm(tmp_path: Path, max_bad, workers: int = 0) -> VideoDataModule:
    make_bad_frame_dataset(tmp_path, b"corrupt", {2: "a/wrong path 0 30"})
    return folder_dm(tmp_path, batch=4, max_bad_samples=max_bad, loader={"num_workers": workers})


def _trainer(**kw) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_data_training_goes_on_and_counts_reach_main_process(tmp_path, caplog, workers):
    dm = _bad_dm(tmp_path, max_bad=None, workers=workers)
    model = _TinyModel()
    callback = DataHealthCallback()
    _trainer(callbacks=[callback], default_root_dir=str(tmp_path / "run")).fit(model, dm)
    assert "bad_data" not in model.seen_keys and "replaced" in model.seen_keys
    ds = dm.datasets["train"]
    for epoch in (0, 1):  # what the dataset reports for every index of the epoch
        expected = [e for i in range(8) for e in ds[(epoch, i)]["bad_data"]]
        assert dm.health.counts[("train", epoch)] == len(expected) >= 3
        summary = dm.health.epoch_summary("train", epoch)
        assert summary["by_reason"]["corrupt"] >= 1 and summary["by_reason"]["missing"] >= 2
        assert {e.path for e in expected} == set(summary["by_path"])
    assert [r["epoch"] for r in callback.epoch_reports] == [0, 1]
    assert callback.epoch_reports[0]["total"] == dm.health.counts[("train", 0)]
    assert "data health, whole run" in caplog.text and "wrong path" in caplog.text
    report = json.loads((tmp_path / "run" / "data_health.json").read_text())
    assert report["total"]["total"] == dm.health.counts[("train", 0)] + dm.health.counts[("train", 1)]
    assert report["total"]["by_split"] == {"train": report["total"]["total"]}


@pytest.mark.parametrize("limit", [2, 0.1])
def test_bad_data_limit_stops_with_clear_error(tmp_path, limit):
    dm = _bad_dm(tmp_path, max_bad=limit)
    with pytest.raises(BadDataLimitError, match=f"exceed max_bad_samples={limit}") as err:
        _trainer().fit(_TinyModel(), dm)
    assert "\n" not in str(err.value) and "split 'train' epoch 0" in str(err.value)


def test_ucf101_official_split_files(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandStandPushups\n")
    (lists / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\n")
    (lists / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nHandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    (tmp_path / "UCF-101").mkdir()
    sampler = {"_name_": "random_clip", "clip_duration": 1.0}
    dm = UCF101DataModule(datadir=str(tmp_path), train={"clip_sampler": sampler, "global_batch_size": 1},
                          test={"clip_sampler": sampler, "global_batch_size": 1})
    train, test = dm.records("train"), dm.records("test")
    assert [(r.name, r.label) for r in train] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0), ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 1)]
    assert [r.label for r in test] == [0, 1]
    assert train[0].path == str(tmp_path / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi")
    dm2 = UCF101DataModule(datadir=str(tmp_path), split_id=2, frame_folders=True,
                           train={"clip_sampler": sampler, "global_batch_size": 1})
    with pytest.raises(DataPathError, match="trainlist02.txt"):
        dm2.records("train")
    with pytest.raises(ValueError, match="split_id must be 1, 2 or 3"):
        UCF101DataModule(datadir=str(tmp_path), split_id=4)


def test_hmdb51_official_split_files(tmp_path):
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "wave_test_split1.txt").write_text("w1.avi 1 \nw2.avi 2 \nw3.avi 0 \n")
    (splits / "brush_hair_test_split1.txt").write_text("b1.avi 2 \nb2.avi 1 \n")
    (splits / "wave_test_split2.txt").write_text("w1.avi 2 \n")
    sampler = {"_name_": "random_clip", "clip_duration": 1.0}
    cfg = {"clip_sampler": sampler, "global_batch_size": 1}
    dm = HMDB51DataModule(datadir=str(tmp_path), train=cfg, val=cfg)
    assert [(r.name, r.label) for r in dm.records("train")] == [("brush_hair/b2.avi", 0), ("wave/w1.avi", 1)]
    assert [(r.name, r.label) for r in dm.records("val")] == [("brush_hair/b1.avi", 0), ("wave/w2.avi", 1)]
    assert dm.records("train")[0].path == str(tmp_path / "brush_hair" / "b2.avi")
    dm = HMDB51DataModule(datadir=str(tmp_path), split_id=2, frame_folders=True, val=cfg)
    assert [(r.name, r.label) for r in dm.records("val")] == [("wave/w1", 0)]


def test_unknown_split_keys_and_audio_rejected(root):
    with pytest.raises(ConfigError, match="datamodule.train.sampler: split options has no key "
                                          "'sampler'; did you mean 'clip_sampler'"):
        VideoDataModule(datadir=str(root), train={"sampler": {}})
    with pytest.raises(ValueError, match="decode_audio is not supported"):
        VideoDataModule(datadir=str(root), decode_audio=True)


def test_split_defaults_to_datadir_split_csv(root):
    # without dataset keys: <datadir>/<split>.csv with prefix <datadir>/<split>
    dm = folder_dm(root)
    dm.splits["train"]["dataset"] = {}
    recs = dm.records("train")
    assert [r.name for r in recs][:2] == ["ant/vid 00", "ant/vid 01"] and recs[0].num_frames == 40
    assert video_of(dm.build_dataset("train")[(0, 5)]["input"][0]) == 5


def test_batch_larger_than_split_with_drop_last_is_a_config_problem(root):
    dm = folder_dm(root, batch=8, loader={"drop_last": True})  # the train split has 6 videos
    with pytest.raises(ConfigError) as info:
        dm.train_dataloader()
    assert str(info.value) == (
        "datamodule.train.global_batch_size: 8 is larger than the train split (6 videos) and "
        "loader.drop_last is true: no batch would be yielded; use at most 6 or set "
        "datamodule.train.loader.drop_last=false")
    assert len(folder_dm(root, batch=8, loader={"drop_last": False}).train_dataloader()) == 1


def test_a_mid_epoch_checkpoint_refuses_another_batch_size_and_an_epoch_end_one_accepts_it():
    from sce_builtins.data.samplers import EpochDistributedSampler, ResumableDataLoader

    def loader(batch: int) -> ResumableDataLoader:
        return ResumableDataLoader(list(range(16)), batch_size=batch, progress=lambda: 2,
                                   sampler=EpochDistributedSampler(list(range(16))))

    mid_epoch = loader(4).state_dict()  # 2 of 4 batches done
    assert mid_epoch == {"epoch": 0, "batches_done": 2, "batches_in_epoch": 4, "world_size": 1,
                         "batch_size": 4}
    with pytest.raises(ValueError, match=r"mid-epoch by 1 process\(es\) with a local batch of 4; "
                                         r"this run has 1 and 2\. Resume with the same"):
        loader(2).load_state_dict(mid_epoch)
    same = loader(4)
    same.load_state_dict(mid_epoch)
    assert [i for _, i in same.sampler] == [i for _, i in EpochDistributedSampler(list(range(16)))][8:]
    end_of_epoch = {**mid_epoch, "batches_done": 4}
    other = loader(2)
    other.load_state_dict(end_of_epoch)  # nothing of epoch 0 is left: the next epoch starts anew
    assert other.sampler.epoch == 1
