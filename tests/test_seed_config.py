"""The shipped recipe keeps every key and value of the seed document at the same path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from seed_mapping import SEED_MODEL_KEYS, our_path

import sce_core
from sce_core.validate import validate_config

SEED = Path(__file__).parent / "data" / "seed_eztorch_config.yaml"
RECIPE = "pretrain_r3d18_sce_kinetics200"
# Sections where the seed names a class directly: they stay plain mappings (DESIGN.md).
PLAIN_SECTIONS = ("trainer", "seed")
# Hydra's own section: sce-core's run folder is `dir.run`.
DROPPED_SECTIONS = ("hydra",)
LAUNCH = ["dir.data=/data/k200", "dir.root=/out", "dir.exp=pretrain", "seed.seed=42",
          "datamodule.train.loader.num_workers=3", "datamodule.val.loader.num_workers=3",
          "trainer.devices=-1"]


def flatten(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from flatten(value, (*prefix, key))
    elif isinstance(node, list) and any(isinstance(v, (dict, list)) for v in node):
        for i, value in enumerate(node):
            yield from flatten(value, (*prefix, i))
    else:
        yield prefix, node


def lookup(node, path):
    for key in path:
        node = node[key]
    return node


def shown_config():
    proc = subprocess.run([sys.executable, "-m", "sce_core.cli", "config", "show", RECIPE],
                          capture_output=True, text=True, timeout=120, check=True)
    return yaml.safe_load(proc.stdout)


def test_every_seed_key_and_value_is_at_the_same_path():
    seed = yaml.safe_load(SEED.read_text())
    ours = shown_config()
    checked = 0
    for path, value in flatten(seed):
        if path[0] in DROPPED_SECTIONS:
            continue
        mine = our_path(path)
        if path[-1] == "_target_":
            parent = lookup(ours, mine[:-1])
            if path[:-1] and path[0] in PLAIN_SECTIONS and len(path) == 2:
                assert "_target_" not in parent and "_name_" not in parent, path
            else:
                assert isinstance(parent.get("_name_"), str) and parent["_name_"], path
                assert "_target_" not in parent
            checked += 1
            continue
        assert lookup(ours, mine) == value, ".".join(map(str, path))
        checked += 1
    assert checked > 150  # the seed has this many leaves; a broken flatten would check few


def test_every_grouped_model_key_comes_from_the_seed():
    """The recipe's option groups hold exactly the seed's keys: none added, none left flat."""
    seed = yaml.safe_load(SEED.read_text())["model"]
    ours = shown_config()["model"]
    moved = {k for k in seed if k in SEED_MODEL_KEYS}
    assert moved == set(SEED_MODEL_KEYS) - {"start_warmup_temp_m"}  # the seed leaves it out
    assert not (moved - {"shuffle_bn"}) & set(ours)  # `shuffle_bn` names the group now
    grouped = {key: {k for k in ours[key]} for key in ("crops", "shuffle_bn")}
    assert grouped == {"crops": {"num_global", "num_local", "mutual_pass", "num_splits",
                                 "num_splits_per_combination"},
                       "shuffle_bn": {"enabled", "num_devices", "simulate_n_devices"}}
    assert {k: set(v) for k, v in ours["schedules"].items()} == {
        "coeff": {"warmup_epochs", "warmup_start", "warmup_kind", "kind", "final"},
        "temp_m": {"warmup_epochs", "warmup_kind"},
        "momentum": {"initial", "kind"},
    }


def test_no_target_keys_anywhere():
    ours = shown_config()
    assert not [p for p, _ in flatten(ours) if p and p[-1] == "_target_"]


def test_seed_launch_line_validates():
    assert validate_config(sce_core.load_config(RECIPE, LAUNCH)) == []


def test_lightning1_gpus_points_to_devices():
    issues = validate_config(sce_core.load_config(RECIPE, [*LAUNCH[:-1], "trainer.gpus=-1"]))
    assert [i.path for i in issues] == ["trainer.gpus"]
    assert "trainer.devices=-1" in issues[0].message


def test_recipe_resolved_values():
    from sce_core.resolved import resolved_config

    cfg = resolved_config(sce_core.load_config(RECIPE, LAUNCH))
    assert cfg.dir.run == "/out/pretrain"
    assert cfg.datamodule.train.dataset.datadir == "/data/k200/train.csv"
    assert cfg.datamodule.train.dataset.video_path_prefix == "/data/k200/train"
    assert cfg.datamodule.train.loader.num_workers == 3
    assert cfg.model.trunk._provider_ == "sce-core==0.1.0"


def test_the_fast_variant_differs_from_the_recipe_only_where_its_comments_say():
    from omegaconf import OmegaConf

    def flat(name):
        cfg = OmegaConf.to_container(sce_core.load_config(name, ["dir.data=/d"]), resolve=False)
        return {".".join(map(str, k)): v for k, v in flatten(cfg)}

    exact, fast = flat(RECIPE), flat(f"{RECIPE}_fast")
    changed = {k for k in exact.keys() | fast.keys() if exact.get(k) != fast.get(k)}
    assert changed == {"dir.exp", "datamodule.decoder_args.decode_float", "trainer.precision",
                       "model.performance.channels_last", "trainer.strategy.broadcast_buffers"}
    assert (fast["datamodule.decoder_args.decode_float"], fast["trainer.precision"]) == (False, "bf16-mixed")
    text = Path(sce_core.config.find_config(f"{RECIPE}_fast")).read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for key in changed - {"dir.exp"}:  # every deviation is explained in the header comment
        assert key.split(".")[-1] in header, key
