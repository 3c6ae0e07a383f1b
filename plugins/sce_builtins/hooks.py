"""Built-in hook implementations: semantic checks that span several config sections."""

from __future__ import annotations

from typing import Any

from sce_core.errors import Issue
from sce_core.hooks import hookimpl


def _get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


@hookimpl
def sce_validate_config(config: dict[str, Any]) -> list[Issue]:
    """The queue's feature size must equal the projector's output size."""
    issues = []
    queue_dim = _get(config, "model.queue.feature_dim")
    proj_dim = _get(config, "model.projector.output_dim")
    if isinstance(queue_dim, int) and isinstance(proj_dim, int) and queue_dim != proj_dim:
        issues.append(Issue("model.queue.feature_dim",
                            f"queue features have size {queue_dim} but the projector outputs "
                            f"{proj_dim}; set model.queue.feature_dim={proj_dim}"))
    return issues
