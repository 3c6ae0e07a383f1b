"""Every pluggy hookspec is documented and exercised through an `sce.hooks` entry point."""

from __future__ import annotations

import inspect
import textwrap

import pytest
from omegaconf import OmegaConf

from sce_core.errors import ConfigError
from sce_core.hooks import SCEHookSpecs, collect_callbacks, plugin_manager
from sce_core.registries import load_failures
from sce_core.runner import prepare
from sce_core.testing import fake_distribution, on_sys_path
from sce_core.validate import validate_config

HOOK_MODULE = textwrap.dedent('''
    """Hooks of a fake plugin."""
    from sce_core.hooks import hookimpl

    SEEN = []


    class MarkerCallback:
        """Stands in for a lightning Callback."""


    @hookimpl
    def sce_validate_config(config):
        if (config.get("dir") or {}).get("root") == "/forbidden":
            return ["dir.root: /forbidden is not allowed by sce-guard"]
        return []


    @hookimpl
    def sce_configure(config):
        SEEN.append(config)


    @hookimpl
    def sce_callbacks(config):
        return [MarkerCallback()]
''')


def plugin_callbacks(config):
    """The callbacks of third-party hooks (the built-ins add their own to every run)."""
    return [c for c in collect_callbacks(config) if not type(c).__module__.startswith("sce_builtins")]


@pytest.fixture
def guard_plugin(tmp_path):
    root = fake_distribution(
        tmp_path / "site", "sce-guard", {"sce.hooks": {"guard": "guard_pkg.hooks"}},
        {"guard_pkg/__init__.py": "", "guard_pkg/hooks.py": HOOK_MODULE})
    with on_sys_path(root):
        yield


def test_every_hookspec_is_documented():
    specs = [name for name, _ in inspect.getmembers(SCEHookSpecs, inspect.isfunction)
             if name.startswith("sce_")]
    assert sorted(specs) == ["sce_callbacks", "sce_configure", "sce_default_config",
                             "sce_evaluation_protocols", "sce_kind_contracts", "sce_sections",
                             "sce_validate_config"]
    for name in specs:
        assert len(inspect.getdoc(getattr(SCEHookSpecs, name)) or "") > 40, name


def test_validate_hook_adds_problems(guard_plugin):
    issues = validate_config(OmegaConf.create({"dir": {"root": "/forbidden"}}))
    assert [str(i) for i in issues] == ["<root>: dir.root: /forbidden is not allowed by sce-guard"]
    assert validate_config(OmegaConf.create({"dir": {"root": "/ok"}})) == []


def test_configure_hook_receives_config_and_is_historic(guard_plugin, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("dir:\n  root: /ok\n")
    with pytest.raises(ConfigError, match="datamodule"):  # a run needs datamodule and model
        prepare(cfg)
    import guard_pkg.hooks as hooks

    assert hooks.SEEN[-1] == {"dir": {"root": "/ok"}}

    class Late:
        seen = []

        from sce_core.hooks import hookimpl

        @hookimpl
        def sce_configure(self, config):
            Late.seen.append(config)

    plugin_manager().register(Late())  # registered after the call: historic replays it
    assert Late.seen == [{"dir": {"root": "/ok"}}]


def test_callbacks_hook_collects_callbacks(guard_plugin):
    callbacks = plugin_callbacks({})
    assert [type(c).__name__ for c in callbacks] == ["MarkerCallback"]


def test_prepare_fails_with_every_problem(guard_plugin, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("dir:\n  root: /forbidden\ntrainer:\n  gpus: 1\n")
    with pytest.raises(ConfigError) as info:
        prepare(cfg)
    assert "sce-guard" in str(info.value) and "trainer.gpus" in str(info.value)


def test_broken_hook_module_is_isolated(tmp_path):
    root = fake_distribution(tmp_path / "site", "sce-badhooks",
                             {"sce.hooks": {"bad": "badhooks_pkg.hooks"}},
                             {"badhooks_pkg/__init__.py": "", "badhooks_pkg/hooks.py": "1/0\n"})
    with on_sys_path(root):
        assert plugin_callbacks({}) == []
        assert [e.dist for e in load_failures()] == ["sce-badhooks"]
