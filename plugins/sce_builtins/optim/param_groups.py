"""Parameter selection and grouping for the optimizer factory (docs/reference.md §4.1).

Param-group keys shared with the schedulers:
  * ``lr_scale``: the batch-size lr scaling factor (``scaler``) applied to this group; the
    schedulers multiply ``warmup_start_lr`` / ``eta_min`` by it, as the reference does;
  * ``layer_lr_decay``: the layer-wise decay factor of the group (already folded into ``lr``);
    the schedulers also multiply ``warmup_start_lr`` / ``eta_min`` by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import Tensor, nn

LR_SCALE_KEY = "lr_scale"
LAYER_DECAY_KEY = "layer_lr_decay"

#: Module types whose own parameters ``exclude_wd_norm`` removes from weight decay. The
#: reference lists BN1d/2d/3d, SyncBatchNorm, SplitBatchNorm2D and LayerNorm by exact type; an
#: isinstance check on the norm base classes covers those and subclasses (e.g. split BN).
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
)


def learnable_parameters(model: nn.Module) -> list[tuple[str, Tensor]]:
    """Named parameters that require grad and belong to ``model.learnable_params`` if defined.

    ``learnable_params`` (an iterable of parameters, compared by identity) lets a model exclude
    e.g. its momentum target branch; without it every parameter requiring grad is kept.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    allowed = getattr(model, "learnable_params", None)
    if allowed is None:
        return named
    ids = {id(p) for p in allowed}
    return [(n, p) for n, p in named if id(p) in ids]


def no_decay_names(
    model: nn.Module, exclude_norm: bool, exclude_bias: bool, keys: Iterable[str] = ()
) -> set[str]:
    """Full names of parameters excluded from weight decay.

    A parameter is excluded if its owning module is a norm layer (``exclude_norm``), if its local
    name is ``bias`` (``exclude_bias``) or if its local or full name is one of ``keys``.
    """
    keys = set(keys)
    if exclude_bias:
        keys.add("bias")
    out: set[str] = set()
    for mod_name, module in model.named_modules():
        is_norm = exclude_norm and isinstance(module, NORM_TYPES)
        for local, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{local}" if mod_name else local
            if is_norm or local in keys or full in keys:
                out.add(full)
    return out


def build_param_groups(
    model: nn.Module,
    lr: float,
    lr_scale: float = 1.0,
    exclude_norm: bool = False,
    exclude_bias: bool = False,
    keys_without_decay: Sequence[str] = (),
    layer_decay_lr: float | None = None,
) -> list[dict[str, Any]]:
    """Param groups per docs/reference.md §4.1: decayed params, then (if any) params with weight decay 0.

    With ``layer_decay_lr``, one group per layer id (``model.num_layers`` and
    ``model.get_param_layer_id(name)``) with ``lr * layer_decay_lr ** (num_layers - 1 - id)``:
    all decayed groups by layer id, then all non-decayed ones. Empty groups are dropped.
    """
    params = learnable_parameters(model)
    if not params:
        raise ValueError("optimizer_factory: the model has no learnable parameters to optimise.")
    excluded = no_decay_names(model, exclude_norm, exclude_bias, keys_without_decay)

    def group(ps: list[Tensor], no_decay: bool, layer_scale: float = 1.0) -> dict[str, Any]:
        g: dict[str, Any] = {"params": ps, "lr": lr * layer_scale, LR_SCALE_KEY: lr_scale}
        if no_decay:
            g["weight_decay"] = 0.0
        if layer_decay_lr is not None:
            g[LAYER_DECAY_KEY] = layer_scale
        return g

    if layer_decay_lr is None:
        decay = [p for n, p in params if n not in excluded]
        no_decay = [p for n, p in params if n in excluded]
        groups = [group(decay, False), group(no_decay, True)]
        return [g for g in groups if g["params"]]

    num_layers = getattr(model, "num_layers", None)
    get_id = getattr(model, "get_param_layer_id", None)
    if num_layers is None or get_id is None:
        raise ValueError(
            "optimizer_factory: layer_decay_lr needs a model exposing num_layers and "
            "get_param_layer_id(name); set layer_decay_lr: null."
        )
    by_layer: dict[tuple[bool, int], list[Tensor]] = {}
    for name, p in params:
        layer_id = int(get_id(name))
        if not 0 <= layer_id < int(num_layers):
            raise ValueError(
                f"optimizer_factory: get_param_layer_id({name!r}) = {layer_id} is outside "
                f"[0, num_layers={num_layers}); fix the model's layer ids."
            )
        by_layer.setdefault((name in excluded, layer_id), []).append(p)
    groups = []
    for no_decay in (False, True):
        for layer_id in range(int(num_layers)):
            ps = by_layer.get((no_decay, layer_id))
            if ps:
                scale = float(layer_decay_lr) ** (int(num_layers) - 1 - layer_id)
                groups.append(group(ps, no_decay, scale))
    return groups
