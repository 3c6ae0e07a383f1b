"""Temporal subsampling of a clip's frame range (the decoders' ``frame_filter`` argument)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypedDict

import numpy as np

from sce_core.constraints import Positive

SubsampleType = Literal["uniform", "random"]


class FrameFilterOptions(TypedDict, total=False):
    """frame_filter options"""

    subsample_type: SubsampleType
    num_samples: Annotated[int, Positive]


class FrameFilter:
    """Pick ``num_samples`` offsets out of a window of ``t`` frames.

    * ``uniform``: ``floor(linspace(0, t - 1, num_samples))`` (numpy linspace, integer
      truncation; offsets repeat when ``t < num_samples``). For ``t = 77`` and 8 samples:
      0, 10, 21, 32, 43, 54, 65, 76; for ``t = 76``: 0, 10, 21, 32, 42, 53, 64, 75.
    * ``random``: ``num_samples`` distinct offsets drawn uniformly from ``range(t)`` with the
      caller's numpy Generator, sorted. When ``t < num_samples`` there are not enough distinct
      frames and the uniform grid (with repeats) is used instead. (The reference's "random"
      type drew a single offset, a bug; this is the documented intent.)

    Args:
        subsample_type: ``"uniform"`` or ``"random"``.
        num_samples: number of frames per clip (>= 1).
    """

    def __init__(self, subsample_type: SubsampleType = "uniform", num_samples: int = 8) -> None:
        if subsample_type not in ("uniform", "random"):
            raise ValueError(
                f"frame_filter: subsample_type must be 'uniform' or 'random', got {subsample_type!r}"
            )
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(
                f"frame_filter: num_samples must be an integer >= 1, got {num_samples!r}"
            )
        self.subsample_type = subsample_type
        self.num_samples = num_samples

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None, owner: str = "decoder"
    ) -> FrameFilter | None:
        """Build from ``{subsample_type, num_samples}``; ``None`` keeps every frame of the window."""
        if config is None:
            return None
        if not isinstance(config, Mapping):
            raise ValueError(
                f"{owner}: frame_filter must be a mapping like "
                f"{{subsample_type: uniform, num_samples: 8}} or null, got {type(config).__name__}"
            )
        unknown = set(config) - {"subsample_type", "num_samples"}
        if unknown:
            raise ValueError(
                f"{owner}: frame_filter has unknown keys {sorted(unknown)}; "
                "allowed: subsample_type, num_samples"
            )
        return cls(**dict(config))

    def offsets(self, t: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Offsets (int64, sorted) into a window of ``t >= 1`` frames."""
        if t < 1:
            raise ValueError("frame_filter: a window needs at least one frame")
        if self.subsample_type == "random" and t >= self.num_samples:
            if rng is None:
                rng = np.random.default_rng()
            return np.sort(rng.choice(t, size=self.num_samples, replace=False)).astype(np.int64)
        return uniform_offsets(t, self.num_samples)

    def __repr__(self) -> str:
        return f"FrameFilter({self.subsample_type!r}, num_samples={self.num_samples})"


def uniform_offsets(t: int, num_samples: int) -> np.ndarray:
    """``floor(linspace(0, t - 1, num_samples))`` as int64 (pytorchvideo/eztorch rule)."""
    grid = np.linspace(0, t - 1, num_samples)
    return np.clip(grid, 0, t - 1).astype(np.int64)
