"""Building torchvision models without ever downloading weights or unpickling code.

Named weights are read from the torch hub cache (``<hub dir>/checkpoints/<file of the URL>``)
by this module itself, never through torch hub (which unpickles with ``weights_only=False``
and checks the hash only when it downloads): the file's SHA-256 must start with the hash in
its name (torchvision's ``-<hash>.pth`` convention), checked on every load, and it is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")
"""The hash prefix in a torchvision weights file name (torch hub's ``HASH_REGEX``)."""

_CHUNK = 1 << 20


def cached_weights_path(url: str) -> str:
    """Where torch hub keeps the file of ``url``: ``<hub dir>/checkpoints/<basename>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_cached_weights(url: str, what: str) -> dict[str, torch.Tensor]:
    """The state dict of ``url`` from the hub cache: hash checked, read with ``weights_only``.

    Raises ``ValueError`` (one line starting with ``what``, e.g. ``"tv_r3d_18: weights
    'DEFAULT'"``) when the file is missing, does not match the hash in its name, or is not a
    plain tensor file.
    """
    path = cached_weights_path(url)
    if not os.path.isfile(path):
        raise ValueError(
            f"{what} need a download, which sce-core never does; place {url} at "
            f"{path}, or give weights: null and pretrained: <state dict file>"
        )
    match = HASH_IN_NAME.search(os.path.basename(path))
    if match and not _sha256(path).startswith(match.group(1)):
        raise ValueError(
            f"{what}: cached file {path} does not match the SHA-256 prefix {match.group(1)} "
            f"in their name; delete the file and place {url} there again"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised as a one-line error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"{what}: cannot read cached file {path} with weights_only=True ({first}); "
            "delete the file"
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(f"{what}: cached file {path} holds no state dict; delete the file")
    return state


def build_torchvision_model(arch: str, weights: str | None, owner: str, **kwargs: Any) -> nn.Module:
    """``torchvision.models.get_model(arch)`` with ``weights`` resolved offline and safely.

    ``weights`` is null (random init) or a torchvision weights name (``DEFAULT``,
    ``KINETICS400_V1``, ``IMAGENET1K_V2``, or ``<Enum>.<NAME>``). Named weights are used only
    when their file is already in the torch hub cache (see ``load_cached_weights``); otherwise
    a ``ValueError`` explains where to put the file or how to use ``pretrained`` instead.
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
    state = load_cached_weights(resolved.url, f"{owner}: weights {weights!r}")
    if "categories" in resolved.meta:
        kwargs.setdefault("num_classes", len(resolved.meta["categories"]))
    net = torchvision.models.get_model(arch, weights=None, **kwargs)
    net.load_state_dict(state)
    return net


def resnet_layer_id(name: str) -> int:
    """Layer id of a parameter of a torchvision ResNet: ``layer<k>.*`` -> k, the stem 0."""
    head = name.split(".")[0]
    if head.startswith("layer") and head[5:].isdigit():
        return int(head[5:])
    return 0
