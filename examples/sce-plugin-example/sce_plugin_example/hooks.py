"""Hook implementations of sce-plugin-example (entry-point group ``sce.hooks``).

sce-core imports this module only for commands that fire hooks (``check``, ``pretrain``,
``evaluate``); it stays light: Lightning is imported only when a run asks for callbacks.
"""

from __future__ import annotations

from typing import Any

from sce_core.errors import Issue
from sce_core.hooks import hookimpl

TRUNK = "r2plus1d_tiny"
DEFAULT_WIDTHS = (16, 32, 64)


def _trunk_name(node: Any) -> str:
    name = node.get("_name_", "") if isinstance(node, dict) else node
    name = str(name or "").rpartition("/")[2]
    return name.rpartition(":")[2]


@hookimpl
def sce_callbacks(config: dict[str, Any]) -> list[Any]:
    """Add a :class:`~sce_plugin_example.callbacks.FitReport` to every run."""
    from sce_plugin_example.callbacks import FitReport

    return [FitReport()]


@hookimpl
def sce_validate_config(config: dict[str, Any]) -> list[Issue]:
    """With an ``r2plus1d_tiny`` trunk, the projector's ``input_dim`` must be its last width."""
    model = config.get("model")
    if not isinstance(model, dict) or _trunk_name(model.get("trunk")) != TRUNK:
        return []
    trunk = model["trunk"] if isinstance(model["trunk"], dict) else {}
    widths = trunk.get("widths") or DEFAULT_WIDTHS
    projector = model.get("projector")
    if not isinstance(projector, dict) or not isinstance(widths, (list, tuple)):
        return []
    dim = projector.get("input_dim")
    if isinstance(dim, int) and dim != widths[-1]:
        return [Issue("model.projector.input_dim",
                      f"{TRUNK} outputs {widths[-1]} features but the projector expects {dim}; "
                      f"set model.projector.input_dim={widths[-1]}")]
    return []
