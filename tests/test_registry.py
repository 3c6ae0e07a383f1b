"""Entry-point discovery, collisions, broken plugins, in-process registration."""

from __future__ import annotations

import sys

import pytest
from fake_plugins import make_plugins

import sce_core
from sce_core.errors import (
    AmbiguousComponentError,
    ComponentLoadError,
    PluginLoadError,
    RegistrationError,
    UnknownComponentError,
)
from sce_core.registries import Entry, Registry, load_failures
from sce_core.testing import isolated_registries, on_sys_path, tmp_component


@pytest.fixture
def plugins(tmp_path):
    root = make_plugins(tmp_path / "site")
    with on_sys_path(root):
        yield root


def test_listing_reads_metadata_only(plugins):
    assert "wide_trunk" in sce_core.registry("trunks").names()
    assert "broken_trunk" in sce_core.registry("trunks").names()
    assert sce_core.registry("losses").names("mse*") == ["mse_loss"]
    assert "acme_pkg.trunks" not in sys.modules
    assert "broken_pkg.trunks" not in sys.modules


def test_ambiguous_name_names_both_providers(plugins):
    with pytest.raises(AmbiguousComponentError) as info:
        sce_core.registry("trunks").resolve("wide_trunk")
    message = str(info.value)
    assert "sce-acme 0.3.1" in message and "sce-other 2.0" in message
    assert "'sce-acme:wide_trunk'" in message


def test_dist_prefix_resolves_ambiguity(plugins):
    trunk = sce_core.build("trunks", {"_name_": "sce-acme:wide_trunk", "width": 3})
    assert type(trunk).__name__ == "WideTrunk" and trunk.width == 3
    other = sce_core.build("trunks", "sce_other:wide_trunk")
    assert type(other).__name__ == "OtherWide" and other.width == 4


def test_broken_plugin_is_isolated_and_chained(plugins):
    assert sce_core.build("losses", "mse_loss") == ("mse", 1.0)
    with pytest.raises(ComponentLoadError) as info:
        sce_core.registry("trunks").get("broken_trunk")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert "sce-broken 0.0.1" in str(info.value)
    assert [e.name for e in load_failures()] == ["broken_trunk"]
    # the rest keeps working
    assert sce_core.build("trunks", {"_name_": "sce-acme:wide_trunk"}).width == 8


def test_strict_mode_makes_failures_fatal(plugins, monkeypatch):
    monkeypatch.setenv("SCE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="SCE_STRICT_PLUGINS"):
        sce_core.registry("trunks").get("broken_trunk")


def test_disable_plugins_skips_distribution(tmp_path, monkeypatch):
    monkeypatch.setenv("SCE_DISABLE_PLUGINS", "sce-other, sce_broken")
    with on_sys_path(make_plugins(tmp_path / "site")):
        names = sce_core.registry("trunks").names()
        assert "broken_trunk" not in names
        # no longer ambiguous
        assert sce_core.registry("trunks").resolve("wide_trunk").dist == "sce-acme"


def test_unknown_name_suggests_close_names(plugins):
    with pytest.raises(UnknownComponentError) as info:
        sce_core.registry("trunks").resolve("wide_trnk")
    assert "did you mean 'wide_trunk'" in str(info.value)


def test_unknown_name_hints_other_kind(plugins):
    with pytest.raises(UnknownComponentError) as info:
        sce_core.registry("trunks").resolve("mse_loss")
    assert "'mse_loss' is a loss, not a trunk" in str(info.value)


def test_third_party_cannot_take_builtin_name():
    reg = Registry("trunks")
    reg._add_entry_point(Entry("trunks", "r3d", "a:B", "sce-core", "0.1.0", "builtin"))
    reg._add_entry_point(Entry("trunks", "r3d", "evil:B", "sce-evil", "1.0", "plugin"))
    assert reg.resolve("r3d").dist == "sce-core"
    assert reg.resolve("sce-evil:r3d").dist == "sce-evil"
    assert "built-in name" in reg.conflicts[0].reason
    # order of discovery does not matter
    reg2 = Registry("trunks")
    reg2._add_entry_point(Entry("trunks", "r3d", "evil:B", "sce-evil", "1.0", "plugin"))
    reg2._add_entry_point(Entry("trunks", "r3d", "a:B", "sce-core", "0.1.0", "builtin"))
    assert reg2.resolve("r3d").dist == "sce-core"


def test_register_in_process_is_idempotent_and_guarded():
    class A:
        """A."""

    class B:
        """B."""

    with isolated_registries():
        sce_core.register("heads", "my_head")(A)
        sce_core.register("heads", "my_head", A)  # same object: no-op
        with pytest.raises(RegistrationError, match="already provided by local"):
            sce_core.register("heads", "my_head", B)
        assert sce_core.registry("heads").get("my_head") is A
    with isolated_registries():
        assert "my_head" not in sce_core.registry("heads")


def test_tmp_component_is_removed_after_block():
    class C:
        """C."""

    with isolated_registries():
        with tmp_component("losses", "temp_loss", C):
            assert isinstance(sce_core.build("losses", "temp_loss"), C)
        assert "temp_loss" not in sce_core.registry("losses")


def test_unknown_kind_suggests():
    with pytest.raises(UnknownComponentError, match="did you mean 'trunks'"):
        sce_core.registry("trunk")
