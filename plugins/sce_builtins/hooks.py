"""Built-in hook implementations: the sections, protocols, default config and kind contracts
the built-ins declare, and semantic checks that span several config sections.

Imported by commands that fire hooks; keep it light (no torch at import time).
"""

from __future__ import annotations

from typing import Any

from sce_core.errors import Issue
from sce_core.hooks import hookimpl

DEFAULT_CONFIG = "demo"  # the CPU demo on built-in synthetic videos


def _get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _gpu_decoding_issues(config: dict[str, Any]) -> list[Issue]:
    """``decode_on: gpu`` (nvJPEG) asked for on a machine without a CUDA GPU."""
    nodes = ["datamodule", *(f"datamodule.{split}" for split in ("train", "val", "test"))]
    paths = [f"{node}.{key}.decode_on" for node in nodes for key in ("decoder_args", "decoder")]
    asked = [path for path in paths if _get(config, path) == "gpu"]
    if not asked:
        return []
    import torch  # only when the option is used: `sce check` stays light otherwise

    if torch.cuda.is_available():
        return []
    return [Issue(path, "gpu decodes JPEG frames with nvJPEG on a CUDA GPU and this machine has "
                        f"no CUDA GPU; set {path}=cpu") for path in asked]


EVALUATION_MODELS = ("finetune_classifier", "knn_classifier", "linear_classifier", "video_retrieval")


def _evaluation_issues(config: dict[str, Any]) -> list[Issue]:
    """An evaluation model scores the test split's videos: the config must have one."""
    name = _get(config, "model._name_")
    if not isinstance(name, str) or name.split(":")[-1].split("/")[-1] not in EVALUATION_MODELS:
        return []
    if _get(config, "datamodule.test") is not None:
        return []
    return [Issue("datamodule.test", f"the {name.split('/')[-1]} model scores the test split's videos and "
                  "the config has no test split; add datamodule.test (clip_sampler, transform, "
                  "global_batch_size), as in the shipped eval/ configs")]


def explicit_devices(trainer: Any) -> int | None:
    """Devices per node when the config fixes their number: an int >= 1, a list of device ids,
    or a string Lightning reads as either (``"2"``, ``"0,1"``); None when they are chosen at
    run time (``auto``, ``-1``) or the value is not usable."""
    devices = trainer.get("devices") if isinstance(trainer, dict) else None
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, (list, tuple)):
        devices = len(devices)
    elif isinstance(devices, str) and "," in devices:
        devices = len([d for d in devices.split(",") if d.strip()])
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        return None
    return devices


def _explicit_world_size(trainer: Any) -> int | None:
    """``devices x num_nodes`` when the config fixes the device count (None: chosen at run time,
    as with ``devices: auto`` or ``-1``)."""
    devices = explicit_devices(trainer)
    nodes = trainer.get("num_nodes", 1) if isinstance(trainer, dict) else None
    if devices is None or isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        return None
    return devices * nodes


def _batch_division_issues(config: dict[str, Any]) -> list[Issue]:
    """Each split's ``global_batch_size`` is shared evenly by the devices of the run (the
    datamodule refuses an uneven share when it sets up, after the processes have started)."""
    world = _explicit_world_size(config.get("trainer"))
    if world is None or world == 1:
        return []
    trainer = config["trainer"]
    spread = f"trainer.devices={trainer.get('devices')}"
    if trainer.get("num_nodes", 1) != 1:
        spread += f" x trainer.num_nodes={trainer['num_nodes']}"
    issues = []
    for split in ("train", "val", "test"):
        path = f"datamodule.{split}.global_batch_size"
        size = _get(config, path)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % world == 0:
            continue
        lower, upper = size // world * world, -(-size // world) * world
        choices = f"{lower} or {upper}" if lower else str(upper)
        issues.append(Issue(path, f"{size} is not divisible by the run's {world} devices ({spread}); "
                                  f"choose a multiple of {world} ({choices})"))
    return issues


def _schedule_horizon_issues(config: dict[str, Any]) -> list[Issue]:
    """A model value schedule's warm-up (``model.schedules.<name>.warmup_epochs``) must fit in
    the run (``trainer.max_epochs``, when it is a positive number)."""
    epochs = _get(config, "trainer.max_epochs")
    schedules = _get(config, "model.schedules")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0 or not isinstance(schedules, dict):
        return []
    issues = []
    for name, options in schedules.items():
        warm = options.get("warmup_epochs") if isinstance(options, dict) else None
        if isinstance(warm, (int, float)) and not isinstance(warm, bool) and warm > epochs:
            issues.append(Issue(f"model.schedules.{name}.warmup_epochs",
                                f"a warm-up of {warm} epochs is longer than the run's "
                                f"trainer.max_epochs={epochs}; use at most {epochs}"))
    return issues


@hookimpl
def sce_validate_config(config: dict[str, Any]) -> list[Issue]:
    """The queue's feature size must equal the projector's output size; ``decode_on: gpu``
    needs a CUDA GPU; an evaluation model needs a test split; every batch divides evenly
    among the devices; a model schedule's warm-up fits in the run."""
    issues = (_gpu_decoding_issues(config) + _evaluation_issues(config) + _batch_division_issues(config)
              + _schedule_horizon_issues(config))
    queue_dim = _get(config, "model.queue.feature_dim")
    proj_dim = _get(config, "model.projector.output_dim")
    if isinstance(queue_dim, int) and isinstance(proj_dim, int) and queue_dim != proj_dim:
        issues.append(Issue("model.queue.feature_dim",
                            f"queue features have size {queue_dim} but the projector outputs "
                            f"{proj_dim}; set model.queue.feature_dim={proj_dim}"))
    return issues


@hookimpl
def sce_callbacks(config: dict[str, Any]) -> list[Any]:
    """Every run draws its plots into ``<run>/plots/`` when training ends."""
    from sce_builtins.callbacks.run_plots import RunPlots

    return [RunPlots()]


@hookimpl
def sce_sections() -> dict[str, Any]:
    """``evaluation``: options of `sce evaluate` read by the built-in protocols."""
    from sce_builtins.evaluation.protocols import EvaluationOptions

    return {"evaluation": EvaluationOptions}


@hookimpl
def sce_evaluation_protocols() -> dict[str, Any]:
    """``linear`` (fit, then test the best checkpoint) and ``knn`` (test only)."""
    from sce_builtins.evaluation.protocols import PROTOCOLS

    return dict(PROTOCOLS)


@hookimpl
def sce_default_config() -> str:
    """`sce pretrain` with no CONFIG runs the CPU demo."""
    return DEFAULT_CONFIG


@hookimpl
def sce_kind_contracts() -> dict[str, Any]:
    """Smoke tests and runtime stand-ins of the kinds the built-ins define contracts for."""
    from sce_builtins.contracts import CONTRACTS

    return dict(CONTRACTS)
