"""Name -> layer lookups shared by the heads (activations and 1-D normalisations)."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "gelu", "softmax")
NORMS_1D = ("bn_1D", "sync_bn")


def make_activation(name: str, owner: str, inplace: bool = False) -> nn.Module:
    """Build an activation module from its config name (softmax runs over dim 1)."""
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "gelu":
        return nn.GELU()
    if name == "softmax":
        return nn.Softmax(dim=1)
    raise ValueError(f"{owner}: unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")


def make_norm_1d(name: str, num_features: int, affine: bool, owner: str) -> nn.Module:
    """Build a 1-D batch normalisation from its config name (``bn_1D`` or ``sync_bn``)."""
    if name == "bn_1D":
        return nn.BatchNorm1d(num_features, affine=affine)
    if name == "sync_bn":
        return nn.SyncBatchNorm(num_features, affine=affine)
    raise ValueError(
        f"{owner}: norm_layer {name!r} is not supported; use one of {', '.join(NORMS_1D)} or null"
    )
