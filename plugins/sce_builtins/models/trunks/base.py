"""Shared trunk behaviour: the trunk contract and loading of exported weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

_SHOWN_KEYS = 6


class Trunk(nn.Module):
    """Base of the built-in trunks: ``(B, C, T, H, W)`` (or images) -> ``(B, num_features)``.

    Subclasses set ``num_features`` and ``num_layers`` and implement ``forward_features``
    (the feature map before global pooling), ``forward`` and ``layer_id``.
    """

    num_features: int
    num_layers: int = 1
    component_name: str = "trunk"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before global pooling (default: the forward output)."""
        return self(x)

    def layer_id(self, name: str) -> int:
        """Layer index of parameter ``name`` for layer-wise lr decay (0 = closest to the input)."""
        return 0

    def load_pretrained(self, path: str) -> None:
        """Load a plain state dict file (``sce export``) into this trunk, strictly."""
        load_state_dict_file(self, path, self.component_name)


def load_state_dict_file(module: nn.Module, path: str, owner: str) -> None:
    """Load the state dict stored at ``path`` into ``module`` with exact key matching.

    The file must hold a mapping of parameter/buffer names to tensors, readable by
    ``torch.load(weights_only=True)``. If its keys all carry a ``model.`` prefix that the
    module lacks (a ``video_head_model`` export whose head has no parameters, loaded into the
    bare ``model`` trunk), the prefix is removed first. Any other mismatch raises a
    ``ValueError`` naming the missing and unexpected keys.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(
            f"{owner}: pretrained file {str(file)!r} does not exist; give the path of a state "
            "dict written by `sce export`"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one message
        raise ValueError(
            f"{owner}: cannot read pretrained file {str(file)!r} as a weights-only state dict "
            f"({type(exc).__name__}); write it with `sce export`"
        ) from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        hint = (
            "it looks like a training checkpoint; extract the trunk with `sce export CKPT OUT`"
            if isinstance(state, Mapping) and "state_dict" in state
            else "it must map parameter names to tensors"
        )
        raise ValueError(f"{owner}: pretrained file {str(file)!r} is not a plain state dict; {hint}")
    expected = set(module.state_dict())
    state = _maybe_strip_prefix(dict(state), expected, "model.")
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{owner}: pretrained file {str(file)!r} does not match the trunk: "
            f"missing keys {_show(missing)}, unexpected keys {_show(unexpected)}; export the "
            "same trunk architecture"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())
        raise ValueError(f"{owner}: pretrained file {str(file)!r} has wrong shapes: {first}") from exc


def _maybe_strip_prefix(state: dict, expected: set[str], prefix: str) -> dict:
    """Remove ``prefix`` from every key when that, and only that, makes the keys match."""
    if set(state) == expected or not state or not all(k.startswith(prefix) for k in state):
        return state
    stripped = {k[len(prefix):]: v for k, v in state.items()}
    return stripped if set(stripped) == expected else state


def _show(keys: list[str]) -> str:
    """Short rendering of a key list: the first few and the count."""
    if not keys:
        return "[] (0)"
    more = ", ..." if len(keys) > _SHOWN_KEYS else ""
    return "[" + ", ".join(keys[:_SHOWN_KEYS]) + more + f"] ({len(keys)})"


def has_parameters(module: nn.Module | None) -> bool:
    """Whether ``module`` exists and owns at least one parameter."""
    return module is not None and any(True for _ in module.parameters())
