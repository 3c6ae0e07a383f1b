"""Helpers for testing sce-core plugins in isolation: the public surface of two modules.

* :mod:`sce_core.fixtures` - isolated registries, temporary components, YAML builds, config
  checks, fake installed distributions;
* :mod:`sce_core.conformance` - ``check_plugin`` (``sce plugin validate``), and the per-kind
  :func:`smoke_test` whose contracts plugins declare (:mod:`sce_core.contracts`).

Use as a pytest plugin (``pytest_plugins = ["sce_core.testing"]``) for the ``sce_registry``
fixture, or import the helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sce_core.conformance import check_plugin
from sce_core.contracts import KindContract, smoke_test
from sce_core.fixtures import (
    assert_config_valid,
    build_from_yaml,
    fake_distribution,
    isolated_registries,
    on_sys_path,
    tmp_component,
)
from sce_core.registries import registry

__all__ = [
    "KindContract",
    "assert_config_valid",
    "build_from_yaml",
    "check_plugin",
    "fake_distribution",
    "isolated_registries",
    "on_sys_path",
    "smoke_test",
    "tmp_component",
]

# -- pytest fixtures (opt-in: pytest_plugins = ["sce_core.testing"]) ------------------------
try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def sce_registry() -> Iterator[Any]:
        """Isolated registries for one test; yields :func:`sce_core.registry`."""
        with isolated_registries():
            yield registry
