"""``sce extract CONFIG OUT.npz [--split S] [OVERRIDES]``: one feature row per video of a split
(a command of the built-ins, declared in ``sce.commands``).

The config is an evaluation config (its ``model`` has a ``trunk`` and a ``test_transform``,
e.g. ``eval/retrieval_r3d18_ucf101``); ``trainer.devices`` and ``trainer.strategy`` run it on
several processes. ``OUT`` holds ``features`` (N x D float32), ``labels`` (N int64) and ``paths``
(N strings, the annotation's video paths) in the split's order; an existing ``OUT`` is refused
unless ``--force``.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NPZ_SUFFIX = ".npz"


def _check_output(output: Path, force: bool) -> None:
    from sce_core.errors import SCEError
    from sce_core.outputs import refuse_existing

    if output.suffix.lower() != NPZ_SUFFIX:
        raise SCEError(f"sce extract: OUT '{output}' must end in {NPZ_SUFFIX} (a NumPy archive); "
                       f"e.g. features.npz")
    refuse_existing(output, force, "sce extract")


def extract(config: str, output: Path, split: str = "test", overrides: Sequence[str] = (),
            force: bool = False) -> Path | None:
    """Embed every video of ``split`` and write ``output`` (on rank 0; the others return None)."""
    _check_output(output, force)  # before anything heavy is imported
    import numpy as np
    from lightning.pytorch import seed_everything

    from sce_builtins.evaluation.extraction import FeatureExtraction, extraction_spec
    from sce_core.building import build
    from sce_core.console import quiet_lightning
    from sce_core.errors import SCEError
    from sce_core.outputs import atomic_write
    from sce_core.runner import build_trainer, prepare

    quiet_lightning()
    _resolved, plain = prepare(config, overrides)
    seed = dict(plain.get("seed") or {})
    if "seed" in seed:
        seed_everything(seed["seed"], workers=bool(seed.get("workers", True)))
    datamodule = build("datamodules", plain["datamodule"], path="datamodule")
    model = build("models", plain["model"], path="model")
    trunk = getattr(model, "trunk", None)
    if trunk is None:
        raise SCEError(f"sce extract: model '{plain['model'].get('_name_')}' has no trunk; use an "
                       f"evaluation config (e.g. eval/retrieval_r3d18_ucf101)")
    extraction = FeatureExtraction(trunk, getattr(model, "test_transform", None), datamodule,
                                   extraction_spec(model, datamodule, split))
    trainer = build_trainer(plain, output.parent, [], logger=False, enable_checkpointing=False)
    trainer.test(extraction, verbose=False)
    if trainer.global_rank != 0:
        return None
    found = extraction.extracted()

    def write(handle: Any) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, features=found.features, labels=found.labels, paths=found.paths)
        handle.write(buffer.getvalue())

    atomic_write(output, write)
    print(f"sce extract: wrote {output} ({found.features.shape[0]} videos of the {split} split, "
          f"{found.features.shape[1]} features each)")
    return output


def build_parser() -> argparse.ArgumentParser:
    """The ``sce extract`` argument parser."""
    parser = argparse.ArgumentParser(prog="sce extract",
                                     description="Write one feature row per video of a split.")
    parser.add_argument("config", help="an evaluation config (path or shipped name)")
    parser.add_argument("output", type=Path, help="the .npz file to write (features, labels, paths)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, as for sce evaluate (e.g. dir.data=... model.trunk.pretrained=...)")
    parser.add_argument("--split", choices=["train", "val", "test"], default="test",
                        help="the split to embed (default: test)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sce extract ARGS``; errors are raised as one-line ``SCEError`` for ``sce``."""
    args = build_parser().parse_intermixed_args(argv)
    extract(args.config, args.output, args.split, args.overrides, args.force)
    return 0
