"""`**kwargs: BaseArgs`: a subclass declares only its own parameters and passes the rest on."""

from __future__ import annotations

import pytest

import sce_core
from sce_core.errors import ConfigError
from sce_core.signature import component_spec
from sce_core.slots import BaseArgs
from sce_core.testing import isolated_registries, tmp_component


class Base:
    """A base trunk.

    Args:
        width: channels.
        depth: blocks.
    """

    def __init__(self, width: int, depth: int = 2) -> None:
        self.width, self.depth = width, depth


class Child(Base):
    """A child trunk.

    Args:
        dropout: dropout rate.
    """

    def __init__(self, *, dropout: float = 0.5, **kwargs: BaseArgs) -> None:
        super().__init__(**kwargs)
        self.dropout = dropout


class Open:
    """Takes anything.

    Args:
        options: free keyword arguments.
    """

    def __init__(self, **options: object) -> None:
        self.options = options


def test_the_base_parameters_become_the_childs_own():
    spec = component_spec(Child, "trunks")
    assert list(spec.params) == ["width", "depth", "dropout"]
    assert [p.inherited for p in spec.params.values()] == [True, True, False]
    assert not spec.var_kwargs  # closed: unknown keys are problems
    assert spec.params["width"].required and spec.params["depth"].default == 2
    assert component_spec(Open, "trunks").var_kwargs  # a plain **kwargs stays open


def test_validate_and_build_through_base_args():
    with isolated_registries(), tmp_component("trunks", "child", Child):
        built = sce_core.build("trunks", {"_name_": "child", "width": 8, "dropout": 0.1})
        assert (built.width, built.depth, built.dropout) == (8, 2, 0.1)
        with pytest.raises(ConfigError) as err:
            sce_core.build("trunks", {"_name_": "child", "widht": 8, "depth": "x"})
    text = str(err.value)
    assert "widht" in text and "did you mean 'width'" in text
    assert "depth" in text and "'width'" in text  # the missing required base parameter too


def test_builtin_datamodules_declare_only_their_own_parameters():
    from sce_builtins.data.datamodule import VideoDataModule
    from sce_builtins.data.hmdb51 import HMDB51DataModule
    from sce_builtins.data.synthetic import SyntheticVideoDataModule

    base = list(component_spec(VideoDataModule, "datamodules").params)
    hmdb = component_spec(HMDB51DataModule, "datamodules").params
    assert list(hmdb) == [*base, "split_id", "splits_dir", "frame_folders"]
    synthetic = component_spec(SyntheticVideoDataModule, "datamodules").params
    assert set(synthetic) == {*base, "synthetic"}
    assert synthetic["decoder"].default == "frame" and not synthetic["decoder"].inherited


def test_validate_asks_docs_only_for_the_parameters_a_subclass_adds():
    from sce_core.conformance import undocumented_params

    spec = component_spec(Child, "trunks")
    own = [n for n in spec.settable() if not spec.params[n].inherited]
    assert own == ["dropout"]
    assert undocumented_params(Child.__doc__, own) == []
