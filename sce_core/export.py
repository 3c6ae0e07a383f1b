"""``sce export``: the online trunk's weights of a checkpoint, and the config to rebuild it.

A model exposes its online trunk as the ``trunk`` attribute, which is all this relies on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sce_core.run_callbacks import CONFIG_KEY

TRUNK_PREFIX = "trunk."


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint read with ``weights_only=True``; a clear error if unreadable."""
    from sce_core.errors import SCEError

    if not path.is_file():
        raise SCEError(f"checkpoint '{path}' does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised as a one-line error
        raise SCEError(f"cannot read checkpoint '{path}' with weights_only=True: "
                       f"{str(exc).splitlines()[0]}") from exc


def export_trunk(checkpoint: Path, output: Path) -> Path:
    """Write the online trunk's plain state dict to ``output`` and its config beside it."""
    from omegaconf import OmegaConf

    from sce_core.errors import SCEError

    ckpt = load_checkpoint(checkpoint)
    state = ckpt.get("state_dict", ckpt)
    trunk = {k[len(TRUNK_PREFIX):]: v for k, v in state.items() if k.startswith(TRUNK_PREFIX)}
    if not trunk:
        raise SCEError(f"checkpoint '{checkpoint}' has no '{TRUNK_PREFIX}*' weights; "
                       f"is it an sce-core pretraining checkpoint?")
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(trunk, output)
    trunk_cfg = ((ckpt.get(CONFIG_KEY) or {}).get("model") or {}).get("trunk")
    if isinstance(trunk_cfg, dict):
        node = {k: v for k, v in trunk_cfg.items() if k != "_provider_"}
        node["pretrained"] = str(output.resolve())
        OmegaConf.save(OmegaConf.create(node), output.with_suffix(".yaml"))
    return output
