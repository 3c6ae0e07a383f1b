"""docs/plugins.md promises no other test checked, met the way a user meets them: the real `sce`
command in a subprocess, with fake installed distributions on PYTHONPATH."""

from __future__ import annotations

import textwrap
from pathlib import Path

from omegaconf import OmegaConf
from test_plugin_promises import TRUNK, sce

import sce_core
from sce_core.testing import fake_distribution

COMMAND = '''
import argparse

from sce_core import SCEError


def main(argv):
    """Greets someone."""
    parser = argparse.ArgumentParser(prog="sce hello", description="Greet someone by name.")
    parser.add_argument("name")
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args(argv)
    if args.fail:
        raise SCEError(f"cannot greet {args.name}: pass another name")
    print(f"hello {args.name}")
    return 3
'''


def test_a_plugin_command_parses_its_own_arguments_and_its_errors_are_one_line(tmp_path):
    # "An `sce.commands` entry point adds `sce <name>`: a `main(argv) -> int` function that
    # parses its own arguments, `--help` included. An `SCEError` it raises is printed as the
    # usual one-line error."
    site = fake_distribution(tmp_path / "site", "sce-hello",
                             {"sce.commands": {"hello": "hello_pkg.cli:main"}},
                             {"hello_pkg/__init__.py": "", "hello_pkg/cli.py": COMMAND})
    cache = tmp_path / "c"
    helped = sce("hello", "--help", cache=cache, path=site)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: sce hello [-h] [--fail] name")
    assert "Greet someone by name." in helped.stdout
    ran = sce("hello", "bob", cache=cache, path=site)
    assert (ran.returncode, ran.stdout, ran.stderr) == (3, "hello bob\n", "")
    failed = sce("hello", "bob", "--fail", cache=cache, path=site)
    assert failed.returncode == 1
    assert failed.stderr == "sce: error: cannot greet bob: pass another name\n"
    assert "hello" in sce("--help", cache=cache, path=site).stdout


MARKING_HOOKS = '''
import os
from pathlib import Path

Path(os.environ["HOOK_MARK"]).write_text("imported")

from sce_core.hooks import hookimpl


@hookimpl
def sce_validate_config(config):
    return []
'''


def test_hook_modules_are_imported_only_by_the_commands_that_fire_hooks(tmp_path):
    # "Hook modules are imported by `sce check`, ... (and by `sce evaluate --help`, which lists
    # the protocols, and `sce plugins --check`), never by `sce --help`, `list` or a plain
    # `sce plugins`."
    site = fake_distribution(tmp_path / "site", "sce-mark", {"sce.hooks": {"hooks": "mark_pkg.hooks"}},
                             {"mark_pkg/__init__.py": "", "mark_pkg/hooks.py": MARKING_HOOKS})
    mark = tmp_path / "imported"
    cache = tmp_path / "c"
    for args, imports in [(["--help"], False), (["list"], False), (["plugins"], False),
                          (["plugins", "--check"], True), (["evaluate", "--help"], True),
                          (["check", "demo"], True), (["config", "show", "demo", "--resolve"], True)]:
        mark.unlink(missing_ok=True)
        proc = sce(*args, cache=cache, path=site, env={"HOOK_MARK": str(mark)})
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        assert mark.exists() == imports, args



def test_built_ins_cannot_be_disabled(tmp_path):
    # "`SCE_DISABLE_PLUGINS=sce-acme,sce-other` skips those distributions before anything is
    # imported. Built-ins cannot be disabled."
    site = fake_distribution(tmp_path / "site", "sce-acme", {"sce.trunks": {"acme_wide": "acme_pkg.t:Wide"}},
                             {"acme_pkg/__init__.py": "", "acme_pkg/t.py": TRUNK})
    cache = tmp_path / "c"
    assert "acme_wide" in sce("list", "trunks", cache=cache, path=site).stdout
    off = sce("list", "trunks", cache=cache, path=site,
              env={"SCE_DISABLE_PLUGINS": "sce-core,sce_builtins,sce-acme"})
    assert off.returncode == 0, off.stderr
    assert "acme_wide" not in off.stdout
    assert "small_3d_cnn" in off.stdout and "resnet3d_basic" in off.stdout
    check = sce("check", "demo", cache=cache, env={"SCE_DISABLE_PLUGINS": "sce-core"})
    assert check.returncode == 0 and "config OK" in check.stdout, check.stderr[-2000:]


