"""Evaluation callbacks: online linear probe, kNN monitor, kNN report, throughput; kNN model."""

from __future__ import annotations

import json
import re

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from sce_builtins.callbacks.knn_report import format_report
from sce_builtins.callbacks.online_evaluator import OnlineEvaluator
from sce_builtins.callbacks.throughput import count_clips
from sce_builtins.evaluation.features import extract_features
from sce_builtins.evaluation.knn import knn_accuracy
from sce_builtins.optim.factory import optimizer_factory
from tiny_demo import TINY
from torch import nn
from torch.utils.data import DataLoader

import sce_core
from sce_core.runner import pretrain

CALLBACKS = [
    "callbacks.knn_report._name_=knn_report",
    "callbacks.knn_report.description=held-out synthetic videos",
    "callbacks.knn_report.bank.batch_size=5",
    "callbacks.knn_monitor._name_=knn_monitor",
    "callbacks.knn_monitor.when=train_epoch_end",
    "callbacks.knn_monitor.every_n_epochs=1",  # (the demo monitors every 4 epochs)
    "callbacks.online._name_=online_evaluator",
    "callbacks.online.num_classes=4",
    "callbacks.throughput._name_=throughput",
]


def sgd(lr: float, momentum: float = 0.0):
    return lambda **kw: optimizer_factory(name="sgd", initial_lr=lr, params={"momentum": momentum}, **kw)


class FeatureModel(LightningModule):
    """A stand-in SSL model: its training/validation steps return fixed features as ``h``."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(2, 2)
        self.trunk.num_features = 2

    def training_step(self, batch, batch_idx):
        return {"loss": self.trunk.weight.sum() * 0.0, "h": batch["input"]}

    def validation_step(self, batch, batch_idx):
        return {"h": batch["input"]}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def separable(n: int, seed: int, unlabelled: int = 0):
    """Two Gaussian blobs (class = sign of x0); ``unlabelled`` extra rows with label -1 lying
    deep in the wrong blob for any label they could be mistaken for."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.3
    x[:, 0] += torch.where(y == 1, 2.0, -2.0)
    if unlabelled:
        x = torch.cat([x, torch.full((unlabelled, 2), 3.0)])
        y = torch.cat([y, torch.full((unlabelled,), -1)])
    return {"input": x, "label": y, "idx": torch.arange(len(y))}


def loader(batches):
    return DataLoader(batches, batch_size=None)


def quiet_trainer(**kw) -> Trainer:
    return Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_checkpointing=False, enable_model_summary=False, **kw)


class Recorder(Callback):
    def __init__(self) -> None:
        self.train_acc: list[float] = []
        self.val_acc: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.train_acc.append(float(trainer.callback_metrics["online/train_acc_1_epoch"]))

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking and "online/val_acc_1" in trainer.callback_metrics:
            self.val_acc.append(float(trainer.callback_metrics["online/val_acc_1"]))


def test_online_evaluator_learns_masks_unlabelled_rows_and_returns_to_train_mode():
    torch.manual_seed(0)
    probe = OnlineEvaluator(num_classes=2, optimizer=sgd(0.05), topk=(1,))
    # the default classifier starts at N(0, 0.01) weights: chance level
    train = [separable(16, seed, unlabelled=4) for seed in range(6)]
    val = [separable(32, 100, unlabelled=8)]
    rec = Recorder()
    quiet_trainer(max_epochs=4, callbacks=[probe, rec], num_sanity_val_steps=0).fit(
        FeatureModel(), train_dataloaders=loader(train), val_dataloaders=loader(val))
    assert rec.train_acc[0] < rec.train_acc[-1] == 1.0
    assert rec.val_acc[-1] == 1.0  # rows labelled -1 are neither trained on nor scored
    assert probe.classifier.training  # restored after validation (docs/reference.md §9.18)
    logits = probe.classifier(val[0]["input"][-8:])
    assert (logits.argmax(1) == 1).all()  # the x0 = 3 rows would be class 1: they were masked


def test_online_evaluator_train_step_uses_masked_rows_only():
    probe = OnlineEvaluator(num_classes=2, input_dim=2, optimizer=sgd(1.0))
    probe.classifier = nn.Linear(2, 2)
    with torch.no_grad():
        probe.classifier.weight.zero_()
        probe.classifier.bias.zero_()
    probe.optimizer = torch.optim.SGD(probe.classifier.parameters(), lr=1.0)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    probe.train_step(feats, torch.tensor([0, 1]))
    # gradient of mean CE at zero logits: (softmax - onehot) x / 2 -> weight = [[.25, -.25], [-.25, .25]]
    assert probe.classifier.weight.flatten().tolist() == pytest.approx([0.25, -0.25, -0.25, 0.25])
    before = probe.classifier.weight.clone()
    probe.train_step(feats[:0], torch.tensor([], dtype=torch.long))  # no labelled rows: no step
    assert torch.equal(before, probe.classifier.weight)


def test_online_evaluator_state_resumes_exactly(tmp_path):
    batches = [separable(16, seed) for seed in range(3)]

    def run(epochs, ckpt=None):
        torch.manual_seed(0)
        probe = OnlineEvaluator(num_classes=2, optimizer=sgd(0.1, momentum=0.9))
        trainer = Trainer(accelerator="cpu", max_epochs=epochs, callbacks=[probe], logger=False,
                          enable_progress_bar=False, enable_model_summary=False,
                          enable_checkpointing=False, default_root_dir=tmp_path)
        trainer.fit(FeatureModel(), train_dataloaders=loader(batches), ckpt_path=ckpt)
        return trainer, probe

    _, straight = run(2)
    first, _ = run(1)
    first.save_checkpoint(tmp_path / "one.ckpt")
    state = torch.load(tmp_path / "one.ckpt", weights_only=True)["callbacks"]
    assert any("classifier" in s and "optimizer" in s for s in state.values())
    _, resumed = run(2, str(tmp_path / "one.ckpt"))
    for a, b in zip(straight.classifier.state_dict().values(), resumed.classifier.state_dict().values()):
        assert torch.equal(a, b)
    fresh = OnlineEvaluator(num_classes=2)
    fresh.load_state_dict(straight.state_dict())  # before fit: kept until the optimizer exists
    assert fresh._pending is not None and "optimizer" in fresh._pending


