"""The shared base of the siamese pretraining methods (SCE, MoCo, ReSSL, BYOL, SimCLR).

One plain LightningModule holds what the methods share (docs/reference.md §2): the online
branch ``trunk -> projector -> predictor``; a momentum target branch ``trunk -> projector``
updated by a fused in-place EMA with its schedule; a FIFO queue of all-gathered target keys;
shuffle-BN; the views (global/local crops, symmetric pairing); GPU batch transforms; per-rank
seeding; the ``performance`` options; logging; checkpoint hooks. A method subclass sets the
class attributes below and builds its loss; SimCLR also replaces :meth:`step_loss`.

Step order (docs/reference.md §2.7, §10.6): GPU batch transforms in ``on_after_batch_transfer``;
schedules in ``on_train_batch_start``; target and online passes, loss and key gathering in
``training_step``; after the optimizer step (inside ``optimizer_step``) the gathered keys are
enqueued and the target network is averaged; then Lightning steps the LR scheduler and calls
``on_train_batch_end`` hooks. The EMA does not depend on the learning rate, so running it
right after the optimizer step is numerically the same as the reference's "step, LR step,
EMA" order, and a checkpoint written by a callback at batch end already holds the updated
queue and target.

Deliberate differences from the reference (each documented where it lives):
  * GPU augmentations run in ``on_after_batch_transfer`` (under no-grad, autocast off); views
    still ``uint8`` afterwards (or with no transform) are converted to float32 in ``[0, 1]``;
  * the queue holds one key per row and needs no divisibility of ``K`` by the keys per step;
    keys are enqueued once per optimizer step (with gradient accumulation, the keys of every
    micro-batch are enqueued together at the accumulation boundary, as the reference does);
    no clone of the queue is taken: the queue is written only after backward;
  * augmentation randomness differs per rank: on fit start, with several processes, each rank
    seeds its CPU and device RNGs with ``base_seed + global_rank`` (``base_seed`` = Lightning's
    ``PL_GLOBAL_SEED`` when set, else ``torch.initial_seed()``); turn off with
    ``per_rank_seed: false``. Data-side shuffling and worker seeding belong to the datamodule;
  * shuffle-BN simulates devices for BN1d/2d/3d (see ``shuffle_bn.py``) and returns ``h`` in
    the original order; ``shuffle_bn.num_devices`` is informative: the effective device count
    is the trainer's world size at fit start (the reference also overwrote it there);
  * the momentum schedule reads the step count from ``global_step`` (stateless, so resumes are
    exact); ``cosine_epoch`` uses the current epoch without the reference's one-batch lag;
  * steps per epoch ``S`` = ``ceil(num_training_batches / accumulate_grad_batches)`` as
    Lightning counts them on this rank (docs/reference.md §9.5); the run's total is
    ``trainer.estimated_stepping_batches``. ``S`` is passed to the optimizer factory as
    ``num_steps_per_epoch`` and drives the schedules.

``crops.num_splits`` must be 0 (the image-only spatial split mode of docs/reference.md §1.9 is
not implemented) and ``crops.num_splits_per_combination`` is then ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, get_args

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from sce_builtins.losses.sce import loss_logged_values
from sce_builtins.models.gather import concat_all_gather_without_backprop
from sce_builtins.models.momentum import (
    MomentumScheduleKind,
    ema_update_,
    make_target,
    momentum_value,
)
from sce_builtins.models.queue import FeatureQueue
from sce_builtins.models.sce_options import (
    DEFAULT_CROPS,
    DEFAULT_MOMENTUM_SCHEDULES,
    DEFAULT_PERFORMANCE,
    DEFAULT_SHUFFLE_BN,
    CropOptions,
    MomentumSchedules,
    PerformanceOptions,
    QueueOptions,
    ShuffleBNOptions,
    with_defaults,
)
from sce_builtins.models.shuffle_bn import (
    convert_to_split_batchnorm,
    set_num_simulated_devices,
    shuffled_forward,
)
from sce_builtins.transforms.stage import transform_batch
from sce_core.slots import Component, Factory

#: ``queue_use`` values: the method needs a queue, may take one, or refuses one.
QUEUE_REQUIRED, QUEUE_OPTIONAL, QUEUE_REFUSED = "required", "optional", "refused"


def as_views(x: Any) -> list[Tensor]:
    """The batch's ``input`` as a list of views."""
    return [x] if isinstance(x, Tensor) else list(x)


