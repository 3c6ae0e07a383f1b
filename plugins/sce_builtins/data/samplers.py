"""Index samplers of the datamodules: seeded shuffling on every device count, epoch-tagged keys."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset
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

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch if self.fixed_epoch is None else self.fixed_epoch
        for index in super().__iter__():
            yield (epoch, index)