def test_count_clips():
    views = [torch.zeros(4, 3, 2, 8, 8), torch.zeros(4, 3, 2, 8, 8)]
    assert count_clips({"input": views}) == 8
    assert count_clips({"input": views[0]}) == 4


def test_format_report_line():
    line = format_report({"learned": 0.713, "random_init": 0.402}, "held-out synthetic videos")
    assert line == ("kNN top-1 (held-out synthetic videos): learned 71.3%  random init 40.2%  "
                    "(+31.1 points)")


def test_tiny_demo_with_evaluation_callbacks(tmp_path, capsys):
    trainer = pretrain("demo", [*TINY, *CALLBACKS, f"dir.root={tmp_path}"])
    run = tmp_path / "demo"
    out = capsys.readouterr().out
    line = re.search(r"kNN top-1 \(held-out synthetic videos\): learned (\d+\.\d)%  random init "
                     r"(\d+\.\d)%  \(([+-]\d+\.\d) points\)", out)
    assert line is not None, out
    assert "bank 24 train videos, query 12 val videos" in out
    report = json.loads((run / "knn.json").read_text())
    assert report["bank"] == {"split": "train", "videos": 24}
    assert report["query"] == {"split": "val", "videos": 12}
    assert f"{100 * report['learned_top1']:.1f}" == line.group(1)
    assert report["gain_points"] == pytest.approx(100 * (report["learned_top1"] - report["random_init_top1"]))
    for key in ("learned_top1", "random_init_top1"):
        assert round(report[key] * 12) == pytest.approx(report[key] * 12)  # 12 query videos
    metrics = trainer.callback_metrics
    # the monitor ran at the last epoch end on the same trunk, bank and queries as the report
    assert float(metrics["knn/top1"]) == pytest.approx(report["learned_top1"])
    assert float(metrics["throughput/clips_per_s"]) > 0
    assert "online/train_acc_1" in metrics and "online/train_acc_5" in metrics
    report_cb = next(c for c in trainer.callbacks if type(c).__name__ == "KNNReport")
    trained = trainer.lightning_module.trunk.state_dict()
    initial = report_cb.initial_trunk.state_dict()
    assert any(not torch.equal(trained[k], initial[k]) for k in trained if trained[k].is_floating_point())
    header = (run / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "knn_report/learned_top1" in header and "throughput/clips_per_s" in header
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert any("classifier" in s for s in ckpt["callbacks"].values())


def test_knn_classifier_on_synthetic_videos(tmp_path):
    from sce_builtins.tools.synth import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "data", num_classes=3, train_per_class=4, val_per_class=2,
                                  frames=16, size=16, formats=("frames",))
    sampler = {"_name_": "constant_clips_per_video", "clip_duration": 1.0, "clips_per_video": 2}
    datamodule = sce_core.build("datamodules", {
        "_name_": "video_folder", "datadir": str(data), "decoder": "frame",
        "decoder_args": {"fps": 8, "frame_filter": {"subsample_type": "uniform", "num_samples": 4}},
        "test": {"dataset": {"datadir": str(data / "val.csv"), "video_path_prefix": str(data / "val")},
                 "clip_sampler": sampler, "loader": {"collate_fn": "multiple_samples"},
                 "global_batch_size": 4},
    })
    torch.manual_seed(0)
    model = sce_core.build("models", {
        "_name_": "knn_classifier", "k": 3, "temperature": 0.1,
        "trunk": {"_name_": "small_3d_cnn", "widths": [4, 8], "strides": [[1, 2, 2], [2, 2, 2]]},
        "bank": {"split": "train", "batch_size": 5, "clip_sampler": sampler},
        "test_transform": "div_255_normalize",
    })
    metrics = quiet_trainer().test(model, datamodule=datamodule, verbose=False)[0]
    assert metrics["test/num_videos"] == 6
    assert model.bank[0].shape == (12, 8) and sorted(model.bank[1].tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    # independent check: per-video mean features of the test split through the same trunk
    query = extract_features({"t": model.trunk}, datamodule.test_dataloader(), "cpu",
                             lambda x: model.test_transform(x))
    expected = knn_accuracy(query.features["t"], query.labels, *model.bank, k=3, temperature=0.1)
    assert metrics["test/knn_top1"] == pytest.approx(expected[1])



def test_throughput_logs_only_on_the_steps_the_loggers_write():
    from types import SimpleNamespace

    from sce_builtins.callbacks.throughput import Throughput

    logged = []
    module = SimpleNamespace(log=lambda name, value, **kw: logged.append((name, kw["prog_bar"])))
    callback = Throughput(window=4)
    for writes in (False, False, True, False):
        trainer = SimpleNamespace(world_size=1, is_last_batch=False,
                                  _logger_connector=SimpleNamespace(should_update_logs=writes))
        if not logged and callback._epoch_start is None:
            callback.on_train_epoch_start(trainer, module)
        callback.on_train_batch_end(trainer, module, None, {"input": torch.zeros(2, 3)}, 0)
    assert logged == [("throughput/clips_per_s", False)]  # the third step only, not on the bar
