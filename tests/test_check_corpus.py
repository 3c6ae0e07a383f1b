"""`sce check` against a corpus of mistakes spread over every section and nesting level of the
shipped configs: each is reported by the real command (exit 1, one line per problem naming its
config path, no traceback), and all of one config's mistakes are reported together."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sce_core.cli import main

DEMO = ("demo", ())
PRETRAIN = ("pretrain_r3d18_sce_kinetics200", ("dir.data=/d",))
LINEAR = ("eval/linear_r3d18_ucf101", ("dir.data=/d", "model.trunk.pretrained=t.pt"))
KNN = ("eval/knn_r3d18_ucf101", ("dir.data=/d", "model.trunk.pretrained=t.pt"))
D, P, L, K = DEMO, PRETRAIN, LINEAR, KNN

# (config, override, the config path the problem is reported at)
CASES = [
    (D, "ckpt_path=last.ckpt", "ckpt_path"),
    (D, "modle.coeff=0.5", "modle"),
    (D, "seed.sed=1", "seed.sed"),
    (D, "seed.seed=abc", "seed.seed"),
    (D, "trainer.max_epochs=abc", "trainer.max_epochs"),
    (D, "trainer.log_every_n_steps=-1", "trainer.log_every_n_steps"),
    (D, "trainer.gpus=1", "trainer.gpus"),
    (D, "trainer.max_epoch=3", "trainer.max_epoch"),
    (D, "trainer.precision=17", "trainer.precision"),
    (D, "datamodule.datadir=5", "datamodule.datadir"),
    (D, "datamodule.decode_audio=maybe", "datamodule.decode_audio"),
    (D, "datamodule.decoder_args.fpz=8", "datamodule.decoder_args.fpz"),
    (D, "datamodule.decoder_args.frame_filter.num_sample=3", "datamodule.decoder_args.frame_filter.num_sample"),
    (D, "datamodule.decoder_args.frame_filter.subsample_type=middle", "datamodule.decoder_args.frame_filter.subsample_type"),
    (D, "datamodule.synthetic.num_classes=11", "datamodule.synthetic.num_classes"),
    (D, "datamodule.synthetic.frame=3", "datamodule.synthetic.frame"),
    (D, "datamodule.train.loader.num_workerz=3", "datamodule.train.loader.num_workerz"),
    (D, "datamodule.train.loader.drop_last=maybe", "datamodule.train.loader.drop_last"),
    (D, "datamodule.train.global_batch_size=0", "datamodule.train.global_batch_size"),
    (D, "datamodule.train.sampler=x", "datamodule.train.sampler"),
    (D, "datamodule.train.clip_sampler.num_clipz=2", "datamodule.train.clip_sampler.num_clipz"),
    (D, "datamodule.train.transform.transform.target_heigth=24", "datamodule.train.transform.transform.target_heigth"),
    (D, "datamodule.train.dataset.datadirr=x", "datamodule.train.dataset.datadirr"),
    (D, "datamodule.max_bad_samples=abc", "datamodule.max_bad_samples"),
    (D, "model.coeff=7.5", "model.coeff"),
    (D, "+checkpoint.every_n_step=3", "checkpoint.every_n_step"),
    (D, "+checkpoint.every_minutes=-1", "checkpoint.every_minutes"),
    (D, "model.queue.sise=3", "model.queue.sise"),
    (D, "model.queue.size=1e308", "model.queue.size"),
    (D, "model.temp=0", "model.temp"),
    (D, "model.trunk._name_=small_3d_cn", "model.trunk._name_"),
    (D, "model.projector.input_dimm=128", "model.projector.input_dimm"),
    (D, "model.predictor.hidden_dims=abc", "model.predictor.hidden_dims"),
    (D, "model.optimizer.scaler=quadratic", "model.optimizer.scaler"),
    (D, "model.optimizer.params.momentumm=0.9", "model.optimizer.params.momentumm"),
    (D, "model.optimizer.scheduler.params.warmup_epochz=4", "model.optimizer.scheduler.params.warmup_epochz"),
    (D, "model.optimizer.initial_lr=-1", "model.optimizer.initial_lr"),
    (D, "model.schedules.momentum.kind=linear", "model.schedules.momentum.kind"),
    (D, "model.train_transform.transforms.0.same_on_frames=maybe", "model.train_transform.transforms[0].same_on_frames"),
    (D, "callbacks.lr_monitor.logging_interval=hour", "callbacks.lr_monitor.logging_interval"),
    (D, "callbacks.throughput._name_=throughputt", "callbacks.throughput._name_"),
    (D, "callbacks.knn_report.descriptionn=x", "callbacks.knn_report.descriptionn"),
    (D, "model.crops.num_global=0", "model.crops.num_global"),
    (D, "model.schedules.momentum.initial=1.5", "model.schedules.momentum.initial"),
    (P, "trainer.strategy.find_unused_parameterz=true", "trainer.strategy.find_unused_parameterz"),
    (P, "trainer.num_nodes=0", "trainer.num_nodes"),
    (P, "model.trunk.model.model_depth=abc", "model.trunk.model.model_depth"),
    (P, "model.trunk.head.dropout_rate=abc", "model.trunk.head.dropout_rate"),
    (P, "datamodule.val.loader.prefetch_factor=0", "datamodule.val.loader.prefetch_factor"),
    (P, "datamodule.train.dataset.max_retries=-1", "datamodule.train.dataset.max_retries"),
    (P, "datamodule.val.transform.transform._name_=scale_center_crp", "datamodule.val.transform.transform._name_"),
    (P, "model.optimizer.scheduler.params.max_epochs=-1", "model.optimizer.scheduler.params.max_epochs"),
    (P, "model.optimizer.params.trust_coefficientt=0.1", "model.optimizer.params.trust_coefficientt"),
    (P, "callbacks.model_checkpoint.every_n_epoch=100", "callbacks.model_checkpoint.every_n_epoch"),
    (P, "model.train_transform.transforms.1.transforms.3.p=abc", "model.train_transform.transforms[1].transforms[3].p"),
    (P, "datamodule.decoder_args.time_difference_prob=abc", "datamodule.decoder_args.time_difference_prob"),
    (P, "datamodule.train.clip_sampler.clip_duration=1e308", "datamodule.train.clip_sampler.clip_duration"),
    (P, "model.optimizer.scheduler.params.warmup_epochs=500", "model.optimizer.scheduler.params.warmup_epochs"),
    (L, "model.classifier.output_dimm=101", "model.classifier.output_dimm"),
    (L, "model.video_reduction=median", "model.video_reduction"),
    (L, "datamodule.split_id=abc", "datamodule.split_id"),
    (L, "datamodule.test.loader.collate_fn=stack", "datamodule.test.loader.collate_fn"),
    (L, "datamodule.val.clip_sampler.clips_per_videoo=10", "datamodule.val.clip_sampler.clips_per_videoo"),
    (L, "trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch"),
    (L, "model.optimizer.params.nesterovv=true", "model.optimizer.params.nesterovv"),
    (L, "model.optimizer.scheduler.name=cosine_anealing_lr", "model.optimizer.scheduler.name"),
    (K, "model.k=abc", "model.k"),
    (K, "datamodule.decoder=pyavv", "datamodule.decoder"),
    (K, "model.temperature=abc", "model.temperature"),
    (K, "datamodule.test.global_batch_size=-8", "datamodule.test.global_batch_size"),
    (K, "datamodule.test.transform.transform.crop_sise=256", "datamodule.test.transform.transform.crop_sise"),
]


PROBLEM_PREFIX = "  - "


def problem_lines(stderr: str) -> list[str]:
    """The reported problems; every other line of a `sce check` failure is its header."""
    lines = stderr.strip().splitlines()
    assert lines and lines[0].endswith("problem(s) in the config:"), stderr
    assert all(line.startswith(PROBLEM_PREFIX) for line in lines[1:]), stderr
    return [line[len(PROBLEM_PREFIX):] for line in lines[1:]]


def test_corpus_is_large_and_spread():
    assert len({override for _, override, _ in CASES}) == len(CASES) >= 60
    sections = {path.split(".")[0] for _, _, path in CASES}
    assert {"datamodule", "model", "trainer", "callbacks", "seed", "ckpt_path"} <= sections
    assert max(path.count(".") + path.count("[") for _, _, path in CASES) >= 5


@pytest.mark.parametrize("config,override,path", [(c, o, p) for c, o, p in CASES],
                         ids=[o for _, o, _ in CASES])
def test_each_mistake_is_one_line_with_its_path(config, override, path, capsys):
    name, base = config
    assert main(["check", name, *base, override]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    problems = problem_lines(err)
    assert any(p.startswith(f"{path}: ") for p in problems), problems
    # only interpolated copies of the same value may be reported besides it
    assert all(p.startswith(f"{path}: ") or "max_epochs" in p for p in problems), problems


def test_shipped_configs_pass_check(capsys):
    for name, base in (DEMO, PRETRAIN, LINEAR, KNN):
        assert main(["check", name, *base]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("config", [DEMO, PRETRAIN, LINEAR, KNN], ids=lambda c: c[0])
def test_all_mistakes_of_a_config_reported_together(config):
    name, base = config
    cases = [(o, p) for c, o, p in CASES if c == config]
    proc = subprocess.run([sys.executable, "-m", "sce_core.cli", "check", name, *base,
                           *(o for o, _ in cases)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    problems = problem_lines(proc.stderr)
    for _, path in cases:
        assert any(p.startswith(f"{path}: ") for p in problems), (path, problems)
    assert proc.stdout == ""


def test_missing_value_and_empty_config(tmp_path, capsys):
    assert main(["check", "eval/knn_r3d18_ucf101"]) == 1
    paths = [p.split(":")[0] for p in problem_lines(capsys.readouterr().err)]
    assert paths == ["dir.data", "model.trunk.pretrained"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert main(["check", str(empty)]) == 1
    assert problem_lines(capsys.readouterr().err) == [
        "datamodule: the config has no 'datamodule' section; a run needs a datamodule node here",
        "model: the config has no 'model' section; a run needs a model node here"]


@pytest.mark.parametrize("override,message", [
    ("seed.seed=???", "seed.seed: override 'seed.seed=???' sets the mandatory marker '???'"),
    ("~seed.sed", "cannot delete 'seed.sed': the config has no such key; did you mean 'seed.seed'?"),
    ("dir.exp=${dir.run}", "dir.exp: interpolation cycle"),
    ("dir.exp=${dir.nowhere}", "dir.exp: cannot resolve interpolation"),
])
def test_override_mistakes_are_one_line(override, message, capsys):
    assert main(["check", "demo", override]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize("config,overrides,expected", [
    (DEMO, ["model.optimizer.scheduler.params.warmup_epochs=50"],
     ["model.optimizer.scheduler.params.warmup_epochs: scheduler 'linear_warmup_cosine_annealing_lr': "
      "'warmup_epochs' must be at most 'max_epochs' (34), got 50"]),
    (DEMO, ["trainer.devices=3"],
     ["datamodule.train.global_batch_size: 32 is not divisible by the run's 3 devices "
      "(trainer.devices=3); choose a multiple of 3 (30 or 33)"]),
    (DEMO, ["trainer.devices=[0,1,2]"],
     ["datamodule.train.global_batch_size: 32 is not divisible by the run's 3 devices "
      "(trainer.devices=[0, 1, 2]); choose a multiple of 3 (30 or 33)"]),
    (DEMO, ["+model.schedules.coeff.warmup_epochs=40"],
     ["model.schedules.coeff.warmup_epochs: a warm-up of 40 epochs is longer than the run's "
      "trainer.max_epochs=34; use at most 34"]),
    (KNN, ["trainer.devices=4", "trainer.num_nodes=3"],
     ["datamodule.test.global_batch_size: 8 is not divisible by the run's 12 devices "
      "(trainer.devices=4 x trainer.num_nodes=3); choose a multiple of 12 (12)"]),
], ids=["warmup-longer-than-schedule", "batch-over-3-devices", "device-list", "model-schedule-warmup",
        "batch-over-nodes"])
def test_mistakes_between_keys_are_reported_at_the_key_to_change(config, overrides, expected, capsys):
    name, base = config
    assert main(["check", name, *base, *overrides]) == 1
    assert problem_lines(capsys.readouterr().err) == expected


@pytest.mark.parametrize("overrides", [
    ["model.optimizer.scheduler.params.warmup_epochs=34"],  # as long as the schedule: allowed
    ["+model.schedules.coeff.warmup_epochs=34"],
    ["trainer.devices=2"], ["trainer.devices=4"], ["trainer.devices=auto"], ["trainer.devices=-1"],
])
def test_values_that_fit_together_pass(overrides, capsys):
    assert main(["check", "demo", *overrides]) == 0, capsys.readouterr().err
