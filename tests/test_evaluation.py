"""Evaluation: weighted kNN, per-video aggregation, linear and kNN evaluation models, configs."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Trainer
from sce_builtins.evaluation.finetune_eval import FinetuneClassifierEvaluation
from sce_builtins.evaluation.knn import knn_accuracy, knn_scores
from sce_builtins.evaluation.linear_eval import LinearClassifierEvaluation
from sce_builtins.evaluation.retrieval import retrieval_recall
from sce_builtins.evaluation.views import ViewRows
from sce_builtins.optim.factory import optimizer_factory
from torch import nn
from torch.utils.data import DataLoader

import sce_core
from sce_core.config import load_config, shipped_configs
from sce_core.validate import validate_config

BANK = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
BANK_LABELS = torch.tensor([0, 0, 1, -1])


def test_weighted_knn_scores_by_hand():
    query = torch.tensor([[0.6, 0.8], [-2.0, 0.0]])  # the second is not unit norm: normalised
    scores = knn_scores(query, BANK, BANK_LABELS, num_classes=2, k=2, temperature=0.5)
    # query 0: cosines 0.6, 0.96, 0.8 (the -1 row is ignored); top-2 = 0.96 (class 0), 0.8 (class 1)
    assert scores[0].tolist() == pytest.approx([math.exp(0.96 / 0.5), math.exp(0.8 / 0.5)], rel=1e-5)
    # query 1 = (-1, 0): cosines -1, -0.8, 0; top-2 = 0 (class 1), -0.8 (class 0). Without the
    # label mask the identical unlabelled row (cos 1) would be the nearest neighbour.
    assert scores[1].tolist() == pytest.approx([math.exp(-0.8 / 0.5), math.exp(0.0)], rel=1e-5)
    three = knn_scores(query[:1], BANK, BANK_LABELS, num_classes=2, k=3, temperature=0.5)
    assert three[0, 0].item() == pytest.approx(math.exp(1.92) + math.exp(1.2), rel=1e-5)


def test_knn_accuracy_skips_unlabelled_queries_and_clips_k():
    query = torch.tensor([[0.6, 0.8], [-1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, -1])
    acc = knn_accuracy(query, labels, BANK, BANK_LABELS, k=2, temperature=0.5, topk=(1, 2))
    assert acc == {1: 1.0, 2: 1.0}
    # k larger than the bank: all 3 labelled rows vote; query (0, 1) gets class 0 (2 votes, weaker)
    acc = knn_accuracy(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), BANK, BANK_LABELS,
                       k=200, temperature=10.0)
    # weights exp(0/10) + exp(0.6/10) = 2.06 for class 0 vs exp(1/10) = 1.105 for class 1
    assert acc[1] == 1.0
    with pytest.raises(ValueError, match="k must be"):
        knn_scores(query, BANK, BANK_LABELS, k=0)


def test_view_rows_combine_the_views_of_each_video_once():
    rows = ViewRows()
    # video 7: views (1, 0) and (3, 2); video 2: views (5, 5) and (0, 1), in two batches
    rows.add(torch.tensor([[1.0, 0.0], [5.0, 5.0], [3.0, 2.0]]),
             {"idx": [7, 2, 7], "label": [1, 0, 1], "clip_index": [0, 0, 1], "aug_index": [0, 0, 0]})
    rows.add(torch.tensor([[0.0, 1.0], [5.0, 5.0]]),  # the second row repeats view (2, 0, 0): padding
             {"idx": [2, 2], "label": [0, 0], "clip_index": [1, 0], "aug_index": [0, 0]})
    mean, labels, ids = rows.videos()
    assert ids.tolist() == [2, 7] and labels.tolist() == [0, 1]  # sorted by video id
    assert mean.tolist() == [[2.5, 3.0], [2.0, 1.0]]
    best, _, _ = rows.videos("max")
    assert best.tolist() == [[5.0, 5.0], [3.0, 2.0]]
    unkeyed = ViewRows()  # batches without view indices: rows are the views in the order seen
    unkeyed.add(torch.tensor([[1.0], [2.0]]), {"idx": [4, 4], "label": [3, 3]})
    unkeyed.add(torch.tensor([[6.0]]), {"idx": [4], "label": [3]})
    assert unkeyed.videos()[0].tolist() == [[3.0]]


class FeatureTrunk(nn.Module):
    """Identity 'trunk' on (B, 3) features, with a BatchNorm whose statistics must not move."""

    num_features = 3

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0 * self.bn(x)


def identity_classifier() -> nn.Linear:
    head = nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
        head.bias.zero_()
    return head


def quiet_trainer(**kw) -> Trainer:
    return Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_checkpointing=False, enable_model_summary=False, **kw)


def batch(rows, idx, labels):
    return {"input": torch.tensor(rows, dtype=torch.float32), "idx": torch.tensor(idx),
            "label": torch.tensor(labels)}


def test_linear_classifier_test_averages_softmax_per_video_across_batches():
    model = LinearClassifierEvaluation(FeatureTrunk(), identity_classifier(), topk=(1, 2))
    # video 5 (label 0): views with logits (2,0,0) and (0,3,0), in two different batches;
    # video 9 (label 2): two views (0,0,1); video 4 is unlabelled and ignored.
    batches = [
        batch([[2, 0, 0], [0, 0, 1], [9, 0, 0]], [5, 9, 4], [0, 2, -1]),
        batch([[0, 0, 1], [0, 3, 0]], [9, 5], [2, 0]),
    ]
    loader = DataLoader(batches, batch_size=None)
    metrics = quiet_trainer().test(model, dataloaders=loader, verbose=False)[0]
    e2, e3, e1 = math.exp(2), math.exp(3), math.exp(1)
    video5 = [(e2 / (e2 + 2) + 1 / (e3 + 2)) / 2, (1 / (e2 + 2) + e3 / (e3 + 2)) / 2]
    assert video5[1] > video5[0]  # the mean of softmax picks class 1: top-1 wrong, top-2 right
    video9_label_prob = e1 / (e1 + 2)
    assert metrics["test/acc_1"] == pytest.approx(0.5)
    assert metrics["test/acc_2"] == pytest.approx(1.0)
    assert metrics["test/num_videos"] == 2
    nll = (-math.log(video5[0]) - math.log(video9_label_prob)) / 2
    assert metrics["test/loss"] == pytest.approx(nll, rel=1e-5)


def test_linear_classifier_trains_only_the_classifier_with_a_frozen_eval_trunk():
    torch.manual_seed(0)
    trunk = FeatureTrunk()
    model = LinearClassifierEvaluation(
        trunk, nn.Linear(3, 2),
        optimizer=lambda **kw: optimizer_factory(name="sgd", initial_lr=0.5, **kw),
    )
    x = torch.randn(32, 3)
    y = (x[:, 0] > 0).long()
    batches = [batch(x[i:i + 8].tolist(), list(range(i, i + 8)), y[i:i + 8].tolist()) for i in range(0, 32, 8)]
    before = [p.detach().clone() for p in model.classifier.parameters()]
    quiet_trainer(max_epochs=3).fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    assert not trunk.training and model.classifier.training
    assert torch.equal(trunk.bn.running_mean, torch.zeros(3))  # BN statistics never updated
    assert all(not p.requires_grad for p in trunk.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.classifier.parameters()))
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9


def test_linear_classifier_loads_the_trunk_through_pretrained(tmp_path):
    trunk = sce_core.build("trunks", {"_name_": "small_3d_cnn", "widths": [4, 8],
                                      "strides": [[1, 2, 2], [2, 2, 2]]})
    path = tmp_path / "trunk.pt"
    torch.save(trunk.state_dict(), path)
    model = sce_core.build("models", {
        "_name_": "linear_classifier",
        "trunk": {"_name_": "small_3d_cnn", "widths": [4, 8], "strides": [[1, 2, 2], [2, 2, 2]],
                  "pretrained": str(path)},
        "classifier": {"_name_": "linear_head", "input_dim": 8, "output_dim": 5},
    })
    for key, value in trunk.state_dict().items():
        assert torch.equal(model.trunk.state_dict()[key], value)
    assert model(torch.rand(2, 3, 4, 8, 8)).shape == (2, 5)


EVAL_CONFIGS = sorted(name for name in shipped_configs() if name.startswith("eval/"))


def test_shipped_eval_configs_exist():
    assert {"eval/linear_r3d18_kinetics200", "eval/linear_r3d18_ucf101", "eval/linear_r3d18_hmdb51",
            "eval/knn_r3d18_ucf101", "eval/finetune_r3d18_ucf101", "eval/finetune_r3d18_hmdb51",
            "eval/retrieval_r3d18_ucf101", "eval/retrieval_r3d18_hmdb51", "eval/finetune_demo",
            "eval/retrieval_demo"} <= set(EVAL_CONFIGS)


@pytest.mark.parametrize("name", EVAL_CONFIGS)
def test_shipped_eval_config_is_valid_with_its_mandatory_values(name):
    missing = {issue.path for issue in validate_config(load_config(name))}
    demo = name.endswith("_demo")  # the demo's data is generated in the cache
    assert missing == ({"model.trunk.pretrained"} if demo else {"dir.data", "model.trunk.pretrained"})
    cfg = load_config(name, ["dir.data=/x", "model.trunk.pretrained=/y.pt"])
    assert validate_config(cfg) == []


def test_retrieval_recall_by_hand():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1], [0.7, 0.7]])
    bank_labels = torch.tensor([0, 1, 2, 1])
    query = torch.tensor([[0.9, 0.2], [-0.5, 1.0], [0.0, -1.0]])
    labels = torch.tensor([1, 2, 0])
    # without centring: q0's nearest bank rows are 0 (class 0), 3 (class 1); q1's are 1 (1), 2 (2);
    # q2's is 0 (class 0): R@1 = 1/3 (q2), R@2 = 1
    recall = retrieval_recall(query, labels, bank, bank_labels, ks=(1, 2, 3), center=False)
    assert recall == {1: pytest.approx(1 / 3), 2: pytest.approx(1.0), 3: pytest.approx(1.0)}
    # centred by the bank mean: the same as subtracting it by hand before the cosine
    centred = retrieval_recall(query, labels, bank, bank_labels, ks=(1,), center=True)
    mean = bank.mean(0)
    sims = torch.nn.functional.normalize(query - mean, dim=1) @ torch.nn.functional.normalize(bank - mean, dim=1).T
    hits = (bank_labels[sims.argmax(1)] == labels).float().mean().item()
    assert centred[1] == pytest.approx(hits)
    # unlabelled rows are left out on both sides; k beyond the bank is the whole bank
    assert retrieval_recall(query, torch.tensor([1, -1, -1]), bank, torch.tensor([0, 1, -1, -1]),
                            ks=(1, 9), center=False) == {1: 0.0, 9: 1.0}
    with pytest.raises(ValueError, match="ks must be positive integers"):
        retrieval_recall(query, labels, bank, bank_labels, ks=(0,))


def test_finetune_trains_the_trunk_and_its_batchnorm_with_dropout_before_the_classifier():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model = FinetuneClassifierEvaluation(
        trunk, nn.Linear(4, 2), dropout=0.5,
        optimizer=lambda **kw: optimizer_factory(name="sgd", initial_lr=0.5, **kw),
    )
    x = torch.randn(32, 3) + 1.0
    y = (x[:, 0] > 1.0).long()
    batches = [batch(x[i:i + 8].tolist(), list(range(i, i + 8)), y[i:i + 8].tolist()) for i in range(0, 32, 8)]
    before = [p.detach().clone() for p in trunk.parameters()]
    quiet_trainer(max_epochs=3).fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    assert all(not torch.equal(a, b) for a, b in zip(before, trunk.parameters()))  # the trunk trained
    assert not torch.equal(trunk[1].running_mean, torch.zeros(4))  # BN statistics updated
    assert model.dropout.p == 0.5
    model.train()
    features = torch.ones(1000, 4)
    assert (model.dropout(features) == 0).float().mean().item() == pytest.approx(0.5, abs=0.06)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model.classifier(trunk(x)))  # no dropout at test time


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51"])
def test_shipped_finetune_and_retrieval_configs_follow_the_reference_protocols(dataset):
    finetune = load_config(f"eval/finetune_r3d18_{dataset}")
    model = finetune.model
    assert model._name_ == "finetune_classifier" and model.dropout == 0.8
    assert model.classifier.output_dim == {"ucf101": 101, "hmdb51": 51}[dataset]
    assert (model.optimizer.name, model.optimizer.initial_lr, model.optimizer.batch_size,
            model.optimizer.scaler) == ("sgd", 0.1, 64, "linear")  # 0.1 x 64 / 256
    assert finetune.datamodule.train.global_batch_size == 64
    assert model.optimizer.scheduler.params.warmup_epochs == 0 and finetune.trainer.max_epochs == 200
    names = [t._name_ for t in model.train_transform.transforms]
    assert {"batch_random_color_jitter", "batch_random_grayscale", "batch_random_gaussian_blur",
            "batch_random_horizontal_flip"} <= set(names)
    for split in ("val", "test"):
        sampler = finetune.datamodule[split].clip_sampler
        assert (sampler.clips_per_video, sampler.augs_per_clip) == (10, 3)
    assert finetune.datamodule._name_ == dataset and finetune.datamodule.split_id == 1
    retrieval = load_config(f"eval/retrieval_r3d18_{dataset}")
    assert retrieval.model._name_ == "video_retrieval" and list(retrieval.model.ks) == [1, 5, 10, 20, 50]
    assert retrieval.model.center is True and retrieval.model.bank.split == "train"
    assert "clip_sampler" not in retrieval.model.bank  # the bank is embedded like the test videos
    assert retrieval.datamodule.test.clip_sampler.clips_per_video == 10


def test_a_misspelt_bank_key_is_found_by_sce_check():
    cfg = load_config("eval/retrieval_r3d18_ucf101", ["dir.data=/x", "model.trunk.pretrained=/y.pt",
                                                      "+model.bank.batchsize=3", "model.bank.split=tset"])
    assert [str(issue) for issue in validate_config(cfg)] == [
        "model.bank.batchsize: evaluation split options has no key 'batchsize'; did you mean "
        "'batch_size'? (keys: split, clip_sampler, transform, batch_size, num_workers, dataset)",
        "model.bank.split: evaluation split options expects 'split' to be 'train' | 'val' | 'test', "
        "got 'tset'"]


def test_sce_results_errors_are_one_line(tmp_path, capsys):
    from sce_core.cli import main

    assert main(["results", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"sce: error: sce results: no results.json under {tmp_path}; `sce evaluate PROTOCOL CONFIG` "
        "writes one into its run folder"]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text('{"metrics": {}}')
    assert main(["results", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"sce: error: sce results: {tmp_path / 'run' / 'results.json'} is not an `sce evaluate` record "
        "(needs protocol and metrics)"]
    assert main(["results", str(tmp_path / "missing")]) == 1
    assert "does not exist; give run folders or a folder above them" in capsys.readouterr().err


def test_an_evaluation_without_a_test_split_is_found_by_sce_check():
    cfg = load_config("eval/retrieval_demo", ["model.trunk.pretrained=null", "datamodule.test=null"])
    assert [str(issue) for issue in validate_config(cfg)] == [
        "datamodule.test: the video_retrieval model scores the test split's videos and the config "
        "has no test split; add datamodule.test (clip_sampler, transform, global_batch_size), as in "
        "the shipped eval/ configs"]
