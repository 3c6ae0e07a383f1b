"""Built-ins pass the same conformance check as any third-party plugin (`sce plugin validate`)."""

from __future__ import annotations

from sce_core.testing import check_plugin


def test_every_builtin_entry_point_passes_plugin_validation():
    assert check_plugin("sce-core") == []
