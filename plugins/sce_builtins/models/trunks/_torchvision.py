"""Building torchvision models without ever downloading weights."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import torch
from torch import nn


def build_torchvision_model(arch: str, weights: str | None, owner: str, **kwargs) -> nn.Module:
    """``torchvision.models.get_model(arch)`` with ``weights`` resolved offline.

    ``weights`` is null (random init) or a torchvision weights name (``DEFAULT``,
    ``KINETICS400_V1``, ``IMAGENET1K_V2``, or ``<Enum>.<NAME>``). Named weights are used only
    when their file is already in the torch hub cache; otherwise a ``ValueError`` explains
    where to put the file or how to use ``pretrained`` instead: nothing is downloaded.
    """
    import torchvision

    if weights is None:
        return torchvision.models.get_model(arch, weights=None, **kwargs)
    enum = torchvision.models.get_model_weights(arch)
    name = weights.split(".")[-1]
    try:
        resolved = enum.DEFAULT if name == "DEFAULT" else enum[name]
    except KeyError:
        choices = ", ".join(["DEFAULT", *(w.name for w in enum)])
        raise ValueError(f"{owner}: unknown weights {weights!r}; use one of {choices} or null") from None
    cached = os.path.join(
        torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(resolved.url).path)
    )
    if not os.path.isfile(cached):
        raise ValueError(
            f"{owner}: weights {weights!r} need a download, which sce-core never does; place "
            f"{resolved.url} at {cached}, or give weights: null and pretrained: <state dict file>"
        )
    return torchvision.models.get_model(arch, weights=resolved, **kwargs)
