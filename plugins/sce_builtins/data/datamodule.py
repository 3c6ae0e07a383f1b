"""Video datamodule: splits, loaders, batch split over devices, shuffling and bad-data limits.

Config (the seed's ``datamodule:`` section; every split key is optional)::

    datamodule:
      _name_: kinetics200            # or video_folder, kinetics400/600/700, ucf101, hmdb51
      datadir: /data/k200
      video_path_prefix: /data/k200
      decoder: frame
      decoder_args: {fps: 30, ...}
      train:
        dataset: {datadir: /data/k200/train.csv, video_path_prefix: /data/k200/train}
        transform: {_name_: only_input_list_transform, transform: {...}}
        clip_sampler: {_name_: random_multi_clip, num_clips: 2, clip_duration: 2.56}
        loader: {drop_last: true, num_workers: 5, pin_memory: true}
        global_batch_size: 512
        decoder: pyav                # optional per-split override (docs/reference.md §5.4)
        decoder_args: {...}          # optional per-split override
      val: {...}
      test: {...}

What the datamodule expects from the Trainer: nothing special. Its loaders use
:class:`EpochDistributedSampler` (a ``DistributedSampler``) on every device count, so Lightning
never replaces them (``use_distributed_sampler`` may stay True or be False); training is
shuffled with ``seed`` and reshuffled every epoch by Lightning's ``set_epoch`` call.
The datamodule overrides ``on_before_batch_transfer`` to take the bad-sample events out of
each batch (a model overriding the same hook would be ignored by Lightning).
"""

from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from sce_builtins.data._build import default_seed, ensure_built
from sce_builtins.data.annotations import load_annotations
from sce_builtins.data.collate import resolve_collate
from sce_builtins.data.dataset import VideoDataset
from sce_builtins.data.health import BAD_DATA_KEY, DataHealth, DataPathError
from sce_builtins.data.options import SplitOptions
from sce_builtins.data.samplers import EpochDistributedSampler, ResumableDataLoader
from sce_builtins.data.types import VideoRecord
from sce_core.errors import ConfigError, Issue
from sce_core.slots import Component
from sce_core.validate import check_value

log = logging.getLogger("sce.data")

