"""Whole-config validation against constructor signatures, before anything heavy is built.

Every problem is collected with its config path; nothing is constructed. Only the modules of
the components a config names are imported.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from typing import Any

from sce_core.errors import (
    AmbiguousComponentError,
    ComponentLoadError,
    ConfigError,
    Issue,
    UnknownComponentError,
)
from sce_core.nodes import (
    NAME_KEY,
    PARTIAL_KEY,
    RESERVED_KEYS,
    is_component_node,
    is_reserved,
    join,
    name_issue,
    split_name,
    to_plain_node,
)
from sce_core.registry import registry, singular
from sce_core.signature import ComponentSpec, Param, check_type, component_spec

MISSING = "???"

# Top-level sections of a run config and what checks them.
COMPONENT_SECTIONS = {"model": "models", "datamodule": "datamodules"}
MAPPING_OF_COMPONENTS = {"callbacks": "callbacks"}
FREE_SECTIONS = frozenset({"dir", "code", "resume", "ckpt_path", "name", "notes", "evaluation",
                           "demo", "sce"})

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
SEED_ARGS = ("seed", "workers")


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _render(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _slot_children(param: Param, value: Any, node: dict) -> list[tuple[Any, Any]]:
    """``(key, child node)`` pairs held by a slot parameter (None means 'not set')."""
    slot = param.slot
    assert slot is not None
    if value is None:
        return []
    if slot.many:
        items = value.values() if isinstance(value, dict) else value
        keys = value.keys() if isinstance(value, dict) else range(len(value))
        return [(k, v) for k, v in zip(keys, items) if v is not None]
    if isinstance(value, str) and slot.args_param:
        args = node.get(slot.args_param) or {}
        return [(None, {NAME_KEY: value, **(args if isinstance(args, dict) else {})})]
    return [(None, value)]


class Validator:
    """Collects :class:`Issue` objects over a config tree."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    # -- components ------------------------------------------------------------------
    def component(self, kind: str | None, node: Any, path: str, runtime: Iterable[str] = ()) -> None:
        """Check one component node (mapping or bare name) and everything under it."""
        if node == MISSING:
            self.add(path, f"mandatory value '???' is not set; pass it as an override ({path}=...)")
            return
        if isinstance(node, str):
            node = {NAME_KEY: node}
        if not is_component_node(node):
            what = f"a {singular(kind)}" if kind else "a component"
            self.add(path, f"expected {what} given as a name or a mapping with `_name_`, "
                           f"got {_render(node)}")
            return
        name_path = join(path, NAME_KEY)
        try:
            kind, name = split_name(kind, node[NAME_KEY], name_path)
            entry = registry(kind).resolve(name)
        except (UnknownComponentError, AmbiguousComponentError) as exc:
            self.issues.append(name_issue(exc, name_path))
            return
        try:
            obj = entry.load()
        except ComponentLoadError as exc:
            self.add(path, str(exc))
            return
        spec = component_spec(obj, kind)
        label = f"{singular(kind)} '{name}'"
        lazy = bool(node.get(PARTIAL_KEY))
        self._arguments(spec, node, path, label, set(runtime), lazy)

    def _arguments(self, spec: ComponentSpec, node: dict, path: str, label: str,
                   runtime: set[str], lazy: bool) -> None:
        params_text = ", ".join(spec.settable()) or "none"
        consumed_args = {p.slot.args_param for p in spec.params.values()
                         if p.slot and p.slot.args_param and isinstance(node.get(p.name), str)}
        for key, value in node.items():
            key_path = join(path, key)
            if is_reserved(key):
                if key not in RESERVED_KEYS:
                    self.add(key_path, f"unknown reserved key (reserved keys: "
                                       f"{', '.join(sorted(RESERVED_KEYS))})")
                continue
            param = spec.params.get(key)
            if param is None:
                if not spec.var_kwargs:
                    self.add(key_path, f"{label} has no parameter '{key}'"
                                       f"{_suggest(key, spec.settable())} (parameters: {params_text})")
                else:
                    self.plain(value, key_path)
                continue
            if param.runtime:
                self.add(key_path, f"'{key}' of {label} is given by the framework at build time; "
                                   f"remove it from the config")
                continue
            if value == MISSING:
                self.add(key_path, f"mandatory value '???' is not set; pass it as an override "
                                   f"({key_path}=...)")
                continue
            if param.slot is not None:
                if value is None and param.default is None:
                    continue
                for child_key, child in _slot_children(param, value, node):
                    child_path = key_path if child_key is None else join(key_path, child_key)
                    self.component(param.slot.kind, child, child_path)
                continue
            if key in consumed_args:
                continue
            if not check_type(value, param.annotation):
                self.add(key_path, f"{label} expects '{key}' to be {param.type_text}, "
                                   f"got {_render(value)}")
            self.plain(value, key_path)
        for param in spec.params.values():
            if param.required and param.name not in node and param.name not in runtime and not lazy:
                self.add(join(path, param.name), f"{label} needs '{param.name}' "
                                                 f"({param.type_text}); add it to the config")

    def plain(self, value: Any, path: str) -> None:
        """Look inside a plain value for nested component nodes and ``???``."""
        if value == MISSING:
            self.add(path, f"mandatory value '???' is not set; pass it as an override ({path}=...)")
        elif is_component_node(value):
            self.component(None, value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.plain(v, join(path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.plain(v, join(path, i))

    # -- plain sections ----------------------------------------------------------------
    def trainer(self, section: Any, path: str = "trainer") -> None:
        """Check ``trainer.*`` keys against ``lightning.Trainer``'s signature."""
        if section is None:
            return
        if not isinstance(section, dict):
            self.add(path, f"expected a mapping of lightning.Trainer arguments, got {_render(section)}")
            return
        from lightning.pytorch import Trainer

        params = inspect.signature(Trainer.__init__).parameters
        for key, value in section.items():
            key_path = join(path, key)
            if is_reserved(key):
                continue
            if key in LIGHTNING1_TRAINER_ARGS:
                self.add(key_path, f"unknown Trainer argument '{key}': {LIGHTNING1_TRAINER_ARGS[key]}")
            elif key not in params:
                self.add(key_path, f"unknown lightning.Trainer argument '{key}'"
                                   f"{_suggest(key, params)}")
            elif key == "strategy" and (is_component_node(value) or
                                        (isinstance(value, str) and value in registry("strategies"))):
                self.component("strategies", value, key_path)
            elif key in ("callbacks", "logger", "plugins") and isinstance(value, (dict, list)):
                self.plain(value, key_path)
            elif value == MISSING:
                self.add(key_path, f"mandatory value '???' is not set ({key_path}=...)")

    def function_args(self, section: Any, allowed: Iterable[str], path: str, owner: str) -> None:
        """Check a plain mapping whose keys are the arguments of ``owner``."""
        if section is None:
            return
        if not isinstance(section, dict):
            self.add(path, f"expected a mapping of {owner} arguments, got {_render(section)}")
            return
        allowed = list(allowed)
        for key, value in section.items():
            if is_reserved(key):
                continue
            if key not in allowed:
                self.add(join(path, key), f"{owner} has no argument '{key}'{_suggest(key, allowed)} "
                                          f"(arguments: {', '.join(allowed)})")
            elif value == MISSING:
                self.add(join(path, key), f"mandatory value '???' is not set ({path}.{key}=...)")

    def run_config(self, cfg: dict) -> None:
        """Check every top-level section of a run config."""
        known = (set(COMPONENT_SECTIONS) | set(MAPPING_OF_COMPONENTS) | FREE_SECTIONS
                 | {"trainer", "seed"})
        for key, value in cfg.items():
            if key in COMPONENT_SECTIONS:
                if value is not None:
                    self.component(COMPONENT_SECTIONS[key], value, key)
            elif key in MAPPING_OF_COMPONENTS:
                if isinstance(value, dict):
                    for name, node in value.items():
                        if node is not None:
                            self.component(MAPPING_OF_COMPONENTS[key], node, join(key, name))
                elif value is not None:
                    self.add(key, "expected a mapping of name: callback node")
            elif key == "trainer":
                self.trainer(value)
            elif key == "seed":
                self.function_args(value, SEED_ARGS, "seed", "seed_everything")
            elif key in FREE_SECTIONS:
                self.plain(value, key)
            else:
                self.add(key, f"unknown top-level section{_suggest(key, known)} "
                              f"(sections: {', '.join(sorted(known))})")


MISSING_SENTINEL = "<sce:missing>"


def _restore_missing(plain: Any, paths: list[str]) -> Any:
    """Put ``???`` back at the paths that were missing (values derived from them keep the
    marker, so only the source of the problem is reported)."""
    import re

    for path in paths:
        keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
        node = plain
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = MISSING
    return plain


def _resolved(cfg: Any, validator: Validator) -> Any:
    """Plain data with interpolations resolved; ``???`` stays ``???`` (values built from a
    missing one carry a marker instead of aborting the whole check)."""
    from omegaconf import DictConfig, OmegaConf

    from sce_core.config import missing_paths

    if not isinstance(cfg, DictConfig):
        return to_plain_node(cfg)
    cfg = cfg.copy()
    missing = missing_paths(cfg)
    for path in missing:
        OmegaConf.update(cfg, path, MISSING_SENTINEL, merge=False)
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        return _restore_missing(plain, missing)
    except Exception as exc:  # noqa: BLE001 - report the failing interpolation as an issue
        key = str(getattr(exc, "full_key", "") or "")
        validator.add(key, f"cannot resolve interpolation: {str(exc).splitlines()[0]}")
        return None


def validate_node(kind: str, node: Any, path: str | None = None,
                  runtime: Iterable[str] = ()) -> list[Issue]:
    """Every problem of one component node (as :class:`Issue` objects)."""
    validator = Validator()
    plain = _resolved(node, validator)
    if plain is not None or node is None:
        validator.component(kind, plain, path or kind, runtime)
    return validator.issues


def validate_config(cfg: Any, *, hooks: bool = True) -> list[Issue]:
    """Every problem of a run config, including those plugins report through hooks."""
    validator = Validator()
    plain = _resolved(cfg, validator)
    if isinstance(plain, dict):
        validator.run_config(plain)
        if hooks:
            from sce_core.hooks import plugin_manager

            for found in plugin_manager().hook.sce_validate_config(config=plain):
                for item in found or ():
                    validator.issues.append(item if isinstance(item, Issue) else Issue("", str(item)))
    return sorted(validator.issues, key=lambda i: i.path)


def check_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` with every problem of a run config, if any."""
    issues = validate_config(cfg)
    if issues:
        raise ConfigError(issues)
