"""Where each flat key of the seed's (eztorch's) ``model:`` section lives in our grouped one.

The table is the documented migration of docs/reference.md §6.1; the seed tests use it to check
that the shipped recipe keeps every seed value, and to build the seed's model section.
"""

from __future__ import annotations

import copy
from typing import Any

#: seed key -> path inside our ``model:`` node.
SEED_MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "num_global_crops": ("crops", "num_global"),
    "num_local_crops": ("crops", "num_local"),
    "mutual_pass": ("crops", "mutual_pass"),
    "num_splits": ("crops", "num_splits"),
    "num_splits_per_combination": ("crops", "num_splits_per_combination"),
    "shuffle_bn": ("shuffle_bn", "enabled"),
    "num_devices": ("shuffle_bn", "num_devices"),
    "simulate_n_devices": ("shuffle_bn", "simulate_n_devices"),
    "warmup_epoch_coeff": ("schedules", "coeff", "warmup_epochs"),
    "start_warmup_coeff": ("schedules", "coeff", "warmup_start"),
    "warmup_scheduler_coeff": ("schedules", "coeff", "warmup_kind"),
    "scheduler_coeff": ("schedules", "coeff", "kind"),
    "final_scheduler_coeff": ("schedules", "coeff", "final"),
    "warmup_epoch_temp_m": ("schedules", "temp_m", "warmup_epochs"),
    "start_warmup_temp_m": ("schedules", "temp_m", "warmup_start"),
    "warmup_scheduler_temp_m": ("schedules", "temp_m", "warmup_kind"),
    "initial_momentum": ("schedules", "momentum", "initial"),
    "scheduler_momentum": ("schedules", "momentum", "kind"),
}


def our_path(seed_path: tuple) -> tuple:
    """The path of a seed config leaf in our config (``model.<flat key>`` moves to its group)."""
    if len(seed_path) >= 2 and seed_path[0] == "model" and seed_path[1] in SEED_MODEL_KEYS:
        return ("model", *SEED_MODEL_KEYS[seed_path[1]], *seed_path[2:])
    return seed_path


def grouped_model(seed_model: dict[str, Any]) -> dict[str, Any]:
    """The seed's flat ``model:`` node with its keys moved into our option groups."""
    out: dict[str, Any] = {}
    for key, value in seed_model.items():
        path = SEED_MODEL_KEYS.get(key, (key,))
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = copy.deepcopy(value)
    return out
