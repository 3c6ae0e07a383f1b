"""``sce plot RUN``: PNG plots of the curves a run logged (loss, lr, momentum, accuracies); a
command of the built-ins, declared in ``sce.commands``.

Existing PNGs in ``<run>/plots/`` (earlier ``sce plot`` output included) are never overwritten
unless ``force``: the command checks every file it would write before writing any.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


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


def _group_series(series: dict[str, list[tuple[int, float]]],
                  groups: dict[str, Iterable[str]]) -> dict[str, list[str]]:
    """The series names of each group that has any (``loss`` leaves accuracies out)."""
    found = {}
    for group, needles in groups.items():
        names = [n for n in sorted(series) if any(s in n.lower() for s in needles)]
        if group == "loss":
            names = [n for n in names if "acc" not in n.lower()]
        if names:
            found[group] = names
    return found


def plot_run(run_dir: Path, groups: dict[str, Iterable[str]] | None = None,
             force: bool = False) -> list[Path]:
    """One PNG per group of series (loss, lr, momentum, accuracy) in ``run_dir/plots``.

    Refuses (``OutputExistsError``, nothing written) when one of those PNGs exists, unless
    ``force``.
    """
    from sce_core.outputs import refuse_existing

    series = read_metrics(run_dir)
    out_dir = run_dir / "plots"
    plan = _group_series(series, groups or PLOT_GROUPS)
    for group in plan:
        refuse_existing(out_dir / f"{group}.png", force, "sce plot")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for group, names in plan.items():
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


def plot_embedding(features: dict[str, Any], labels: Any, path: Path, titles: dict[str, str]) -> Path:
    """One t-SNE panel per trunk (``features[name]``: ``(N, D)``), points coloured by ``labels``.

    Deterministic (PCA initialisation, fixed seed); written to ``path`` (replaced).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.manifold import TSNE

    labels = np.asarray(labels)
    fig, axes = plt.subplots(1, len(features), figsize=(4.2 * len(features), 4.2), squeeze=False)
    for ax, (name, feats) in zip(axes[0], features.items()):
        x = np.asarray(feats, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        xy = TSNE(2, init="pca", random_state=0, perplexity=perplexity).fit_transform(x)
        points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=9)
        ax.set_title(titles.get(name, name), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(points, ax=axes[0].tolist(), label="class", shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    """The ``sce plot`` argument parser."""
    parser = argparse.ArgumentParser(prog="sce plot", description="PNG plots of a run's logged curves.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--force", action="store_true", help="overwrite existing PNGs in RUN/plots/")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sce plot ARGS``; errors are raised as one-line ``SCEError`` for ``sce``."""
    args = build_parser().parse_args(argv)
    for path in plot_run(args.run_dir, force=args.force):
        print(f"wrote {path}")
    return 0
