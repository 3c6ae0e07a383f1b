"""The "Here:" sentences of docs/reference.md that no other test checked: what sce-core does
where it differs from the reference, checked on the tiny SCE model of test_sce_model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from sce_builtins.models.shuffle_bn import SplitBatchNorm3d
from sce_builtins.optim.schedulers import warmup_cosine_lr
from test_sce_model import FACTORY_CALLS, B, Recorder, loader, make_model, trainer


class QueueWatch(Callback):
    """The queue's write position and the optimizer steps done after every micro-batch."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer, model, outputs, batch, batch_idx):
        self.rows.append((trainer.global_step, model.queue.position))


def test_cosine_epoch_momentum_uses_the_current_epoch(tmp_path):
    # §2.3: `cosine_epoch` follows the cosine over epochs, the current epoch's value from its
    # first batch on (no one-batch lag), 1 at the last epoch.
    model = make_model(schedules={"momentum": {"initial": 0.9, "kind": "cosine_epoch"}})
    rec = Recorder()
    trainer(tmp_path, max_epochs=3, callbacks=[rec]).fit(model, loader(8))
    # S = 2 steps per epoch, E = 3: m(e) = 1 - 0.1 * (1 + cos(pi e / 2)) / 2 = 0.9, 0.95, 1.
    assert rec.momenta == pytest.approx([0.9, 0.9, 0.95, 0.95, 1.0, 1.0], abs=1e-12)
    assert max(rec.ema_errors) < 1e-6


def test_gradient_accumulation_counts_steps_and_enqueues_at_the_optimizer_step(tmp_path):
    # §9.5: S = ceil(train batches / accumulate_grad_batches); §2.6: with accumulation the keys
    # of every micro-batch are enqueued together at the optimizer step.
    FACTORY_CALLS.clear()
    model = make_model(queue={"size": 64, "feature_dim": 8})
    watch = QueueWatch()
    trainer(tmp_path, max_epochs=1, accumulate_grad_batches=2, callbacks=[watch]).fit(
        model, loader(20))  # 5 batches of 4
    assert model.steps_per_epoch == 3  # ceil(5 / 2), not floor(20 / 8) = 2
    assert FACTORY_CALLS[-1]["num_steps_per_epoch"] == 3
    # 2 views x B keys per micro-batch; nothing enters the queue between two optimizer steps.
    per_batch = 2 * B
    assert watch.rows == [(0, 0), (1, 2 * per_batch), (1, 2 * per_batch), (2, 4 * per_batch),
                          (3, 5 * per_batch)]


def test_shuffle_bn_num_devices_is_informative_on_one_process(tmp_path):
    # §2.4: `shuffle_bn.num_devices` is informative; the trainer's world size is used at fit
    # start, and one process keeps simulating `simulate_n_devices` devices.
    model = make_model(shuffle_bn={"enabled": True, "num_devices": 4, "simulate_n_devices": 2})
    assert model.num_devices == 4
    trainer(tmp_path, max_steps=1).fit(model, loader(8))
    assert model.num_devices == 1
    split = [m for m in model.momentum_trunk.modules() if isinstance(m, SplitBatchNorm3d)]
    assert split and all(m.num_splits == 2 for m in split)


@pytest.mark.parametrize("per_rank_seed, expected", [(True, 7 + 1), (False, 1234)])
def test_per_rank_seed_offsets_the_rng_by_rank_and_false_turns_it_off(
        monkeypatch, per_rank_seed, expected):
    # §2.9: with several processes each rank seeds with base_seed + global_rank at fit start
    # (base_seed is PL_GLOBAL_SEED when set); per_rank_seed: false turns this off.
    model = make_model(per_rank_seed=per_rank_seed)
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    model._trainer = SimpleNamespace(world_size=2, global_rank=1)
    monkeypatch.setattr(type(model), "global_rank", property(lambda self: 1))
    torch.manual_seed(1234)
    model.on_fit_start()
    assert torch.initial_seed() == expected
    assert model.num_devices == 2


