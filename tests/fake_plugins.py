"""Fake plugin distributions written into a temporary folder for discovery tests."""

from __future__ import annotations

from pathlib import Path

from sce_core.testing import fake_distribution

GOOD_MODULE = '''
"""A third-party package providing a trunk and a loss."""
IMPORTED = True


class WideTrunk:
    """A stand-in trunk with two parameters.

    Args:
        width: number of features.
        depth: number of layers.
    """

    def __init__(self, width: int = 8, depth: int = 2) -> None:
        self.width = width
        self.depth = depth


def mse_loss(scale: float = 1.0):
    """A stand-in loss factory."""
    return ("mse", scale)
'''

OTHER_MODULE = '''
"""Another distribution that also names a trunk 'wide_trunk'."""


class OtherWide:
    """Another wide trunk."""

    def __init__(self, width: int = 4) -> None:
        self.width = width
'''


def make_plugins(root: Path) -> Path:
    """Three fake distributions: a good one, a broken one, and one that collides."""
    fake_distribution(
        root, "sce-acme",
        {"sce.trunks": {"wide_trunk": "acme_pkg.trunks:WideTrunk"},
         "sce.losses": {"mse_loss": "acme_pkg.trunks:mse_loss"}},
        {"acme_pkg/__init__.py": "", "acme_pkg/trunks.py": GOOD_MODULE},
        version="0.3.1",
    )
    fake_distribution(
        root, "sce-broken",
        {"sce.trunks": {"broken_trunk": "broken_pkg.trunks:Nope"}},
        {"broken_pkg/__init__.py": "", "broken_pkg/trunks.py": "import not_a_real_module_xyz\n"},
        version="0.0.1",
    )
    fake_distribution(
        root, "sce-other",
        {"sce.trunks": {"wide_trunk": "other_pkg.trunks:OtherWide"}},
        {"other_pkg/__init__.py": "", "other_pkg/trunks.py": OTHER_MODULE},
        version="2.0",
    )
    return root
