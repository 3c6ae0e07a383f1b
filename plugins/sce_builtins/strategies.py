"""Lightning strategies under registry names (kind ``strategies``).

The seed's ``trainer.strategy: {_target_: DDPStrategy, find_unused_parameters: false,
static_graph: false}`` is written ``strategy: {_name_: ddp, find_unused_parameters: false,
static_graph: false}``. Each factory takes plain YAML values and returns Lightning's object.

Registered names: ``ddp``, ``ddp_spawn``, ``fsdp``, ``deepspeed`` (only usable when the
``deepspeed`` package is installed), ``single_device`` and ``auto``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, SingleDeviceStrategy, Strategy

__all__ = ["auto", "ddp", "ddp_spawn", "deepspeed", "fsdp", "single_device"]

_DEFAULT_TIMEOUT_S = 1800.0


def _ddp_kwargs(
    find_unused_parameters: bool,
    static_graph: bool,
    broadcast_buffers: bool,
    gradient_as_bucket_view: bool,
    bucket_cap_mb: float | None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "find_unused_parameters": find_unused_parameters,
        "static_graph": static_graph,
        "broadcast_buffers": broadcast_buffers,
        "gradient_as_bucket_view": gradient_as_bucket_view,
    }
    if bucket_cap_mb is not None:
        kwargs["bucket_cap_mb"] = bucket_cap_mb
    return kwargs


def ddp(
    find_unused_parameters: bool = False,
    static_graph: bool = False,
    process_group_backend: str | None = None,
    timeout_s: float = _DEFAULT_TIMEOUT_S,
    broadcast_buffers: bool = True,
    gradient_as_bucket_view: bool = False,
    bucket_cap_mb: float | None = None,
    start_method: Literal["popen", "spawn", "fork", "forkserver"] = "popen",
) -> DDPStrategy:
    """Lightning ``DDPStrategy``: one process per device, gradients averaged by DDP.

    Args:
        find_unused_parameters: let DDP look for parameters without gradient every step.
        static_graph: tell DDP the graph does not change between steps.
        process_group_backend: ``nccl``, ``gloo``... (None: Lightning's choice for the device).
        timeout_s: collective timeout in seconds.
        broadcast_buffers: broadcast rank 0's buffers (BN statistics, the SCE queue) at every
            forward. The SCE model keeps its queue identical on all ranks by construction, so
            ``false`` saves that traffic when BN statistics are synchronised
            (docs/reference.md §9.10).
        gradient_as_bucket_view: let gradients alias DDP's buckets (saves memory).
        bucket_cap_mb: DDP bucket size in MiB (None: torch's default).
        start_method: how processes are started (``popen`` runs the script once per device).
    """
    if timeout_s <= 0:
        raise ValueError(f"ddp: timeout_s must be positive, got {timeout_s}")
    return DDPStrategy(
        process_group_backend=process_group_backend,
        timeout=timedelta(seconds=timeout_s),
        start_method=start_method,
        **_ddp_kwargs(
            find_unused_parameters, static_graph, broadcast_buffers, gradient_as_bucket_view, bucket_cap_mb
        ),
    )


def ddp_spawn(
    find_unused_parameters: bool = False,
    static_graph: bool = False,
    process_group_backend: str | None = None,
    timeout_s: float = _DEFAULT_TIMEOUT_S,
    broadcast_buffers: bool = True,
    gradient_as_bucket_view: bool = False,
    bucket_cap_mb: float | None = None,
) -> DDPStrategy:
    """Lightning ``DDPStrategy`` started with ``torch.multiprocessing.spawn`` (notebooks, tests).

    Args:
        find_unused_parameters: let DDP look for parameters without gradient every step.
        static_graph: tell DDP the graph does not change between steps.
        process_group_backend: ``nccl``, ``gloo``... (None: Lightning's choice for the device).
        timeout_s: collective timeout in seconds.
        broadcast_buffers: broadcast rank 0's buffers at every forward (see ``ddp``).
        gradient_as_bucket_view: let gradients alias DDP's buckets (saves memory).
        bucket_cap_mb: DDP bucket size in MiB (None: torch's default).
    """
    return ddp(
        find_unused_parameters=find_unused_parameters,
        static_graph=static_graph,
        process_group_backend=process_group_backend,
        timeout_s=timeout_s,
        broadcast_buffers=broadcast_buffers,
        gradient_as_bucket_view=gradient_as_bucket_view,
        bucket_cap_mb=bucket_cap_mb,
        start_method="spawn",
    )


def fsdp(
    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD"] = "FULL_SHARD",
    cpu_offload: bool = False,
    state_dict_type: Literal["full", "sharded"] = "full",
    process_group_backend: str | None = None,
    timeout_s: float = _DEFAULT_TIMEOUT_S,
) -> FSDPStrategy:
    """Lightning ``FSDPStrategy``: fully sharded data parallel.

    The SCE momentum update needs each online parameter next to its target twin; with
    sharding both are sharded alike, so the element-wise EMA stays correct.

    Args:
        sharding_strategy: what is sharded (torch ``ShardingStrategy`` name).
        cpu_offload: keep parameters and gradients on the CPU.
        state_dict_type: ``full`` (one file) or ``sharded`` checkpoints.
        process_group_backend: ``nccl``, ``gloo``... (None: Lightning's choice).
        timeout_s: collective timeout in seconds.
    """
    return FSDPStrategy(
        sharding_strategy=sharding_strategy,
        cpu_offload=cpu_offload,
        state_dict_type=state_dict_type,
        process_group_backend=process_group_backend,
        timeout=timedelta(seconds=timeout_s),
    )


def deepspeed(
    stage: Literal[1, 2, 3] = 2,
    offload_optimizer: bool = False,
    offload_parameters: bool = False,
    process_group_backend: str | None = None,
) -> Strategy:
    """Lightning ``DeepSpeedStrategy`` (needs the ``deepspeed`` package).

    Args:
        stage: ZeRO stage.
        offload_optimizer: keep optimizer state on the CPU.
        offload_parameters: keep parameters on the CPU (stage 3).
        process_group_backend: ``nccl``, ``gloo``... (None: Lightning's choice).
    """
    try:
        import deepspeed as _ds  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "deepspeed: the 'deepspeed' package is not installed; pip install deepspeed or use ddp"
        ) from exc
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return DeepSpeedStrategy(
        stage=stage,
        offload_optimizer=offload_optimizer,
        offload_parameters=offload_parameters,
        process_group_backend=process_group_backend,
    )


def single_device(device: str = "cpu") -> SingleDeviceStrategy:
    """Lightning ``SingleDeviceStrategy``: train on one given device.

    Args:
        device: torch device string, e.g. ``cuda:0`` or ``cpu``.
    """
    return SingleDeviceStrategy(device=device)


def auto() -> str:
    """Lightning's automatic choice (``Trainer(strategy="auto")``).

    Args:
        (none)
    """
    return "auto"