def test_a_one_step_warmup_starts_at_the_base_rate():
    # §4.3: a one-step warm-up starts at the base rate (not at warmup_start_lr), then the cosine.
    assert warmup_cosine_lr(0, 1, 5, 2.0, 0.0, 0.0) == 2.0
    assert warmup_cosine_lr(1, 1, 5, 2.0, 0.0, 0.0) == pytest.approx(2.0)
    assert warmup_cosine_lr(3, 1, 5, 2.0, 0.0, 0.0) == pytest.approx(1.0 + math.cos(math.pi / 2))
    assert warmup_cosine_lr(0, 2, 5, 2.0, 0.0, 0.0) == 0.0  # two steps: start, then the base


@pytest.mark.ddp
def test_ddp_never_broadcasts_the_queue(tmp_path):
    # §9.10: "DDP never broadcasts the queue": the buffers DDP broadcasts at each forward are
    # the BatchNorm statistics, not the queue or its pointer.
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = make_model()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(model)
        broadcast = {id(b) for b in ddp.modules_buffers}
    finally:
        dist.destroy_process_group()
    assert id(model.queue.queue) not in broadcast and id(model.queue.ptr) not in broadcast
    bn = next(m for m in model.trunk.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert id(bn.running_mean) in broadcast


def _probe(lr: float = 1.0):
    from sce_builtins.callbacks.online_evaluator import OnlineEvaluator
    from torch import nn

    probe = OnlineEvaluator(num_classes=3, input_dim=2)
    probe.classifier = nn.Linear(2, 3)
    with torch.no_grad():
        probe.classifier.weight.copy_(torch.tensor([[0.1, -0.2], [0.3, 0.0], [-0.1, 0.2]]))
        probe.classifier.bias.zero_()
    probe.optimizer = torch.optim.SGD(probe.classifier.parameters(), lr=lr)
    return probe


FEATS = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0], [-1.0, 1.0]])
LABELS = torch.tensor([0, 2, 1, 2])


def test_online_probe_runs_in_float32_outside_autocast():
    # §6.4: "the classifier runs in float32 outside autocast".
    plain, mixed = _probe(), _probe()
    want, _ = plain.train_step(FEATS, LABELS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = mixed.train_step(FEATS, LABELS)
    assert logits.dtype == loss.dtype == torch.float32
    torch.testing.assert_close(logits, want, rtol=0, atol=0)
    torch.testing.assert_close(mixed.classifier.weight, plain.classifier.weight, rtol=0, atol=0)


def _probe_rank(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        probe = _probe()
        rows = slice(0, 1) if rank == 0 else slice(1, 4)  # 1 labelled row here, 3 there
        probe.train_step(FEATS[rows], LABELS[rows])
        torch.save(probe.classifier.state_dict(), out)
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_online_probe_gradients_are_the_exact_mean_over_the_labelled_rows_of_every_rank(tmp_path):
    # §6.4: "under DDP its gradients are combined as an exact mean over the labelled rows of
    # every rank": ranks with 1 and 3 rows step like one process with all 4 (not the mean of
    # the two ranks' means).
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    outs = [tmp_path / f"rank{r}.pt" for r in (0, 1)]
    procs = [ctx.Process(target=_probe_rank, args=(r, str(tmp_path / "store"), str(outs[r])))
             for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    one = _probe()
    one.train_step(FEATS, LABELS)
    for out in outs:
        state = torch.load(out, weights_only=True)
        torch.testing.assert_close(state["weight"], one.classifier.weight.detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(state["bias"], one.classifier.bias.detach(), rtol=0, atol=1e-6)


def test_a_partial_last_batch_trains_with_keys(tmp_path):
    # §1.2: "the positive columns are computed from the batch it receives, so no mask is
    # stored": a smaller last batch (no drop_last) trains, with `use_keys`, where the
    # reference's mask sized at fit start needed full batches.
    from test_sce_model import Views
    from torch.utils.data import DataLoader

    model = make_model(use_keys=True)
    assert not [n for n, _ in model.loss_fn.named_buffers()]
    rec = Recorder()
    trainer(tmp_path, max_epochs=1, callbacks=[rec]).fit(
        model, DataLoader(Views(6), batch_size=4, drop_last=False))  # batches of 4 and 2
    assert len(rec.losses) == 2 and all(math.isfinite(v) and v > 0 for v in rec.losses)
    assert model.queue.position == 2 * 4 + 2 * 2  # both views' keys of both batches