def test_null_in_an_earlier_defaults_entry_drops_a_node(tmp_path):
    # "To drop a node without naming a new component, set it to `null` in an earlier entry of
    # the list": the next entry's node starts afresh instead of merging into the old one.
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    write("base.yaml", """
        datamodule:
          train:
            clip_sampler: {_name_: random_multi_clip, clip_duration: 2.0, num_clips: 2}
    """)
    write("parts/no_clip_sampler.yaml", "datamodule:\n  train:\n    clip_sampler: null\n")
    same = "datamodule:\n  train:\n    clip_sampler: {_name_: random_multi_clip, clip_duration: 1.0}\n"
    dropped = write("dropped.yaml", "defaults: [base, parts/no_clip_sampler, _self_]\n" + same)
    merged = write("merged.yaml", "defaults: [base, _self_]\n" + same)

    def sampler(path: Path) -> dict:
        return OmegaConf.to_container(sce_core.load_config(path))["datamodule"]["train"]["clip_sampler"]

    assert sampler(dropped) == {"_name_": "random_multi_clip", "clip_duration": 1.0}
    assert sampler(merged) == {"_name_": "random_multi_clip", "clip_duration": 1.0, "num_clips": 2}


OPTIONAL = '''
class OptionalExtra:
    """A trunk whose constructor imports a module of one of the distribution's extras."""

    def __init__(self) -> None:
        import swin_extra_xyz  # noqa: F401


class OwnHint:
    """A trunk that raises its own ImportError with an install hint."""

    def __init__(self) -> None:
        raise ImportError("the fast trunk needs sce-opt[fast]: pip install 'sce-opt[fast]'")


class Numbers:
    """A dataset of numbers.

    Args:
        size: how many.
    """

    def __init__(self, size: int = 3) -> None:
        self.size = size


def scratch_logger(save_dir: str, resume_step: int | None = None, tag: str = "x"):
    """A logger factory.

    Args:
        tag: a tag.
    """
    raise AssertionError("not built by sce plugin validate")
'''


