"""Agreement between ranks on host-side values (stop flags, bad-sample counts) without touching
the GPU.

A stop signal or a count of unreadable videos lives on the host. Reducing it through the
training process group (NCCL) would copy it to the device and back, a blocking host-device
synchronisation every step. Instead the values travel through a small gloo group over the
same rendezvous, created once on first use (every rank must make its first call at the same
point, as with any collective). When the job itself runs on gloo, its group is used.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist

_GROUP: dict[str, Any] = {}


def world_size() -> int:
    """Processes in the default group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def host_group() -> Any:
    """A gloo process group over every rank (the default group when that is gloo already).

    If gloo cannot be set up (e.g. no usable network interface for it on a cluster), the
    default group is used, with a warning: correct, at the price of a device round trip.
    """
    if dist.get_backend() == "gloo":
        return dist.group.WORLD
    key = f"{id(dist.group.WORLD)}"
    if key not in _GROUP:
        _GROUP.clear()  # a group of an earlier, destroyed default group is stale
        try:
            _GROUP[key] = dist.new_group(backend="gloo")
        except Exception as exc:  # noqa: BLE001 - any failure: fall back to the default group
            warnings.warn(f"sce: no gloo group for host values ({exc}); using the default group "
                          "(one device round trip per step; set GLOO_SOCKET_IFNAME to avoid it)",
                          stacklevel=2)
            _GROUP[key] = dist.group.WORLD
    return _GROUP[key]


def _device_for(group: Any) -> torch.device:
    """Where a collective of ``group`` takes its tensors: the CPU for gloo, else this rank's GPU."""
    if dist.get_backend(group) == "gloo" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def sum_over_ranks(values: list[int]) -> list[int]:
    """Element-wise sums of ``values`` over every rank (``values`` itself on one process)."""
    if world_size() == 1:
        return list(values)
    group = host_group()
    tensor = torch.tensor(values, dtype=torch.int64, device=_device_for(group))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    return [int(v) for v in tensor.tolist()]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` on one process."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=host_group())
    return out
