"""``sce evaluate linear|knn|finetune|retrieval``: what each built-in protocol does with a run.

The core prepares the run (validated config, run folder, Trainer, stop handling), calls the
protocol named on the command line and writes what it returns to ``<run>/results.json``; the
built-ins declare these through the ``sce_evaluation_protocols`` hook. Each returns the record
``{"metrics": {name: fraction}, "pretrained": path or None, "dataset": name, "split_id": n or
None}`` (classification ``top1``/``top5``, retrieval ``R@k``). Importing this module imports
neither torch nor Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypedDict

TEST_BEST = "best"
CLASSIFICATION_METRICS = {"test/acc_1": "top1", "test/acc_5": "top5"}
KNN_METRICS = {"test/knn_top1": "top1", "test/knn_top5": "top5"}


class EvaluationOptions(TypedDict, total=False):
    """evaluation options (read by `sce evaluate linear` and `sce evaluate finetune`)"""

    test_checkpoint: Literal["best", "last"]


def _options(run: Any) -> EvaluationOptions:
    return dict(run.plain.get("evaluation") or {})  # type: ignore[return-value]


def best_checkpoint(trainer: Any) -> str | None:
    """The best checkpoint of the first ``ModelCheckpoint`` that monitors a metric, if any."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    best = [c for c in trainer.checkpoint_callbacks
            if isinstance(c, ModelCheckpoint) and c.monitor and c.best_model_path]
    return best[0].best_model_path if best else None


def record(run: Any, logged: list[Mapping[str, float]], names: Mapping[str, str]) -> dict[str, Any]:
    """The results record of a run: the ``names`` of ``trainer.test``'s logged metrics, the
    trunk's ``pretrained`` file (absolute; None: random init), the dataset and its split."""
    values = dict(logged[0]) if logged else {}
    metrics = {new: float(values[old]) for old, new in names.items() if old in values}
    if not metrics:
        from sce_core.errors import SCEError

        raise SCEError("evaluation: no test video was scored (an empty test split, or labels all -1); "
                       "check datamodule.test and its annotations")
    model, data = run.plain.get("model") or {}, run.plain.get("datamodule") or {}
    trunk = model.get("trunk") if isinstance(model.get("trunk"), Mapping) else {}
    pretrained = trunk.get("pretrained")
    return {
        "metrics": metrics,
        "pretrained": str(Path(pretrained).expanduser().resolve()) if pretrained else None,
        "dataset": data.get("_name_") if isinstance(data, Mapping) else data,
        "split_id": data.get("split_id") if isinstance(data, Mapping) else None,
    }


def _fit_then_test(run: Any) -> list[dict[str, float]]:
    run.fit()
    want = _options(run).get("test_checkpoint", TEST_BEST)
    ckpt_path = best_checkpoint(run.trainer) if want == TEST_BEST else None
    return run.test(ckpt_path=ckpt_path)


def linear(run: Any) -> dict[str, Any]:
    """Train the classifier on the frozen trunk, then test it.

    Reports top1 and top5 on videos. The tested weights are those of the best monitored checkpoint (``evaluation.
    test_checkpoint: best``, the default; the final weights when no callback monitors a
    metric) or the final ones (``last``).
    """
    return record(run, _fit_then_test(run), CLASSIFICATION_METRICS)


def finetune(run: Any) -> dict[str, Any]:
    """Train trunk and classifier together, then test them (top1, top5; as linear)."""
    return record(run, _fit_then_test(run), CLASSIFICATION_METRICS)


def knn(run: Any) -> dict[str, Any]:
    """Test only: the model builds its feature bank from the training split at test start."""
    return record(run, run.test(), KNN_METRICS)


def retrieval(run: Any) -> dict[str, Any]:
    """Test only: test videos query the train videos; recall at k (R@1 ... R@50)."""
    logged = run.test()
    recalls = sorted((k for k in (logged[0] if logged else {}) if k.startswith("test/R@")),
                     key=lambda key: int(key.split("@")[1]))
    return record(run, logged, {key: key.split("/", 1)[1] for key in recalls})


PROTOCOLS = {"finetune": finetune, "knn": knn, "linear": linear, "retrieval": retrieval}
