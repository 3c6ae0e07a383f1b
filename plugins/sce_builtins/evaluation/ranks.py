"""The process group as evaluation sees it: world size and rank, rows gathered from every rank."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_info() -> tuple[int, int]:
    """``(world_size, rank)`` of the initialised process group, else ``(1, 0)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def gather_rows(tensor: Tensor) -> Tensor:
    """Concatenate every rank's ``tensor`` along dim 0 (row counts may differ); identity alone."""
    world, _ = world_info()
    if world == 1:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])