def test_validate_notes_optional_dependencies_and_checks_only_run_configs(tmp_path):
    # "A constructor whose `import` fails (`ModuleNotFoundError`) is a problem naming the
    # component, unless the module belongs to one of the distribution's optional extras; an
    # `ImportError` the component raises itself (with an install hint) marks an optional
    # dependency and is not a problem." "Shipped run configs (those with a `model` section)
    # validate; `???` values are ignored."
    site = fake_distribution(
        tmp_path / "site", "sce-opt",
        {"sce.trunks": {"opt_extra": "opt_pkg.parts:OptionalExtra", "own_hint": "opt_pkg.parts:OwnHint"},
         "sce.datasets": {"numbers": "opt_pkg.parts:Numbers"},
         "sce.loggers": {"scratch": "opt_pkg.parts:scratch_logger"},
         "sce.configs": {"opt_pkg": "opt_pkg.configs"}},
        {"opt_pkg/__init__.py": "", "opt_pkg/parts.py": OPTIONAL, "opt_pkg/configs/__init__.py": "",
         "opt_pkg/configs/needs_data.yaml": "defaults: [demo]\ndir:\n  data: ???\n",
         "opt_pkg/configs/typo.yaml": "defaults: [demo]\nmodel:\n  tempp: 0.3\n",
         "opt_pkg/configs/parts/partial.yaml": "datamodule:\n  train:\n    nonsense: 1\n"})
    metadata = next(site.glob("sce_opt-*.dist-info")) / "METADATA"
    metadata.write_text(metadata.read_text() + 'Provides-Extra: swin\n'
                        'Requires-Dist: swin-extra-xyz; extra == "swin"\n')
    proc = sce("plugin", "validate", "sce-opt", cache=tmp_path / "c", path=site)
    assert proc.returncode == 1
    problems = [line for line in proc.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1, proc.stderr
    assert "config 'typo': model.tempp:" in problems[0]
    assert ("note: trunks/opt_extra (opt_pkg.parts:OptionalExtra): not built nor smoke-tested: "
            "optional dependency 'swin_extra_xyz' is not installed") in proc.stdout
    assert ("note: trunks/own_hint (opt_pkg.parts:OwnHint): not built nor smoke-tested: "
            "ImportError: the fast trunk needs sce-opt[fast]") in proc.stdout
    # "Every component that is not built or not smoke-tested gets a `note:` line on stdout
    # saying why (... runtime inputs no contract makes, ... no contract declared for the kind)."
    assert ("note: datasets/numbers (opt_pkg.parts:Numbers): built, not smoke-tested: no plugin "
            "declares a contract for datasets (sce_kind_contracts)") in proc.stdout
    assert ("note: loggers/scratch (opt_pkg.parts:scratch_logger): not built nor smoke-tested: no "
            "logger contract makes stand-ins for its runtime arguments ['save_dir', 'resume_step']"
            ) in proc.stdout


def test_assert_config_valid_lists_every_problem_of_a_config():
    # plugins.md §2: `assert_config_valid(name_or_path, overrides)` raises `ConfigError` listing
    # every problem of a config.
    import pytest

    from sce_core.testing import assert_config_valid

    assert assert_config_valid("demo") is None
    with pytest.raises(sce_core.ConfigError) as raised:
        assert_config_valid("demo", ("model.coeff=2", "trainer.max_epochss=1"))
    text = str(raised.value)
    assert "model.coeff" in text and "trainer.max_epochss" in text


# -- docs/api.md ---------------------------------------------------------------------------
def test_issue_prints_as_path_and_message_and_root_issues_say_so():
    # api.md: "`str(issue)` is `"<path>: <message>"`" (`<root>` where the path is "").
    from sce_core import Issue

    assert str(Issue("model.projector.input_dim", "must be 512")) == "model.projector.input_dim: must be 512"
    assert str(Issue("", "no model section")) == "<root>: no model section"


def test_the_decoder_protocol_and_the_clip_sampler_base_class():
    # api.md: "`isinstance(obj, VideoDecoder)` checks" the two methods; `ClipSampler` stores the
    # clip duration as a Fraction and `group` makes one sample per window when `multi_sample`,
    # else one sample holding them all.
    from fractions import Fraction

    from sce_builtins.data.clip_samplers import ClipSampler
    from sce_builtins.data.types import ClipWindow, VideoDecoder

    class Both:
        def duration(self, record):
            return Fraction(1)

        def decode(self, record, windows, rng=None):
            return []

    class DurationOnly:
        def duration(self, record):
            return Fraction(1)

    assert isinstance(Both(), VideoDecoder) and not isinstance(DurationOnly(), VideoDecoder)

    class Pair(ClipSampler):
        list_input = True

        def __call__(self, duration, rng):
            return [ClipWindow(Fraction(0), self.clip_duration, i) for i in range(2)]

    class Each(Pair):
        list_input, multi_sample = False, True

    assert Pair(2.56).clip_duration == Fraction(2.56)
    windows = Pair(1.0)(Fraction(10), None)
    assert Pair(1.0).group(windows) == [windows]
    assert Each(1.0).group(windows) == [[windows[0]], [windows[1]]]


def test_validate_names_that_yaml_cannot_hold_and_names_two_plugins_share(tmp_path):
    # plugins.md, `sce plugin validate`: "The name can be written in YAML and is not a built-in
    # name. A name also offered by another installed plugin is reported as ambiguous."
    site = tmp_path / "site"
    fake_distribution(site, "sce-names",
                      {"sce.datasets": {"9lives": "names_pkg.t:Wide", "wide-trunk": "names_pkg.t:Wide", "shared_trunk": "names_pkg.t:Wide",
                                      "own_trunk": "names_pkg.t:Wide"}},
                      {"names_pkg/__init__.py": "", "names_pkg/t.py": TRUNK})
    fake_distribution(site, "sce-other", {"sce.datasets": {"shared_trunk": "other_pkg.t:Wide"}},
                      {"other_pkg/__init__.py": "", "other_pkg/t.py": TRUNK})
    proc = sce("plugin", "validate", "sce-names", cache=tmp_path / "c", path=site)
    assert proc.returncode == 1
    problems = [line[4:] for line in proc.stderr.splitlines() if line.startswith("  - ")]
    assert ("datasets/9lives (names_pkg.t:Wide): the name '9lives' cannot be written in YAML (use "
            "letters, digits, '_', '-' and '.', starting with a letter)") in problems
    assert not [p for p in problems if p.startswith("datasets/wide-trunk")]
    shared = [p for p in problems if p.startswith("datasets/shared_trunk")]
    assert len(shared) == 1 and "sce-other" in shared[0] and "ambiguous" in shared[0]
    assert not [p for p in problems if p.startswith("datasets/own_trunk")]
    assert len(problems) == 2


INHERITS = '''
class Documented:
    """A documented dataset.

    Args:
        size: how many.
    """

    def __init__(self, size: int = 3) -> None:
        self.size = size


class Undocumented(Documented):
    pass
'''


def test_a_docstring_inherited_from_a_base_class_does_not_count(tmp_path):
    # plugins.md, "Rules for every component": "A class's own docstring counts; one inherited
    # from a base class does not."
    from sce_core.testing import check_plugin, on_sys_path

    site = fake_distribution(tmp_path / "site", "sce-doc",
                             {"sce.datasets": {"documented": "doc_pkg.d:Documented",
                                               "undocumented": "doc_pkg.d:Undocumented"}},
                             {"doc_pkg/__init__.py": "", "doc_pkg/d.py": INHERITS})
    with on_sys_path(site):
        assert check_plugin("sce-doc") == [
            "datasets/undocumented (doc_pkg.d:Undocumented): no docstring (`sce info` shows it to users)"]
