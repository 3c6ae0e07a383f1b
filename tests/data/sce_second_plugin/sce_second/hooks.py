"""sce-second's hooks: a config check and a callback that reports what the run used.

Light at import: torch and Lightning are imported inside the functions.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sce_core import Issue
from sce_core.hooks import hookimpl

REPORT_ENV = "SCE_SECOND_REPORT"


@hookimpl
def sce_validate_config(config: dict[str, Any]) -> list[Issue]:
    """``near_pair``'s two clips and gap must fit in the synthetic videos."""
    data = config.get("datamodule") or {}
    sampler = (data.get("train") or {}).get("clip_sampler") or {}
    synthetic = data.get("synthetic") or {}
    if sampler.get("_name_") != "near_pair" or not synthetic.get("fps"):
        return []
    length = synthetic["frames"] / synthetic["fps"]
    needed = sampler.get("clip_duration", 1.0) + sampler.get("max_gap", 0.5)
    if needed <= length:
        return []
    return [Issue("datamodule.train.clip_sampler.max_gap",
                  f"a clip and the gap need {needed} s but the synthetic videos last {length} s; "
                  f"lower max_gap or clip_duration")]


@hookimpl
def sce_callbacks(config: dict[str, Any]) -> list[Any]:
    """A callback writing, at the end of training, what the run used (``SCE_SECOND_REPORT``)."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return []
    from lightning.pytorch import Callback

    from sce_second import losses, samplers

    class Report(Callback):
        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            with open(path, "w") as f:
                json.dump({"loss_calls": losses.CALLS[0], "sampler_calls": samplers.CALLS[0],
                           "logged": sorted(trainer.callback_metrics),
                           "loss_type": type(pl_module.loss_fn).__name__}, f)

    return [Report()]
