"""``sce export CKPT OUT``: the online trunk's weights of a checkpoint, and the config to
rebuild it (a command of the built-ins, declared in ``sce.commands``).

A model exposes its online trunk as the ``trunk`` attribute, which is all this relies on.
``OUT`` and its sibling ``<stem>.yaml`` are never overwritten without ``force``; ``OUT`` may
never be the input checkpoint itself nor a ``.yaml``/``.yml`` file, even with ``force``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sce_core.run_callbacks import CONFIG_KEY

TRUNK_PREFIX = "trunk."
YAML_SUFFIXES = (".yaml", ".yml")


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


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(checkpoint: Path, output: Path) -> None:
    """Refuse an output that is a YAML file or the input checkpoint (``--force`` or not)."""
    from sce_core.errors import SCEError

    if output.suffix.lower() in YAML_SUFFIXES:
        raise SCEError(f"sce export: OUT '{output}' ends in {output.suffix}, but the trunk config "
                       f"is written to <stem>.yaml beside OUT; give a weights file such as trunk.pt")
    for target in (output, output.with_suffix(".yaml")):
        if _same_file(target, checkpoint):
            raise SCEError(f"sce export: '{target}' is the input checkpoint '{checkpoint}'; "
                           f"give another OUT (--force never replaces the input)")


def export_trunk(checkpoint: Path, output: Path, force: bool = False) -> Path:
    """Write the online trunk's plain state dict to ``output`` and its config beside it.

    Existing ``output`` or ``<stem>.yaml`` files are refused unless ``force``.
    """
    from omegaconf import OmegaConf

    from sce_core.errors import SCEError
    from sce_core.outputs import atomic_torch_save, refuse_existing

    _check_output(checkpoint, output)
    ckpt = load_checkpoint(checkpoint)
    state = ckpt.get("state_dict", ckpt)
    trunk = {k[len(TRUNK_PREFIX):]: v for k, v in state.items() if k.startswith(TRUNK_PREFIX)}
    if not trunk:
        raise SCEError(f"checkpoint '{checkpoint}' has no '{TRUNK_PREFIX}*' weights; "
                       f"is it an sce-core pretraining checkpoint?")
    trunk_cfg = ((ckpt.get(CONFIG_KEY) or {}).get("model") or {}).get("trunk")
    yaml_path = output.with_suffix(".yaml")
    refuse_existing(output, force, "sce export")
    if isinstance(trunk_cfg, dict):
        refuse_existing(yaml_path, force, "sce export")
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(trunk, output)
    if isinstance(trunk_cfg, dict):
        node = {k: v for k, v in trunk_cfg.items() if k != "_provider_"}
        node["pretrained"] = str(output.resolve())
        OmegaConf.save(OmegaConf.create(node), yaml_path)
    return output


def build_parser() -> argparse.ArgumentParser:
    """The ``sce export`` argument parser."""
    parser = argparse.ArgumentParser(prog="sce export",
                                     description="Write the online trunk's weights from a checkpoint.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path,
                        help="weights file (not .yaml); <stem>.yaml is written beside it")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing OUT and <stem>.yaml (never the input checkpoint)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sce export ARGS``; errors are raised as one-line ``SCEError`` for ``sce``."""
    args = build_parser().parse_args(argv)
    print(f"wrote {export_trunk(args.checkpoint, args.output, force=args.force)}")
    return 0
