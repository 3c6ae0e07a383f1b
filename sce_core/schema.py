"""What each config key holds, as data the walker reads (:mod:`sce_core.walk`).

A key's declared type becomes one of four slots:

* :class:`ComponentSlot` - one component of a kind (``model.trunk``), maybe built later;
* :class:`ManySlot` - a list or a ``name: node`` mapping of components (``callbacks``);
* :class:`OptionsSlot` - a typed mapping with declared keys: a ``TypedDict`` in a component's
  signature (split and loader options), ``lightning.Trainer``'s arguments, the ``seed`` section;
* :class:`ValueSlot` - a plain value checked against its annotation and constraints.

:data:`SECTIONS` declares the framework's top-level sections of a run config once; plugins add
the sections they read through the ``sce_sections`` hook. :func:`run_sections` is both, and
validation, building and the resolved config all read it.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypedDict, Union

from sce_core.constraints import Range
from sce_core.signature import Param
from sce_core.slots import slot_of

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class ComponentSlot:
    """One component of ``kind`` (None: any kind, named ``kind/name`` or by a unique name)."""

    kind: str | None
    lazy: bool = False
    args_param: str | None = None


@dataclass(frozen=True)
class ManySlot:
    """A list, or a ``name: node`` mapping, of components of one slot."""

    item: ComponentSlot


@dataclass(frozen=True)
class OptionsSlot:
    """A mapping whose keys are declared (``fields``); ``owner`` names it in messages."""

    owner: str
    fields: Mapping[str, Param]
    word: str = "key"  # what a key is called in messages ("argument" for lightning.Trainer)
    notes: Mapping[str, str] = field(default_factory=dict)  # known wrong keys -> the fix
    node_kinds: Mapping[str, str] = field(default_factory=dict)  # keys that may hold a node


@dataclass(frozen=True)
class ValueSlot:
    """A plain value; component nodes inside it are found by ``_name_`` (kind ``node_kind``)."""

    annotation: Any = Any
    node_kind: str | None = None


Slot = Union[ComponentSlot, ManySlot, OptionsSlot, ValueSlot]


def _unwrap_optional(ann: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` -> ``X`` (for finding a TypedDict)."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _unwrap_optional(typing.get_args(ann)[0])
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(ann) if a is not type(None)]
        return _unwrap_optional(rest[0]) if len(rest) == 1 else ann
    return ann


def is_typed_dict(ann: Any) -> bool:
    """Whether ``ann`` is a ``TypedDict`` class."""
    return isinstance(ann, type) and issubclass(ann, dict) and hasattr(ann, "__required_keys__")


@cache
def options_of(typed: type) -> OptionsSlot:
    """The :class:`OptionsSlot` of a ``TypedDict``: its keys, types and required keys."""
    hints = typing.get_type_hints(typed, include_extras=True)
    required = getattr(typed, "__required_keys__", frozenset())
    fields = {}
    for name, ann in hints.items():
        ann = _strip_required(ann)
        default = _EMPTY if name in required else None
        fields[name] = Param(name, ann, default, slot_of(ann), False)
    doc = (typed.__doc__ or "").strip().splitlines()
    return OptionsSlot(doc[0].rstrip(".") if doc else typed.__name__, fields)


def _strip_required(ann: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin in (typing.Required, typing.NotRequired):
        return typing.get_args(ann)[0]
    return ann


def slot_for(annotation: Any) -> Slot:
    """The slot a declared type stands for."""
    marker = slot_of(annotation)
    if marker is not None:
        item = ComponentSlot(marker.kind, marker.lazy, marker.args_param)
        return ManySlot(item) if marker.many else item
    inner = _unwrap_optional(annotation)
    if is_typed_dict(inner):
        return options_of(inner)
    return ValueSlot(annotation)


# -- top-level sections ---------------------------------------------------------------------
class SeedOptions(TypedDict, total=False):
    """seed_everything"""

    seed: int | None
    workers: bool


class CheckpointOptions(TypedDict, total=False):
    """checkpoint options (<run>/checkpoints/last.ckpt is also written at every epoch end)"""

    every_n_steps: typing.Annotated[int | None, Range(ge=1)]
    every_minutes: typing.Annotated[float | None, Range(gt=0)]


# Lightning 1 Trainer arguments and what Lightning 2 uses instead.
LIGHTNING1_TRAINER_ARGS = {
    "gpus": "Lightning 2 uses `devices` (with `accelerator`): write trainer.devices=-1 "
            "(and trainer.accelerator=gpu)",
    "tpu_cores": "Lightning 2 uses `devices` with trainer.accelerator=tpu",
    "num_processes": "Lightning 2 uses `devices`",
    "auto_select_gpus": "removed in Lightning 2; use trainer.devices",
    "resume_from_checkpoint": "pass resume=PATH (or resume=auto) to `sce pretrain` instead",
    "checkpoint_callback": "Lightning 2 uses `enable_checkpointing`",
    "progress_bar_refresh_rate": "configure the progress bar callback instead",
    "weights_summary": "Lightning 2 uses `enable_model_summary`",
    "amp_backend": "removed in Lightning 2; use trainer.precision",
    "distributed_backend": "Lightning 2 uses `strategy`",
    "track_grad_norm": "removed in Lightning 2; log norms in a callback",
    "flush_logs_every_n_steps": "removed in Lightning 2",
    "max_steps_per_epoch": "Lightning 2 uses `limit_train_batches`",
}

# Bounds Lightning checks late (or never) on its own arguments.
TRAINER_CONSTRAINTS = {
    "log_every_n_steps": Range(ge=1),
    "max_epochs": Range(ge=-1),
    "min_epochs": Range(ge=0),
    "max_steps": Range(ge=-1),
    "num_nodes": Range(ge=1),
    "accumulate_grad_batches": Range(ge=1),
    "check_val_every_n_epoch": Range(ge=1),
    "num_sanity_val_steps": Range(ge=-1),
    "gradient_clip_val": Range(ge=0),
}
TRAINER_NODE_KEYS = {"strategy": "strategies"}  # arguments that may be given as a component node


@cache
def trainer_options() -> OptionsSlot:
    """``lightning.Trainer.__init__``'s arguments with their annotations (and our bounds)."""
    from lightning.pytorch import Trainer

    try:
        hints = typing.get_type_hints(Trainer.__init__, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations are not type-checked
        hints = {}
    fields = {}
    for p in list(inspect.signature(Trainer.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        ann = hints.get(p.name, Any)
        if p.name in TRAINER_CONSTRAINTS:
            ann = typing.Annotated[ann, TRAINER_CONSTRAINTS[p.name]]
        fields[p.name] = Param(p.name, ann, p.default, None, False)
    return OptionsSlot("lightning.Trainer", fields, "argument", LIGHTNING1_TRAINER_ARGS,
                       TRAINER_NODE_KEYS)


@dataclass(frozen=True)
class Section:
    """A top-level section of a run config: its slot and whether a run needs it."""

    slot: Slot | typing.Callable[[], Slot]
    required: bool = False
    error: str | None = None  # why the section cannot be used (two plugins declare it)

    def resolve(self) -> Slot:
        """The slot (computed on first use for sections that import Lightning)."""
        return self.slot() if callable(self.slot) else self.slot


SECTIONS: dict[str, Section] = {
    "datamodule": Section(ComponentSlot("datamodules"), required=True),
    "model": Section(ComponentSlot("models"), required=True),
    "trainer": Section(trainer_options),
    "callbacks": Section(ManySlot(ComponentSlot("callbacks"))),
    "loggers": Section(ManySlot(ComponentSlot("loggers"))),
    "seed": Section(options_of(SeedOptions)),
    "checkpoint": Section(options_of(CheckpointOptions)),
    "dir": Section(ValueSlot(Mapping[str, Any])),
    "resume": Section(ValueSlot(Union[str, bool, None])),
    "code": Section(ValueSlot(Union[list[str], str, None])),
    "name": Section(ValueSlot(str)),
    "notes": Section(ValueSlot()),
}


def run_sections() -> dict[str, Section]:
    """The core's :data:`SECTIONS` plus those every ``sce_sections`` hook declares.

    A plugin cannot redeclare a core section (its declaration is ignored here and reported by
    ``sce plugin validate``); a name two third-party plugins declare is unusable.
    """
    from sce_core.hooks import declared

    sections = dict(SECTIONS)
    for name, annotation in declared("sce_sections", "top-level section").items():
        if name in SECTIONS:
            continue
        if isinstance(annotation, Exception):
            sections[name] = Section(ValueSlot(), error=str(annotation))
        else:
            sections[name] = Section(slot_for(annotation))
    return sections
