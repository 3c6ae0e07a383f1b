"""What Lightning does not carry over a mid-epoch resume by itself: the training loader's
position (when the loader was set up before the checkpoint was restored) and the running
epoch aggregates of logged values. Both reach into Lightning's loops (pinned: lightning 2.x).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer


def restore_loader_position(trainer: Trainer) -> None:
    """Give the training loaders their saved position when Lightning could not.

    Lightning loads stateful loaders' ``state_dict`` only when it sets the train loader up
    after restoring the checkpoint; a model that reads ``trainer.estimated_stepping_batches``
    in ``configure_optimizers`` (for schedules) sets it up before, and the position would be
    dropped. Here the pending states are loaded and the iterator is made again.
    """
    fit_loop = trainer.fit_loop
    pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
    loader = getattr(fit_loop, "_combined_loader", None)
    fetcher = getattr(fit_loop, "_data_fetcher", None)
    if not pending or loader is None or fetcher is None:
        return
    loader._load_state_dicts(pending)
    fit_loop._combined_loader_states_to_load = []
    iter(fetcher)


def epoch_accumulators(trainer: Trainer) -> dict[str, list[Any]]:
    """This rank's running epoch aggregates of ``self.log(..., on_epoch=True)`` values,
    while an epoch is under way (empty at its end): ``name -> [value, batch count]``."""
    loop = trainer.fit_loop.epoch_loop
    if not 0 < loop.batch_progress.current.processed < trainer.num_training_batches:
        return {}
    out: dict[str, list[Any]] = {}
    for key, metric in loop._results.items():
        if metric.is_tensor and metric.meta.on_epoch and not metric.has_reset:
            count = metric.cumulated_batch_size if metric.meta.is_mean_reduction else None
            out[key] = [metric.value.detach().cpu().clone(),
                        None if count is None else count.detach().cpu().clone()]
    return out


def merge_accumulators(trainer: Trainer, saved: dict[str, list[Any]]) -> None:
    """Fold saved aggregates into the entries this epoch has logged so far (removing them
    from ``saved``). Adding the earlier sum to the first new value gives the same bits as
    the uninterrupted run (float addition is commutative)."""
    results = trainer.fit_loop.epoch_loop._results
    for key in [k for k in saved if k in results]:
        value, count = saved.pop(key)
        metric = results[key]
        value = value.to(metric.value.device, metric.value.dtype)
        if metric.meta.is_mean_reduction:
            metric.value = metric.value + value
            metric.cumulated_batch_size = metric.cumulated_batch_size + count.to(
                metric.cumulated_batch_size.device)
        elif metric.meta.is_sum_reduction:
            metric.value = metric.value + value
        else:
            metric.value = metric.meta.reduce_fx(metric.value, value)