SPLITS: tuple[str, ...] = ("train", "val", "test")


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker setup: one torch thread, numpy/random seeded from the worker's torch seed,
    SIGTERM ignored.

    A launcher that stops a job (SLURM ``scancel``, preemption) signals every process of it,
    workers included; a worker killed by it would fail the main process before the run saves
    its checkpoint. The main process handles the signal and shuts its workers down; a worker
    whose parent is gone exits by itself (torch's worker watchdog).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    info = torch.utils.data.get_worker_info()
    seed = (info.seed if info is not None else worker_id) % 2**32
    np.random.seed(seed)
    random.seed(seed)


def local_batch_size(global_batch_size: int, world_size: int, component: str = "datamodule") -> int:
    """``global_batch_size / world_size``; raises when it does not divide exactly."""
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ValueError(f"{component}: global_batch_size must be a positive integer, got {global_batch_size!r}.")
    if global_batch_size % world_size:
        raise ValueError(
            f"{component}: global_batch_size {global_batch_size} is not divisible by the "
            f"{world_size} devices; choose a multiple of {world_size}."
        )
    return global_batch_size // world_size


class VideoDataModule(LightningDataModule):
    """Labelled video splits from annotation files or folders of videos (generic ``video_folder``).

    A split's annotations are ``split.dataset.datadir`` (CSV, JSON or a ``<class>/<video>``
    folder); when absent, ``<datadir>/<split>.csv``, ``<datadir>/<split>.json`` or the folder
    ``<datadir>/<split>`` is used, in that order.

    Args:
        datadir: data root.
        train: training split: dataset {datadir, video_path_prefix}, transform, clip_sampler,
            loader {drop_last, num_workers, pin_memory, persistent_workers, prefetch_factor,
            collate_fn: default|multiple_samples}, global_batch_size, optional decoder/decoder_args.
        val: validation split, same keys.
        test: test split, same keys.
        video_path_prefix: prefix of annotated paths when a split does not set its own.
        decode_audio: must be false (audio is not supported).
        decoder: video decoder (``frame``, ``pyav``, ...) used by every split without its own.
        decoder_args: arguments of ``decoder`` when given by name.
        max_bad_samples: unreadable samples allowed per split and epoch before the run stops:
            an int is a count, a float in (0, 1) a fraction of the split; null: no limit.
        seed: seed of shuffling and per-sample randomness (null: the run's global seed).
    """

    name = "video_folder"

    def __init__(
        self,
        datadir: str,
        train: SplitOptions | None = None,
        val: SplitOptions | None = None,
        test: SplitOptions | None = None,
        video_path_prefix: str = "",
        decode_audio: bool = False,
        decoder: Component("decoders", args_param="decoder_args") = "pyav",
        decoder_args: Mapping[str, Any] | None = None,
        max_bad_samples: int | float | None = 0.01,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if decode_audio:
            raise ValueError(f"{self.name}: decode_audio is not supported; set decode_audio: false.")
        self.datadir = str(datadir or "")
        self.video_path_prefix = str(video_path_prefix or "")
        self.decoder_args = dict(decoder_args or {})
        self._decoder_spec = decoder
        self._decoder: Any = None if isinstance(decoder, (str, Mapping)) else decoder
        self.splits: dict[str, dict[str, Any] | None] = {}
        for split, cfg in (("train", train), ("val", val), ("test", test)):
            self.splits[split] = self._check_split(split, cfg)
        self.health = DataHealth(max_bad_samples)
        self._seed = seed
        self.datasets: dict[str, VideoDataset] = {}
        self._checked = False

    # ------------------------------------------------------------------ config checks
    def _check_split(self, split: str, cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The split's options as plain dicts; the keys are checked against :class:`SplitOptions`
        (``sce check`` reports the same problems before anything is built)."""
        if cfg is None:
            return None
        check_value(cfg, SplitOptions | None, f"datamodule.{split}")
        cfg = dict(cfg)
        dataset = cfg.get("dataset") or {}
        loader = dict(cfg.get("loader") or {})
        if "batch_size" in loader:
            log.warning("%s: %s.loader.batch_size is ignored; set %s.global_batch_size.", self.name, split, split)
            loader.pop("batch_size")
        resolve_collate(loader.get("collate_fn"), self.name)  # fail early on unknown names
        cfg["dataset"] = dict(dataset)
        cfg["loader"] = loader
        return cfg

    # ------------------------------------------------------------------ paths
    def _default_annotation(self, split: str) -> str:
        for candidate in (f"{split}.csv", f"{split}.json"):
            path = os.path.join(self.datadir, candidate)
            if os.path.isfile(path):
                return path
        return os.path.join(self.datadir, split)

    def _explicit_prefix(self, split: str) -> str:
        cfg = self.splits[split] or {}
        return str(cfg["dataset"].get("video_path_prefix") or self.video_path_prefix)

    def _prefix(self, split: str) -> str:
        """The split's prefix, else the top-level one, else ``<datadir>/<split>``."""
        return self._explicit_prefix(split) or os.path.join(self.datadir, split)

    def records(self, split: str) -> list[VideoRecord]:
        """Annotated videos of a split (raises :class:`DataPathError` for a missing file)."""
        cfg = self.splits[split] or {}
        source = cfg["dataset"].get("datadir") or self._default_annotation(split)
        return load_annotations(source, self._prefix(split),
                                allow_outside_root=bool(cfg["dataset"].get("allow_outside_root", False)),
                                num_classes=getattr(self, "num_classes", 0) or None)

    def check_data(self) -> None:
        """Check the data root exists (subclasses add layout checks)."""
        if self.datadir and not os.path.isdir(self.datadir):
            raise DataPathError(f"{self.name}: data root not found: {self.datadir}")

    def prepare_data(self) -> None:
        """Check the on-disk layout (rank 0)."""
        self.check_data()
        self._checked = True

    # ------------------------------------------------------------------ runtime
    @property
    def seed(self) -> int:
        """Seed of shuffling and per-sample randomness."""
        return default_seed(self._seed)

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.world_size), int(trainer.global_rank)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    def _uses_cuda(self) -> bool:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            try:
                return trainer.strategy.root_device.type == "cuda"
            except Exception:  # noqa: BLE001 - strategy not set up yet
                return False
        return torch.cuda.is_available()

    @property
    def decoder(self) -> Any:
        """The top-level decoder (built on first use when given by name)."""
        if self._decoder is None:
            self._decoder = ensure_built("decoders", self._decoder_spec, self.decoder_args)
        return self._decoder

    def _split_decoder(self, cfg: Mapping[str, Any]) -> Any:
        name, args = cfg.get("decoder"), cfg.get("decoder_args")
        if name is None and args is None:
            return self.decoder
        if name is None:
            if isinstance(self._decoder_spec, str):
                return ensure_built("decoders", self._decoder_spec, args)
            return type(self.decoder)(**dict(args))
        return ensure_built("decoders", name, self.decoder_args if args is None else args)

    def build_dataset(self, split: str) -> VideoDataset:
        """Build the dataset of a configured split."""
        cfg = self.splits[split]
        if cfg is None:
            raise ValueError(f"{self.name}: no '{split}' split configured.")
        if cfg.get("clip_sampler") is None:
            raise ValueError(f"{self.name}: {split}.clip_sampler is required.")
        extra = {k: cfg["dataset"][k] for k in ("max_retries", "short_videos") if k in cfg["dataset"]}
        dataset = VideoDataset(
            self.records(split),
            self._split_decoder(cfg),
            ensure_built("clip_samplers", cfg["clip_sampler"], path=f"datamodule.{split}.clip_sampler"),
            ensure_built("transforms", cfg.get("transform"), path=f"datamodule.{split}.transform"),
            seed=self.seed,
            split=split,
            **extra,
        )
        if len(dataset) == 0:
            source = cfg["dataset"].get("datadir") or self._default_annotation(split)
            raise DataPathError(f"{self.name}: the {split} split has no videos: {source}")
        self.health.set_size(split, len(dataset))
        return dataset

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of the stage: fit -> train (+ val), validate -> val, test/predict -> test."""
        if not self._checked:
            self.check_data()
            self._checked = True
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
        }.get(stage or "", SPLITS)
        for split in wanted:
            if self.splits[split] is not None and split not in self.datasets:
                self.datasets[split] = self.build_dataset(split)

    @property
    def train_num_samples(self) -> int:
        """Number of training videos (CSV lines)."""
        if "train" not in self.datasets:
            self.setup("fit")
        return len(self.datasets["train"])

    @property
    def train_global_batch_size(self) -> int | None:
        """The training split's global batch size (read by models to scale learning rates)."""
        cfg = self.splits.get("train")
        return None if cfg is None else cfg.get("global_batch_size")

    def num_training_batches(self) -> int:
        """Batches per training epoch per device, as the loader really yields them."""
        return len(self.train_dataloader())

    def _loader(self, split: str, train: bool) -> DataLoader | list:
        cfg = self.splits[split]
        if cfg is None:
            if train:
                raise ValueError(f"{self.name}: no train split configured; set datamodule.train.")
            return []
        if split not in self.datasets:
            self.datasets[split] = self.build_dataset(split)
        dataset = self.datasets[split]
        world, rank = self._world()
        if "global_batch_size" not in cfg:
            raise ValueError(f"{self.name}: {split}.global_batch_size is required.")
        batch = local_batch_size(cfg["global_batch_size"], world, self.name)
        self._check_batch_fits(split, cfg, len(dataset), world)
        loader = dict(cfg["loader"])
        shuffle = bool(loader.pop("shuffle", train))
        collate = resolve_collate(loader.pop("collate_fn", None), self.name)
        workers = int(loader.pop("num_workers", 0))
        persistent = bool(loader.pop("persistent_workers", workers > 0)) and workers > 0
        prefetch = loader.pop("prefetch_factor", None)
        pin = bool(loader.pop("pin_memory", True)) and self._uses_cuda()
        sampler = EpochDistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=self.seed,
            fixed_epoch=None if train else 0,
        )
        kwargs: dict[str, Any] = {}
        if workers > 0:
            kwargs["persistent_workers"] = persistent
            kwargs["worker_init_fn"] = worker_init_fn
            if prefetch is not None:
                kwargs["prefetch_factor"] = int(prefetch)
        # A private generator: starting an epoch (worker base seeds) must not draw from the
        # global torch RNG, whose state a resumed run restores (exact resume).
        generator = torch.Generator().manual_seed(self.seed + rank)
        if train:  # Lightning saves its position: a resumed run continues mid-epoch exactly
            kwargs["progress"] = self._train_batches_done
        return (ResumableDataLoader if train else DataLoader)(
            dataset,
            batch_size=batch,
            sampler=sampler,
            generator=generator,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=pin,
            drop_last=bool(loader.pop("drop_last", False)),
            **loader,
            **kwargs,
        )

    def _train_batches_done(self) -> int:
        """Training batches of the current epoch the Trainer has processed (0 without one)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def _check_batch_fits(self, split: str, cfg: Mapping[str, Any], size: int, world: int) -> None:
        """With ``drop_last``, a batch larger than a device's share of the split yields no batch."""
        per_device = -(-size // world)
        batch = cfg["global_batch_size"] // world
        if cfg["loader"].get("drop_last") and batch > per_device:
            raise ConfigError(Issue(
                f"datamodule.{split}.global_batch_size",
                f"{cfg['global_batch_size']} is larger than the {split} split ({size} videos"
                f"{f' over {world} devices' if world > 1 else ''}) and loader.drop_last is true: "
                f"no batch would be yielded; use at most {per_device * world} or set "
                f"datamodule.{split}.loader.drop_last=false"))

    def train_dataloader(self) -> DataLoader:
        """Shuffled (seeded, per epoch) training loader of the local batch size."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation loader (sequential shards), or [] when no val split is configured."""
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader | list:
        """Test loader (sequential shards), or [] when no test split is configured."""
        return self._loader("test", train=False)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Take the bad-sample events out of the batch and count them (may stop the run: on
        every rank at once, since the limit applies to the sum over ranks)."""
        events = batch.pop(BAD_DATA_KEY) if isinstance(batch, dict) and BAD_DATA_KEY in batch else ()
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            self.health.record(events)
            for split, epoch in {(e[0], e[1]) for e in events}:
                self.health.check(split, epoch)
            return batch
        self.health.record(events, trainer.current_epoch)
        self.health.check(_loop_split(trainer), trainer.current_epoch)
        return batch


def _loop_split(trainer: Any) -> str:
    """The split the trainer's running loop reads (the key every rank counts under)."""
    if trainer.training:
        return "train"
    if trainer.testing:
        return "test"
    if trainer.predicting:
        return "predict"
    return "val"
