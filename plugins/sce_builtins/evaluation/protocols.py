"""``sce evaluate linear|knn``: what each built-in protocol does with a prepared run.

The core prepares the run (validated config, run folder, Trainer, stop handling) and calls the
protocol named on the command line; the built-ins declare these through the
``sce_evaluation_protocols`` hook. Importing this module imports neither torch nor Lightning.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

TEST_BEST = "best"


class EvaluationOptions(TypedDict, total=False):
    """evaluation options (read by `sce evaluate linear`)"""

    test_checkpoint: Literal["best", "last"]


def _options(run: Any) -> EvaluationOptions:
    return dict(run.plain.get("evaluation") or {})  # type: ignore[return-value]


def best_checkpoint(trainer: Any) -> str | None:
    """The best checkpoint of the first ``ModelCheckpoint`` that monitors a metric, if any."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    best = [c for c in trainer.checkpoint_callbacks
            if isinstance(c, ModelCheckpoint) and c.monitor and c.best_model_path]
    return best[0].best_model_path if best else None


def linear(run: Any) -> list[dict[str, float]]:
    """Train the classifier on the frozen trunk, then test it.

    The tested weights are those of the best monitored checkpoint (``evaluation.
    test_checkpoint: best``, the default; the final weights when no callback monitors a
    metric) or the final ones (``last``).
    """
    run.fit()
    want = _options(run).get("test_checkpoint", TEST_BEST)
    ckpt_path = best_checkpoint(run.trainer) if want == TEST_BEST else None
    return run.trainer.test(run.model, datamodule=run.datamodule, ckpt_path=ckpt_path,
                            weights_only=True)


def knn(run: Any) -> list[dict[str, float]]:
    """Test only: the model builds its feature bank from the training split at test start."""
    return run.trainer.test(run.model, datamodule=run.datamodule, weights_only=True)


PROTOCOLS = {"linear": linear, "knn": knn}
