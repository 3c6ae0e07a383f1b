"""Lightning glue every run gets: exact-resume RNG state, preemption checkpoint, export, plots.

These are framework concerns (they know nothing of SCE): a model exposes its online trunk as
the ``trunk`` attribute, which is all :func:`export_trunk` relies on.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

CONFIG_KEY = "sce_config"
TRUNK_PREFIX = "trunk."


class RNGStateCallback(Callback):
    """Saves the Python, NumPy and torch RNG states and restores them when training resumes.

    The states are captured where training can stop (after every training batch and at the
    end of every epoch, after validation), so work done after training (reports, a final
    save) does not shift them. Restoring happens at ``on_train_start`` (after Lightning's
    sanity check, which draws random numbers), so a resumed run continues the same random
    stream as an uninterrupted one. States are stored as tensors and tuples so
    ``torch.load(weights_only=True)`` reads them.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._captured: dict[str, Any] | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._captured = self.current_state()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._captured = self.current_state()

    def state_dict(self) -> dict[str, Any]:
        return self._captured if self._captured is not None else self.current_state()

    @staticmethod
    def current_state() -> dict[str, Any]:
        """The RNG states of this process right now."""
        version, mt_state, gauss = random.getstate()
        np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
        return {
            "python": [version, list(mt_state), gauss],
            "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos),
                      int(np_has_gauss), float(np_cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        state, self._pending = self._pending, None
        if not state:
            return
        version, mt_state, gauss = state["python"]
        random.setstate((version, tuple(mt_state), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class ConfigInCheckpoint(Callback):
    """Stores the run's resolved config (plain data) in every checkpoint, for ``sce export``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config


class PreemptionCheckpoint(Callback):
    """On SIGTERM (SLURM preemption, ``scancel``, ``kill``), save ``path`` and let the run stop.

    Lightning turns SIGTERM into a ``SIGTERMException`` raised after the current training step
    (on every rank); this callback saves the checkpoint from its ``on_exception`` hook, so a
    signal that arrives while the run is still starting is handled too. Restarting the same
    command with ``resume=auto`` continues from that checkpoint.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.saved = False

    def on_exception(self, trainer: Trainer, pl_module: LightningModule,
                     exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(exception, SIGTERMException) or trainer.state.stage is None:
            return
        if trainer.global_step == 0:
            print("sce: stop requested by a signal before the first step; nothing to save")
            return
        trainer.save_checkpoint(self.path)
        self.saved = True
        if trainer.is_global_zero:
            print(f"sce: stop requested by a signal; saved {self.path} at step "
                  f"{trainer.global_step} (restart the same command with resume=auto)")


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


def read_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged series of a run's CSV log as ``name -> [(step, value), ...]``."""
    from sce_core.errors import SCEError

    files = sorted(run_dir.glob("logs/metrics.csv")) or sorted(run_dir.rglob("metrics.csv"))
    if not files:
        raise SCEError(f"no metrics.csv under '{run_dir}'; is it a run folder of `sce pretrain`?")
    series: dict[str, list[tuple[int, float]]] = {}
    with files[0].open() as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


PLOT_GROUPS = {
    "loss": ("loss",),
    "lr": ("lr", "learning_rate"),
    "momentum": ("momentum",),
    "accuracy": ("acc", "top1", "knn"),
}


def plot_run(run_dir: Path, groups: dict[str, Iterable[str]] | None = None) -> list[Path]:
    """One PNG per group of series (loss, lr, momentum, accuracy) in ``run_dir/plots``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_metrics(run_dir)
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for group, needles in (groups or PLOT_GROUPS).items():
        names = [n for n in sorted(series) if any(s in n.lower() for s in needles)]
        if group == "loss":
            names = [n for n in names if "acc" not in n.lower()]
        if not names:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name in names:
            steps, values = zip(*series[name])
            ax.plot(steps, values, label=name, marker="." if len(steps) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(group)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{group}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