class SiameseModel(LightningModule):
    """Shared base of the pretraining methods: online branch, momentum target, queue, views.

    The batch is ``{"input": [Tensor(B, C, T, H, W) per view], ...}`` (uint8 or float), with
    ``crops.num_global`` global views first, then ``crops.num_local`` local ones. ``forward(x)``
    returns the online trunk features ``(B, num_features)`` (evaluation, export).

    Args:
        trunk: encoder mapping a clip batch to ``(B, D)`` features (``trunks`` component).
        optimizer: optimizer factory node (e.g. ``optimizer_factory``), called with
            ``model``, ``num_steps_per_epoch`` and ``global_batch_size``.
        projector: head on the trunk features (also copied into the target branch).
        predictor: head on the online projection (online branch only); needs a projector.
        train_transform: GPU batch transform applied to the list of training views after
            transfer to the device (e.g. ``apply_transforms_on_list``).
        val_transform: GPU batch transform applied to validation inputs.
        test_transform: GPU batch transform applied to test inputs.
        loss: loss component called as ``loss(q, k, queue=, k_global=)``; null builds the
            method's own loss from its values.
        sym: symmetric loss (every global crop is a target for the other crops).
        queue: ``{size: K, feature_dim: D}`` for a queue of K keys, or null for none.
        normalize_outputs: L2-normalise projections and predictions.
        crops: the views of a batch, keys (defaults):
            ``num_global`` (2): G, views fed to the target branch (first in the list);
            ``num_local`` (0): L, extra (smaller) views fed to the online branch only;
            ``mutual_pass`` (false): run all crops of a pass through the networks as one
            concatenated batch (BatchNorm statistics are then shared by the crops);
            ``num_splits`` (0): the reference's spatial split mode (images only), must be 0;
            ``num_splits_per_combination`` (2): split mode parameter, unused.
        schedules: ``momentum.initial`` (0.999): EMA momentum at the first step;
            ``momentum.kind`` (constant): ``constant``, ``cosine`` (per step, to 1 at the last
            step) or ``cosine_epoch`` (per epoch).
        shuffle_bn: MoCo shuffle-BN of the target branch, keys (defaults):
            ``enabled`` (false): shuffle the target batch across (possibly simulated) devices;
            ``num_devices`` (-1: from the trainer): informative only, the trainer's world size
            is used at fit start; ``simulate_n_devices`` (8): on one device, the number of
            simulated devices whose BatchNorm statistics are computed separately.
        per_rank_seed: with several processes, seed each rank's CPU and device RNGs with
            ``base_seed + global_rank`` at fit start so augmentations differ per rank.
        performance: how the step runs (the numbers do not change beyond float rounding), keys
            (defaults): ``channels_last`` (false): trunks and views in the channels-last 3-D
            memory format; ``compile`` (false): ``torch.compile`` the online and target trunks
            (state-dict keys unchanged) with ``compile_backend`` (inductor) and
            ``compile_mode`` (null: torch's default).
    """

    #: Name in error messages (the registry name of the method).
    method: ClassVar[str] = "siamese"
    #: Whether the method has a momentum target branch (EMA of trunk and projector).
    uses_target: ClassVar[bool] = True
    #: Whether the method needs, may take or refuses a queue.
    queue_use: ClassVar[str] = QUEUE_OPTIONAL
    #: The schedule groups and their defaults (``momentum`` is handled here).
    schedule_defaults: ClassVar[Mapping[str, Any]] = DEFAULT_MOMENTUM_SCHEDULES
    #: Scheduled values kept as attributes, set on the loss when it has them, and checkpointed.
    scheduled: ClassVar[tuple[str, ...]] = ("momentum",)

    def __init__(
        self,
        trunk: Component("trunks"),  # type: ignore[valid-type]
        optimizer: Factory("optimizers") = None,  # type: ignore[valid-type]
        projector: Component("heads") = None,  # type: ignore[valid-type]
        predictor: Component("heads") = None,  # type: ignore[valid-type]
        train_transform: Component("transforms") = None,  # type: ignore[valid-type]
        val_transform: Component("transforms") = None,  # type: ignore[valid-type]
        test_transform: Component("transforms") = None,  # type: ignore[valid-type]
        loss: Component("losses") = None,  # type: ignore[valid-type]
        sym: bool = False,
        queue: QueueOptions | None = None,
        normalize_outputs: bool = True,
        crops: CropOptions = DEFAULT_CROPS,
        schedules: MomentumSchedules = DEFAULT_MOMENTUM_SCHEDULES,
        shuffle_bn: ShuffleBNOptions = DEFAULT_SHUFFLE_BN,
        per_rank_seed: bool = True,
        performance: PerformanceOptions = DEFAULT_PERFORMANCE,
    ) -> None:
        super().__init__()
        self.performance = with_defaults("performance", performance, DEFAULT_PERFORMANCE, self.method)
        crops = with_defaults("crops", crops, DEFAULT_CROPS, self.method)
        self.schedules = with_defaults("schedules", schedules, self.schedule_defaults, self.method)
        shuffle_bn = with_defaults("shuffle_bn", shuffle_bn, DEFAULT_SHUFFLE_BN, self.method)
        self._check_branches(trunk, projector, predictor)
        self._check_crops(crops)
        self._check_momentum(self.schedules["momentum"])
        self._check_shuffle_bn(shuffle_bn)
        if loss is None:
            raise self.error("no loss; set model.loss")
        # Online branch.
        self.trunk, self.projector, self.predictor = trunk, projector, predictor
        self.train_transform, self.val_transform, self.test_transform = train_transform, val_transform, test_transform
        # Target branch: frozen copies, parameters and buffers (docs/reference.md §2.3).
        self.momentum_trunk = make_target(trunk) if self.uses_target else None
        self.momentum_projector = make_target(projector) if self.uses_target and projector is not None else None
        self.queue = self._make_queue(queue)
        if self.queue is not None:  # identical on every rank by construction: no DDP broadcast
            self._ddp_params_and_buffers_to_ignore = ["queue.queue", "queue.ptr"]
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.normalize_outputs = bool(normalize_outputs)
        self.num_global_crops = int(crops["num_global"])
        self.num_local_crops = int(crops["num_local"])
        self.num_crops = self.num_global_crops + self.num_local_crops
        self.num_splits = int(crops["num_splits"])
        self.num_splits_per_combination = int(crops["num_splits_per_combination"])
        self.mutual_pass = bool(crops["mutual_pass"])
        self.sym = bool(sym)
        self.per_rank_seed = bool(per_rank_seed)
        self.memory_format = torch.channels_last_3d if self.performance["channels_last"] else torch.contiguous_format
        self.num_devices = int(shuffle_bn["num_devices"])
        self.shuffle_bn = bool(shuffle_bn["enabled"])
        self.simulate_n_devices = int(shuffle_bn["simulate_n_devices"])
        if self.shuffle_bn:
            for module in self._target_modules():
                convert_to_split_batchnorm(module, 1)
            self._set_devices(self.num_devices if self.num_devices > 0 else 1)
        self.initial_momentum = float(self.schedules["momentum"]["initial"])
        self.momentum = self.initial_momentum
        # Set from the trainer in configure_optimizers (or by set_schedule_horizon).
        self.steps_per_epoch: int | None = None
        self.max_epochs: int | None = None
        self.total_steps: int | None = None
        self._pending_keys: list[Tensor] = []
        self._ema_pairs: tuple[list[Tensor], list[Tensor]] | None = None

    # ------------------------------------------------------------------ checks
    @classmethod
    def error(cls, msg: str) -> ValueError:
        """A one-line ``ValueError`` naming the method."""
        return ValueError(f"{cls.method}: {msg}")

    def _check_branches(self, trunk: Any, projector: Any, predictor: Any) -> None:
        """The online branch: a trunk module; a predictor only on top of a projector."""
        if not isinstance(trunk, nn.Module):
            raise self.error(f"trunk must be an nn.Module (a trunks component), got {type(trunk).__name__}")
        if predictor is not None and projector is None:
            raise self.error("a predictor needs a projector; set projector or remove predictor")

    def _check_crops(self, crops: Mapping[str, Any]) -> None:
        """At least two views, at least one global; the spatial split mode is not implemented."""
        num_global, num_local = crops["num_global"], crops["num_local"]
        if num_global < 1 or num_local < 0:
            raise self.error(f"need crops.num_global >= 1 and crops.num_local >= 0, got {num_global} and {num_local}")
        if num_global + num_local < 2:
            raise self.error(f"{self.method} needs at least two views; set crops.num_global: 2")
        if crops["num_splits"] != 0:
            raise self.error("crops.num_splits > 0 (spatial split mode, images only) is not implemented; "
                             "set crops.num_splits: 0")

    def _check_momentum(self, momentum: Mapping[str, Any]) -> None:
        """A known momentum schedule kind and a momentum in [0, 1]."""
        if momentum["kind"] not in get_args(MomentumScheduleKind):
            raise self.error(f"schedules.momentum.kind must be one of {get_args(MomentumScheduleKind)}, "
                             f"got {momentum['kind']!r}")
        if not 0.0 <= momentum["initial"] <= 1.0:
            raise self.error(f"schedules.momentum.initial must be in [0, 1], got {momentum['initial']}")

    def _check_shuffle_bn(self, shuffle_bn: Mapping[str, Any]) -> None:
        """A positive number of simulated devices; ``num_devices`` -1 or positive; a target."""
        if shuffle_bn["enabled"] and shuffle_bn["simulate_n_devices"] < 1:
            raise self.error(f"shuffle_bn.simulate_n_devices must be >= 1, got {shuffle_bn['simulate_n_devices']}")
        num_devices = shuffle_bn["num_devices"]
        if num_devices == 0 or num_devices < -1:
            raise self.error(f"shuffle_bn.num_devices must be -1 (from the trainer) or positive, got {num_devices}")
        if shuffle_bn["enabled"] and not self.uses_target:
            raise self.error("has no target branch to shuffle; set shuffle_bn.enabled: false")

    def _make_queue(self, cfg: Mapping[str, int] | None) -> FeatureQueue | None:
        if cfg is None:
            if self.queue_use == QUEUE_REQUIRED:
                raise self.error("needs a queue; set model.queue: {size: K, feature_dim: D}")
            return None
        if self.queue_use == QUEUE_REFUSED:
            raise self.error("uses no queue; set model.queue: null")
        if not isinstance(cfg, Mapping) or set(cfg) != {"size", "feature_dim"}:
            raise self.error("queue must be null or a mapping {size: K, feature_dim: D}")
        return FeatureQueue(size=int(cfg["size"]), feature_dim=int(cfg["feature_dim"]))

    def _target_modules(self) -> list[nn.Module]:
        return [m for m in (self.momentum_trunk, self.momentum_projector) if m is not None]

    def _set_devices(self, world_size: int) -> None:
        """Effective device count; simulated devices for shuffle-BN on a single process."""
        self.num_devices = int(world_size)
        if self.shuffle_bn:
            n = self.simulate_n_devices if world_size <= 1 else 1
            for module in self._target_modules():
                set_num_simulated_devices(module, n)

    # ------------------------------------------------------------------ public properties
    @property
    def num_features(self) -> int:
        """Dimension of the online trunk features returned by ``forward``."""
        return int(self.trunk.num_features)

    @property
    def learnable_params(self) -> list[nn.Parameter]:
        """Parameters of the online branch (trunk, projector, predictor); the target excluded."""
        params = list(self.trunk.parameters())
        for head in (self.projector, self.predictor):
            if head is not None:
                params += list(head.parameters())
        return params

    def forward(self, x: Tensor) -> Tensor:
        """Online trunk features ``(B, num_features)`` (evaluation and export)."""
        return self.trunk(x)

    # ------------------------------------------------------------------ branches
    def _heads(self, h: Tensor) -> dict[str, Tensor]:
        z = self.projector(h) if self.projector is not None else h
        q = self.predictor(z) if self.predictor is not None else z
        if self.normalize_outputs:
            z = F.normalize(z, dim=1)
            q = F.normalize(q, dim=1) if self.predictor is not None else z
        return {"h": h, "z": z, "q": q}

    def shared_step(self, x: Tensor) -> dict[str, Tensor]:
        """Online pass of one view: ``{h, z, q}`` (z, q L2-normalised if normalize_outputs)."""
        return self._heads(self.trunk(x))

    def multi_crop_shared_step(self, views: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Online pass of several views, separately or (``mutual_pass``) concatenated."""
        if not self.mutual_pass:
            return [self.shared_step(x) for x in views]
        # Consecutive views of one spatial size share a trunk pass; the heads see everything.
        hs, start = [], 0
        while start < len(views):
            end = start + 1
            while end < len(views) and views[end].shape[-1] == views[start].shape[-1]:
                end += 1
            hs.append(self.trunk(torch.cat(list(views[start:end]))))
            start = end
        return _split(self._heads(torch.cat(hs)), views)

    def _target_raw(self, x: Tensor) -> dict[str, Tensor]:
        h = self.momentum_trunk(x)
        z = self.momentum_projector(h) if self.momentum_projector is not None else h
        return {"h": h, "z": z}

    @torch.no_grad()
    def momentum_shared_step(self, x: Tensor) -> dict[str, Tensor]:
        """Target pass of one batch (shuffle-BN if enabled): ``{h, z}``, z normalised."""
        out = shuffled_forward(self._target_raw, x) if self.shuffle_bn else self._target_raw(x)
        if self.normalize_outputs:
            out["z"] = F.normalize(out["z"], dim=1)
        return out

    @torch.no_grad()
    def multi_crop_momentum_shared_step(self, views: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Target pass of several views, separately or (``mutual_pass``) concatenated."""
        if not self.mutual_pass or len(views) == 1:
            return [self.momentum_shared_step(x) for x in views]
        return _split(self.momentum_shared_step(torch.cat(list(views))), views)

    # ------------------------------------------------------------------ schedules (docs/reference.md §1.8)
    def set_schedule_horizon(self, steps_per_epoch: int, max_epochs: int, total_steps: int | None = None) -> None:
        """Set ``S`` (optimizer steps per epoch), ``E`` and the run's total optimizer steps."""
        if steps_per_epoch <= 0 or max_epochs <= 0:
            raise self.error(f"steps per epoch and max_epochs must be positive, got {steps_per_epoch}, {max_epochs}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.max_epochs = int(max_epochs)
        self.total_steps = int(total_steps) if total_steps is not None else self.steps_per_epoch * self.max_epochs

    def schedule_values(self, step: int, epoch: int) -> dict[str, float]:
        """The scheduled values (``momentum`` and the method's own) for the batch starting at
        optimizer step ``step`` (docs/reference.md §2.3)."""
        if self.steps_per_epoch is None or self.max_epochs is None:
            raise self.error("schedule horizon unknown; fit with a Trainer or call set_schedule_horizon")
        kind = self.schedules["momentum"]["kind"]
        if kind == "cosine_epoch":
            momentum = momentum_value(kind, self.initial_momentum, epoch, self.max_epochs - 1)
        else:
            momentum = momentum_value(kind, self.initial_momentum, step, self.total_steps - 1)
        return {**self.loss_schedule_values(step, epoch), "momentum": float(momentum)}

    def loss_schedule_values(self, step: int, epoch: int) -> dict[str, float]:
        """The method's own scheduled loss values (none here)."""
        return {}

    def _horizon_from_trainer(self) -> None:
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        batches = trainer.num_training_batches
        accumulate = max(int(trainer.accumulate_grad_batches), 1)
        if math.isinf(batches):
            if math.isinf(total):
                raise self.error("cannot size the schedules: set trainer.max_steps or give the train loader a length")
            steps = int(total) // max(int(trainer.max_epochs or 1), 1)
        else:
            steps = math.ceil(batches / accumulate)
        steps = max(int(steps), 1)
        epochs = trainer.max_epochs
        if epochs is None or epochs < 1:
            epochs = math.ceil(int(total) / steps)
        self.set_schedule_horizon(steps, int(epochs), int(total) if not math.isinf(total) else None)

    def _global_batch_size(self) -> int | None:
        trainer = self.trainer
        dm = getattr(trainer, "datamodule", None)
        for attr in ("train_global_batch_size", "global_batch_size"):
            value = getattr(dm, attr, None) if dm is not None else None
            if isinstance(value, int) and value > 0:
                return value
        loader = trainer.train_dataloader
        size = getattr(loader, "batch_size", None)
        if size is None:
            size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
        if not isinstance(size, int):
            return None
        return size * trainer.world_size * max(int(trainer.accumulate_grad_batches), 1)

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self) -> Any:
        """Call the optimizer factory with this model, ``S`` and the global batch size."""
        if self.optimizer_factory is None:
            raise self.error("no optimizer configured; set model.optimizer (e.g. optimizer_factory)")
        self._horizon_from_trainer()
        return self.optimizer_factory(
            model=self, num_steps_per_epoch=self.steps_per_epoch, global_batch_size=self._global_batch_size())

    def setup(self, stage: str) -> None:
        """Memory format and compilation (``performance``), before DDP wraps the model."""
        if stage != "fit":
            return
        trunks = [t for t in (self.trunk, self.momentum_trunk) if t is not None]
        if self.performance["channels_last"]:
            for trunk in trunks:
                trunk.to(memory_format=torch.channels_last_3d)
        if self.performance["compile"]:
            for trunk in trunks:
                trunk.compile(backend=self.performance["compile_backend"], mode=self.performance["compile_mode"])

    def on_fit_start(self) -> None:
        """Use the trainer's world size; rank 0's queue everywhere; offset the CPU and device
        RNGs by rank (per_rank_seed)."""
        world = int(self.trainer.world_size)
        self._set_devices(world)
        if self.queue is not None and world > 1 and torch.distributed.is_initialized():
            with torch.no_grad():  # DDP skips the queue; a run without a seed starts it alike here
                torch.distributed.broadcast(self.queue.queue, src=0)
        if self.per_rank_seed and world > 1:
            # Every generator: the CPU one draws torchaug's apply decisions and op orders, the
            # device one the per-sample values (seeding only CUDA left the CPU stream shared).
            torch.manual_seed((self.rank_base_seed() + int(self.global_rank)) % (2**63))

    @staticmethod
    def rank_base_seed() -> int:
        """Seed that ``per_rank_seed`` offsets: ``PL_GLOBAL_SEED`` if set, else torch's."""
        env = os.environ.get("PL_GLOBAL_SEED")
        return int(env) if env not in (None, "") else int(torch.initial_seed())

    def on_train_start(self) -> None:
        """Collect the EMA parameter pairs once the strategy has wrapped the model."""
        self._ema_pairs = None
        self._pending_keys = []

    def _ema_parameters(self) -> tuple[list[Tensor], list[Tensor]]:
        if self._ema_pairs is None:
            targets: list[Tensor] = []
            onlines: list[Tensor] = []
            pairs = [(self.momentum_trunk, self.trunk)] if self.uses_target else []
            if self.momentum_projector is not None:
                pairs.append((self.momentum_projector, self.projector))
            for target, online in pairs:
                t_named = list(target.named_parameters())
                o_named = list(online.named_parameters())
                if [n for n, _ in t_named] != [n for n, _ in o_named]:
                    raise self.error("target and online branches have different parameters")
                targets += [p for _, p in t_named]
                onlines += [p for _, p in o_named]
            self._ema_pairs = (targets, onlines)
        return self._ema_pairs

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the GPU batch transform of the current stage to ``batch["input"]``; views
        leave contiguous (channels-last with ``performance.channels_last``), so the trunk's
        first convolution does not copy them."""
        batch = transform_batch(self, batch, self.train_transform, self.val_transform, self.test_transform)
        if isinstance(batch, Mapping) and "input" in batch:
            x = batch["input"]
            batch = {**batch, "input": self._layout(x) if isinstance(x, Tensor) else [self._layout(v) for v in x]}
        return batch

    def _layout(self, x: Tensor) -> Tensor:
        fmt = self.memory_format if x.dim() == 5 else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Evaluate the scheduled values for this batch (docs/reference.md §1.8, §2.3)."""
        for name, value in self.schedule_values(int(self.trainer.global_step), int(self.trainer.current_epoch)).items():
            setattr(self, name, value)
        self._sync_loss_schedule()

    def _sync_loss_schedule(self) -> None:
        """Give the loss the scheduled values it has as attributes (SCE: ``coeff``, ``temp_m``)."""
        for name in self.scheduled:
            if name != "momentum" and hasattr(self.loss_fn, name):
                setattr(self.loss_fn, name, getattr(self, name))

    def compute_loss(self, q: Tensor, k: Tensor, k_global: Tensor, queue: Tensor | None) -> Tensor:
        """Loss of predictions ``q`` against target keys ``k`` (float32 inside the loss)."""
        return self.loss_fn(q, k, queue=queue, k_global=k_global)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """The method's loss on the batch's views (:meth:`step_loss`); keys kept for the queue."""
        views = as_views(batch["input"] if isinstance(batch, Mapping) else batch)
        if len(views) != self.num_crops:
            raise self.error(f"the batch has {len(views)} views but num_global_crops + num_local_crops = "
                             f"{self.num_crops}; make the datamodule produce that many clips")
        total, first, keys = self.step_loss(views)
        if self.queue is not None and keys is not None:
            self._pending_keys.append(keys.detach())
        self._log_step(total, views[0].shape[0])
        return {"loss": total, **{k: v.detach() for k, v in first.items()}}

    def step_loss(self, views: list[Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """Target and online passes, the loss averaged over the (online, target) view pairs
        (docs/reference.md §1.9). Returns the loss, the first online output and the gathered
        target keys for the queue."""
        queue = self.queue.queue.detach() if self.queue is not None else None
        g = self.num_global_crops if self.sym else 1
        targets = self.multi_crop_momentum_shared_step(views[:g])
        online = self.multi_crop_shared_step(views if self.sym else views[1:])
        offset = 0 if self.sym else 1  # online[j] is view j + offset
        k_global = [concat_all_gather_without_backprop(t["z"]) for t in targets]
        total = views[0].new_zeros((), dtype=torch.float32)
        for i in range(g):
            for j, out in enumerate(online):
                if j + offset != i:
                    total = total + self.compute_loss(out["q"], targets[i]["z"], k_global[i], queue)
        total = total / ((self.num_crops - 1) * g)
        return total, online[0], torch.cat(k_global) if g > 1 else k_global[0]

    def _log_step(self, loss: Tensor, batch_size: int) -> None:
        """Log without host synchronisation.

        The loss every step, as a device tensor averaged over ranks on the device; not as a
        progress-bar value, which Lightning converts to a Python number every step (the
        progress display reads the loss when it redraws). The scheduled values and the learning
        rate, plain floats identical on every rank, only on the steps Lightning writes to the
        loggers (``trainer.log_every_n_steps``) and at the epoch's last batch, since each
        logged float is a blocking host-to-device copy.
        """
        self.log("pretrain/loss", loss, on_step=True, on_epoch=True, batch_size=batch_size, sync_dist=True)
        if not self._writes_logs():
            return
        values = {f"pretrain/{name}": float(value) for name, value in loss_logged_values(self.loss_fn).items()}
        if self.uses_target:
            values["pretrain/momentum_value"] = float(self.momentum)
        if self._trainer is not None and self.trainer.optimizers:
            values["pretrain/lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.log_dict(values, on_step=True, on_epoch=False, batch_size=batch_size)

    def _writes_logs(self) -> bool:
        """Whether this training step's values reach the loggers (or end the epoch: a run shorter
        than ``log_every_n_steps`` still reports them)."""
        if self._trainer is None:
            return True
        connector = getattr(self.trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True) or self.trainer.is_last_batch)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Optimizer step, then enqueue this step's keys and update the target (EMA)."""
        super().optimizer_step(*args, **kwargs)
        self.after_optimizer_step()

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Enqueue the pending gathered keys, then ``target <- m * target + (1 - m) * online``."""
        if self.queue is not None and self._pending_keys:
            keys = self._pending_keys[0] if len(self._pending_keys) == 1 else torch.cat(self._pending_keys)
            self.queue.enqueue(keys)
        self._pending_keys = []
        targets, onlines = self._ema_parameters()
        ema_update_(targets, onlines, self.momentum)

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """Online pass in eval mode: ``{h, z, q}`` detached (consumed by the online evaluator)."""
        return self._eval_step(batch)

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """Same as ``validation_step`` on test batches."""
        return self._eval_step(batch)

    def _eval_step(self, batch: Any) -> dict[str, Tensor]:
        x = batch["input"] if isinstance(batch, Mapping) else batch
        if not isinstance(x, Tensor):
            x = x[0]
        return {k: v.detach() for k, v in self.shared_step(x).items()}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the scheduled values and the horizon (queue and target are in the state dict)."""
        checkpoint["sce_schedule"] = {
            **{name: getattr(self, name) for name in self.scheduled},
            "steps_per_epoch": self.steps_per_epoch, "max_epochs": self.max_epochs,
            "total_steps": self.total_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the values saved by ``on_save_checkpoint``."""
        state = checkpoint.get("sce_schedule")
        if not state:
            return
        for name in self.scheduled:
            if name in state:
                setattr(self, name, state[name])
        self._sync_loss_schedule()
        if state.get("steps_per_epoch") and state.get("max_epochs"):
            self.set_schedule_horizon(state["steps_per_epoch"], state["max_epochs"], state.get("total_steps"))


def _split(out: dict[str, Tensor], views: Sequence[Tensor]) -> list[dict[str, Tensor]]:
    """The outputs of concatenated views, one mapping per view."""
    sizes = [v.shape[0] for v in views]
    parts = {k: torch.split(v, sizes) for k, v in out.items()}
    return [{k: parts[k][i] for k in out} for i in range(len(views))]
