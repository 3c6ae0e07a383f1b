"""``optimizer_factory``: model -> optimizer (+ lr scheduler) in Lightning's format (docs/reference.md §4.1).

Differences from the reference (documented on purpose): no mutable default arguments, the
config is never mutated, the optimizer ``name`` is any entry of the ``optimizers`` registry
(built-ins ``lars``, ``sgd``, ``adam``, ``adamw`` or a plugin's), and the reference's buggy
``multiply_parameters`` branches are not reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from torch import nn

from sce_builtins.optim._build import build_node
from sce_builtins.optim.param_groups import build_param_groups
from sce_core.constraints import Positive, Range
from sce_core.slots import Factory

_NAME = "optimizer_factory"
Scaler = Literal["linear", "sqrt", "none"]


def scale_learning_rate(
    initial_lr: float, scaler: str | None, batch_size: int | None, multiply_lr: float = 1.0
) -> float:
    """Scale ``initial_lr`` by batch size: ``None``/"none" -> lr, "linear" -> lr * B / 256,
    "sqrt" -> lr * sqrt(B); then multiply by ``multiply_lr``."""
    if scaler is None or scaler == "none":
        return initial_lr * multiply_lr
    if batch_size is None or batch_size <= 0:
        raise ValueError(
            f"{_NAME}: scaler {scaler!r} needs a positive batch_size (set batch_size or let the "
            "model pass global_batch_size)."
        )
    if scaler == "linear":
        return initial_lr * batch_size / 256 * multiply_lr
    if scaler == "sqrt":
        return initial_lr * math.sqrt(batch_size) * multiply_lr
    raise ValueError(f"{_NAME}: unknown scaler {scaler!r}; use 'linear', 'sqrt', 'none' or null.")


def _build_optimizer(name: Any, params: Mapping[str, Any], groups: list, lr: float) -> Any:
    if getattr(name, "name", name) == _NAME:
        raise ValueError(f"{_NAME}: name must be an optimizer such as 'lars' or 'sgd', not itself.")
    if not isinstance(name, str):  # the config's `name` + `params`, validated with it by the core
        return name(params=groups, lr=lr)
    node = {"_name_": name, **dict(params), "lr": lr}
    return build_node("optimizers", node, "optimizer", params=groups)


def _scheduler_dict(built: Any) -> dict[str, Any]:
    if isinstance(built, Mapping):
        if "scheduler" not in built:
            raise ValueError(f"{_NAME}: the scheduler factory returned a mapping without 'scheduler'.")
        out = {"interval": "epoch", "frequency": 1, **built}
        return out
    # A bare scheduler was built with the per-step count, so it is stepped every step.
    return {"scheduler": built, "interval": "step", "frequency": 1}


def optimizer_factory(
    name: Factory("optimizers", args_param="params"),  # type: ignore[valid-type]
    model: nn.Module,
    num_steps_per_epoch: int,
    global_batch_size: int | None = None,
    params: Mapping[str, Any] | None = None,
    batch_size: Annotated[int, Positive] | None = None,
    initial_lr: Annotated[float, Range(ge=0)] = 0.1,
    scaler: Scaler | None = None,
    layer_decay_lr: float | None = None,
    exclude_wd_norm: bool = False,
    exclude_wd_bias: bool = False,
    keys_without_decay: Sequence[str] | None = None,
    scheduler: Factory("schedulers") = None,  # type: ignore[valid-type]
) -> dict[str, Any]:
    """Build an optimizer for ``model`` (and its lr scheduler) as Lightning's configure_optimizers.

    lr = ``initial_lr`` scaled by batch size (``scaler``); parameters are those requiring grad
    (restricted to ``model.learnable_params`` when the model defines it), grouped into a decayed
    group and a weight-decay-0 group (``exclude_wd_norm`` / ``exclude_wd_bias`` /
    ``keys_without_decay``), optionally per layer (``layer_decay_lr``). Returns
    ``{"optimizer": opt}`` or ``{"optimizer": opt, "lr_scheduler": {"scheduler": s,
    "interval": "step" | "epoch", "frequency": 1}}``.

    Args:
        name: optimizer registry name (``lars``, ``sgd``, ``adam``, ``adamw``, ...); the
            config checks ``params`` against that optimizer's parameters.
        model: module to optimise (given at build time).
        num_steps_per_epoch: optimizer steps per epoch (given at build time).
        global_batch_size: global batch size, used when ``batch_size`` is null (build time).
        params: optimizer keyword arguments (momentum, weight_decay, trust_coefficient, ...).
        batch_size: batch size used by ``scaler`` (the seed sets the global batch size).
        initial_lr: learning rate before batch-size scaling.
        scaler: ``linear`` (lr * B / 256), ``sqrt`` (lr * sqrt(B)), ``none`` or null (no scaling).
        layer_decay_lr: layer-wise lr decay factor; needs ``model.num_layers`` and
            ``model.get_param_layer_id``.
        exclude_wd_norm: no weight decay on parameters of normalisation layers.
        exclude_wd_bias: no weight decay on parameters named ``bias``.
        keys_without_decay: extra parameter names (local or full) without weight decay.
        scheduler: lr scheduler node (e.g. ``scheduler_factory``), built with the optimizer.
    """
    params = dict(params or {})
    if "lr" in params:
        raise ValueError(f"{_NAME}: set the learning rate with initial_lr, not params.lr.")
    if num_steps_per_epoch is None or num_steps_per_epoch <= 0:
        raise ValueError(
            f"{_NAME}: num_steps_per_epoch must be a positive int (got {num_steps_per_epoch})."
        )
    size = batch_size if batch_size is not None else global_batch_size
    lr = scale_learning_rate(initial_lr, scaler, size)
    lr_scale = scale_learning_rate(1.0, scaler, size)
    groups = build_param_groups(
        model,
        lr=lr,
        lr_scale=lr_scale,
        exclude_norm=exclude_wd_norm,
        exclude_bias=exclude_wd_bias,
        keys_without_decay=tuple(keys_without_decay or ()),
        layer_decay_lr=layer_decay_lr,
    )
    optimizer = _build_optimizer(name, params, groups, lr)
    if scheduler is None:
        return {"optimizer": optimizer}
    runtime = {"optimizer": optimizer, "num_steps_per_epoch": num_steps_per_epoch}
    if isinstance(scheduler, (str, Mapping)):  # a plain node, e.g. when called from Python
        built = build_node("schedulers", scheduler, "scheduler", **runtime)
    else:
        built = scheduler(**runtime)
    return {"optimizer": optimizer, "lr_scheduler": _scheduler_dict(built)}


optimizer_factory.__sce_runtime_args__ = (  # type: ignore[attr-defined]
    "model",
    "num_steps_per_epoch",
    "global_batch_size",
)
