"""model.performance: channels-last 3-D and torch.compile change how the step runs, not what it
computes (same losses and weights up to float rounding), and keep the checkpoint keys."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback
from test_sce_model import loader, make_model, trainer


class Seen(Callback):
    """The memory format of the views and of the first convolution at each training step."""

    def __init__(self) -> None:
        self.views_channels_last: list[bool] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        fmt = torch.channels_last_3d
        self.views_channels_last += [v.is_contiguous(memory_format=fmt) and not v.is_contiguous()
                                     for v in batch["input"]]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def fit(tmp_path, name: str, **performance) -> tuple[Seen, object]:
    model = make_model(performance=performance)
    run = trainer(tmp_path / name, max_epochs=2, callbacks=[Seen()])
    run.fit(model, loader(8))
    seen = next(c for c in run.callbacks if isinstance(c, Seen))
    return seen, model


def test_channels_last_trains_the_same_numbers_in_the_channels_last_layout(tmp_path):
    plain_seen, plain = fit(tmp_path, "plain")
    last_seen, last = fit(tmp_path, "last", channels_last=True)
    assert last_seen.views_channels_last and all(last_seen.views_channels_last)
    assert not any(plain_seen.views_channels_last)
    conv = next(m for m in last.trunk.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d) and not conv.weight.is_contiguous()
    torch.testing.assert_close(last_seen.losses, plain_seen.losses, rtol=1e-5, atol=1e-6)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(last.state_dict()[key], value, rtol=1e-3, atol=1e-4)  # 2.5e-5 seen


def test_compile_wraps_both_trunks_and_keeps_the_checkpoint_keys(tmp_path):
    plain_seen, plain = fit(tmp_path, "plain")
    compiled_seen, compiled = fit(tmp_path, "compiled", compile=True, compile_backend="eager")
    for trunk in (compiled.trunk, compiled.momentum_trunk):
        assert trunk._compiled_call_impl is not None
    assert plain.trunk._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())
    torch.testing.assert_close(compiled_seen.losses, plain_seen.losses, rtol=1e-5, atol=1e-6)


def test_schedule_values_are_logged_on_the_logging_steps_and_each_epochs_last_batch(tmp_path):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    run = trainer(tmp_path, max_epochs=2, logger=CSVLogger(tmp_path, name="log", version=0),
                  log_every_n_steps=3)
    run.fit(make_model(), loader(16))
    with open(tmp_path / "log" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = run.num_training_batches
    lr_steps = [int(r["step"]) for r in rows if r.get("pretrain/lr")]
    loss_steps = [int(r["step"]) for r in rows if r.get("pretrain/loss_step")]
    assert steps == 4 and lr_steps == loss_steps == [2, 5]  # steps 3 and 6 of 8 (log_every_n_steps)
    assert len([r for r in rows if r.get("pretrain/loss_epoch")]) == 2


def test_views_reach_the_trunk_contiguous_after_the_video_wrapper_permutes_them(tmp_path):
    from sce_core.building import build

    wrapper = {"_name_": "batch_video_wrapper", "same_on_frames": True, "video_format": "CTHW",
               "transforms": [{"_name_": "div_255"},
                              {"_name_": "normalize", "mean": [0.45] * 3, "std": [0.225] * 3}]}
    transform = build("transforms", {"_name_": "apply_transforms_on_list", "transforms": [wrapper, wrapper]},
                      path="model.train_transform")
    sample = transform([torch.zeros(4, 3, 2, 8, 8, dtype=torch.uint8)] * 2)[0]
    assert not sample.is_contiguous()  # what the wrapper gives back (a permuted view)

    class Contiguous(Callback):
        flags: list[bool] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.flags += [v.is_contiguous() for v in batch["input"]]

    seen = Contiguous()
    trainer(tmp_path, max_epochs=1, callbacks=[seen]).fit(make_model(train_transform=transform), loader(8))
    assert seen.flags and all(seen.flags)
