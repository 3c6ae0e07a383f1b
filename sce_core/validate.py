"""Whole-config validation against constructor signatures, before anything heavy is built.

Every problem is collected with its config path; nothing is constructed. Only the modules of
the components a config names are imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sce_core.errors import ConfigError, Issue
from sce_core.nodes import to_plain_node
from sce_core.walk import ComponentAt, Visitor, walk_config, walk_node

MISSING = "???"


class Validator(Visitor):
    """Collects every :class:`Issue` of a walk instead of stopping at the first."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    problem = add

    def component(self, at: ComponentAt, args: Any) -> None:
        args()


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

    from sce_core.config import interpolation_issue, missing_paths

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
        issue = interpolation_issue(exc)
        validator.add(issue.path, issue.message)
        return None


def validate_node(kind: str, node: Any, path: str | None = None,
                  runtime: Iterable[str] = ()) -> list[Issue]:
    """Every problem of one component node (as :class:`Issue` objects)."""
    validator = Validator()
    plain = _resolved(node, validator)
    if plain is not None or node is None:
        walk_node(kind, plain, path or kind, validator, dict.fromkeys(runtime))
    return validator.issues


def validate_config(cfg: Any, *, hooks: bool = True, complete: bool = False) -> list[Issue]:
    """Every problem of a run config, including those plugins report through hooks.

    ``complete``: the config is a whole run (``sce check``), so a missing required section
    (``datamodule``, ``model``) is a problem too.
    """
    validator = Validator()
    plain = _resolved(cfg, validator)
    if plain is None and not validator.issues:
        plain = {}
    if isinstance(plain, dict):
        walk_config(plain, validator, complete=complete)
        if hooks:
            from sce_core.hooks import plugin_manager

            for found in plugin_manager().hook.sce_validate_config(config=plain):
                for item in found or ():
                    validator.issues.append(item if isinstance(item, Issue) else Issue("", str(item)))
    return sorted(validator.issues, key=lambda i: i.path)


def validate_value(value: Any, annotation: Any, path: str) -> list[Issue]:
    """Every problem of one plain value against a declared type (a ``TypedDict`` option
    group, a component slot, a plain annotation), with config paths under ``path``."""
    from sce_core.signature import Param
    from sce_core.walk import Walker, _Mapping

    validator = Validator()
    key = path.rpartition(".")[2] or path
    owner = _Mapping(path.rpartition(".")[0] or "config", {key: Param(key, annotation, None, None, False)},
                     "key")
    Walker(validator).field(owner.params[key], to_plain_node(value), path, owner, {}, "", True)
    return validator.issues


def check_value(value: Any, annotation: Any, path: str) -> None:
    """Raise :class:`ConfigError` with every problem of ``value`` (see :func:`validate_value`)."""
    issues = validate_value(value, annotation, path)
    if issues:
        raise ConfigError(issues)


def check_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` with every problem of a run config, if any."""
    issues = validate_config(cfg)
    if issues:
        raise ConfigError(issues)
