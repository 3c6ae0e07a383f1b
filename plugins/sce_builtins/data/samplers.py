"""Index samplers of the datamodules: seeded shuffling on every device count, epoch-tagged keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


class EpochDistributedSampler(DistributedSampler):
    """DistributedSampler that yields ``(epoch, index)`` keys, also on a single device.

    Being a ``DistributedSampler``, Lightning keeps it as is (it never injects its own), so the
    same seeded, per-epoch reshuffled order is used with 1 or N devices. The epoch travels with
    every index, so dataset copies in (persistent) workers need no ``set_epoch`` call.

    Args:
        dataset: the map-style dataset.
        num_replicas: world size.
        rank: this process' global rank.
        shuffle: reshuffle every epoch (seeded by ``seed + epoch``).
        seed: shuffling seed, identical on every rank.
        fixed_epoch: when set, the epoch yielded with every index (deterministic evaluation).
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        fixed_epoch: int | None = None,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.fixed_epoch = fixed_epoch
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """Skip the first ``samples_done`` indices of this rank in ``epoch`` (once)."""
        self._resume = (int(epoch), int(samples_done))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        skip = 0
        if self._resume is not None:
            resume_epoch, samples_done = self._resume
            self._resume = None
            if resume_epoch == epoch:
                skip = samples_done
        for position, index in enumerate(super().__iter__()):
            if position >= skip:
                yield (epoch, index)


class ResumableDataLoader(DataLoader):
    """Training loader that Lightning checkpoints: a resumed run continues mid-epoch exactly.

    ``state_dict`` records the epoch and how many batches of it the training loop has
    processed (``progress``, read from the Trainer when the checkpoint is written: loader
    workers prefetch ahead, so the loader's own count would be too far). ``load_state_dict``
    makes the sampler skip those samples of that epoch; samples are a function of
    ``(seed, epoch, index)`` only, so the rest of the epoch is the same as without the stop.
    """

    def __init__(self, *args: Any, progress: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        return {"epoch": int(getattr(sampler, "epoch", 0)), "batches_done": int(self._progress()),
                "batches_in_epoch": len(self), "world_size": int(getattr(sampler, "num_replicas", 1)),
                "batch_size": int(self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        done, epoch = int(state.get("batches_done", 0)), int(state.get("epoch", 0))
        sampler = self.sampler
        if not isinstance(sampler, EpochDistributedSampler):
            return
        # Lightning creates the resumed iterator before it sets the sampler's epoch (and loader
        # workers read the sampler at once): set the epoch the run continues in here.
        # the saved epoch was complete by the saving run's count (another batch size or process
        # count may continue from an epoch's end; older checkpoints lack the count)
        if done >= int(state.get("batches_in_epoch", len(self))):
            sampler.set_epoch(epoch + 1)
            return
        sampler.set_epoch(epoch)
        if done == 0:
            return
        saved_world, world = int(state.get("world_size", 1)), int(sampler.num_replicas)
        if saved_world != world or int(state.get("batch_size", 0)) != int(self.batch_size or 1):
            raise ValueError(
                f"this checkpoint was written mid-epoch by {saved_world} process(es) with a local "
                f"batch of {state.get('batch_size')}; this run has {world} and {self.batch_size}. "
                f"Resume with the same trainer.devices x trainer.num_nodes and global_batch_size.")
        sampler.resume_at(epoch, done * int(self.batch_size or 1))
