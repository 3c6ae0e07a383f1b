"""Option groups of the pretraining models (``model.queue``, ``model.crops``, ``model.shuffle_bn``,
``model.schedules``, ``model.performance``) with their defaults.

Each group is a ``TypedDict`` used as the annotation of a parameter of
:class:`~sce_builtins.models.siamese.SiameseModel` or a method model (SCE's ``schedules`` adds
``coeff`` and ``temp_m`` to the ``momentum`` group every method has), so ``sce check`` validates its keys like component arguments (closest names,
allowed keys, types, bounds) with their config path. A config may give only some keys of a
group; :func:`with_defaults` fills the others from the ``DEFAULT_*`` mappings below.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypedDict

from sce_builtins.models.momentum import MomentumScheduleKind
from sce_builtins.optim.value_schedule import ValueScheduleKind
from sce_core.constraints import NonNegative, Positive, Range, UnitInterval

Temperature = Annotated[float, Range(gt=0)]


class QueueOptions(TypedDict):
    """queue options"""

    size: Annotated[int, Positive]
    feature_dim: Annotated[int, Positive]


class CropOptions(TypedDict, total=False):
    """crop options"""

    num_global: Annotated[int, Positive]
    num_local: Annotated[int, NonNegative]
    mutual_pass: bool
    num_splits: int
    num_splits_per_combination: int


class ShuffleBNOptions(TypedDict, total=False):
    """shuffle-BN options"""

    enabled: bool
    num_devices: int
    simulate_n_devices: Annotated[int, Positive]


class PerformanceOptions(TypedDict, total=False):
    """performance options"""

    channels_last: bool
    compile: bool
    compile_backend: str
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] | None


class CoeffSchedule(TypedDict, total=False):
    """coeff schedule"""

    warmup_epochs: Annotated[int, NonNegative]
    warmup_start: Annotated[float, UnitInterval]
    warmup_kind: ValueScheduleKind | None
    kind: ValueScheduleKind | None
    final: Annotated[float, UnitInterval]


class TempMSchedule(TypedDict, total=False):
    """temp_m schedule"""

    warmup_epochs: Annotated[int, NonNegative]
    warmup_start: Temperature
    warmup_kind: ValueScheduleKind | None


class MomentumSchedule(TypedDict, total=False):
    """momentum schedule"""

    initial: Annotated[float, UnitInterval]
    kind: MomentumScheduleKind


class MomentumSchedules(TypedDict, total=False):
    """schedules"""

    momentum: MomentumSchedule


class Schedules(TypedDict, total=False):
    """schedules"""

    coeff: CoeffSchedule
    temp_m: TempMSchedule
    momentum: MomentumSchedule


DEFAULT_CROPS: CropOptions = {
    "num_global": 2, "num_local": 0, "mutual_pass": False,
    "num_splits": 0, "num_splits_per_combination": 2,
}
DEFAULT_SHUFFLE_BN: ShuffleBNOptions = {"enabled": False, "num_devices": -1, "simulate_n_devices": 8}
DEFAULT_PERFORMANCE: PerformanceOptions = {"channels_last": False, "compile": False,
                                           "compile_backend": "inductor", "compile_mode": None}
DEFAULT_MOMENTUM_SCHEDULES: MomentumSchedules = {"momentum": {"initial": 0.999, "kind": "constant"}}
DEFAULT_SCHEDULES: Schedules = {
    "coeff": {"warmup_epochs": 0, "warmup_start": 1.0, "warmup_kind": "linear", "kind": None,
              "final": 0.0},
    "temp_m": {"warmup_epochs": 0, "warmup_start": 0.05, "warmup_kind": "cosine"},
    "momentum": {"initial": 0.999, "kind": "constant"},
}


def with_defaults(group: str, given: Mapping[str, Any] | None, defaults: Mapping[str, Any],
                  owner: str = "sce") -> dict[str, Any]:
    """``given`` over a copy of ``defaults``, nested mappings merged key by key.

    ``group`` names the option group and ``owner`` the model in the error an unknown key raises
    (Python callers; the config's keys are checked by ``sce check`` before anything is built).
    """
    out = copy.deepcopy(dict(defaults))
    for key, value in (given or {}).items():
        if key not in defaults:
            raise ValueError(f"{owner}: {group} has no key '{key}' (keys: {', '.join(defaults)})")
        default = defaults[key]
        if isinstance(default, Mapping):
            out[key] = with_defaults(f"{group}.{key}", value, default, owner)
        else:
            out[key] = value
    return out
