"""SCE (Similarity Contrastive Estimation) pretraining as a plain LightningModule (spec 2).

Online branch ``trunk -> projector -> predictor``; momentum target branch ``trunk ->
projector`` updated by a fused in-place EMA; a FIFO queue of all-gathered target keys; the
SCE loss (spec 1) with its coefficient / target-temperature schedules (spec 1.8).

Step order (spec 2.7, 10.6): GPU batch transforms in ``on_after_batch_transfer``; schedules in
``on_train_batch_start``; target and online passes, loss and key gathering in
``training_step``; after the optimizer step (inside ``optimizer_step``) the gathered keys are
enqueued and the target network is averaged; then Lightning steps the LR scheduler and calls
``on_train_batch_end`` hooks. The EMA does not depend on the learning rate, so running it
right after the optimizer step is numerically the same as the reference's "step, LR step,
EMA" order, and a checkpoint written by a callback at batch end already holds the updated
queue and target.

Deliberate differences from the reference (each documented where it lives):
  * GPU augmentations run in ``on_after_batch_transfer`` (under no-grad, autocast off); views
    still ``uint8`` afterwards (or with no transform) are converted to float32 in ``[0, 1]``;
  * the loss is computed in float32 even under autocast (see ``losses/sce.py``);
  * the queue holds one key per row and needs no divisibility of ``K`` by the keys per step;
    keys are enqueued once per optimizer step (with gradient accumulation, the keys of every
    micro-batch are enqueued together at the accumulation boundary, as the reference does);
    no clone of the queue is taken: the queue is written only after backward;
  * augmentation randomness differs per rank: on fit start, with several processes, each rank
    seeds its device RNG with ``base_seed + global_rank`` (``base_seed`` = Lightning's
    ``PL_GLOBAL_SEED`` when set, else ``torch.initial_seed()``); turn off with
    ``per_rank_seed: false``. Data-side shuffling and worker seeding belong to the datamodule;
  * shuffle-BN simulates devices for BN1d/2d/3d (see ``shuffle_bn.py``) and returns ``h`` in
    the original order; ``shuffle_bn`` defaults to false (the canonical recipe's value);
  * ``num_devices`` is informative: the effective device count is the trainer's world size at
    fit start (the reference also overwrote it there); ``-1`` is accepted;
  * the momentum schedule reads the step count from ``global_step`` (stateless, so resumes are
    exact); ``cosine_epoch`` uses the current epoch without the reference's one-batch lag;
  * steps per epoch ``S`` = ``ceil(num_training_batches / accumulate_grad_batches)`` as
    Lightning counts them on this rank (the real number of optimizer steps; the reference's
    ``floor(N / global_batch)`` can be off by one, spec 9.5); the run's total is
    ``trainer.estimated_stepping_batches``. ``S`` is passed to the optimizer factory as
    ``num_steps_per_epoch`` and drives the momentum / coefficient / temperature schedules.

Seed keys accepted but not used: ``num_splits`` must be 0 (the image-only spatial split mode
of spec 1.9 is not implemented; a positive value raises) and ``num_splits_per_combination``
is then ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypedDict

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from sce_builtins.losses.sce import SCELoss
from sce_builtins.models.gather import concat_all_gather_without_backprop
from sce_builtins.models.momentum import ema_update_, make_target, momentum_value
from sce_builtins.models.queue import FeatureQueue
from sce_builtins.models.shuffle_bn import (
    convert_to_split_batchnorm,
    set_num_simulated_devices,
    shuffled_forward,
)
from sce_builtins.optim.value_schedule import scheduler_value
from sce_builtins.transforms.stage import transform_batch
from sce_core.constraints import NonNegative, Positive, Range, UnitInterval
from sce_core.slots import Component, Factory

_NAME = "sce"
_MOMENTUM_KINDS = ("constant", "cosine", "cosine_epoch")
_VALUE_KINDS = ("linear", "cosine")


class QueueOptions(TypedDict):
    """queue options"""

    size: Annotated[int, Positive]
    feature_dim: Annotated[int, Positive]


Temperature = Annotated[float, Range(gt=0)]


def _err(msg: str) -> ValueError:
    return ValueError(f"{_NAME}: {msg}")


def _as_views(x: Any) -> list[Tensor]:
    return [x] if isinstance(x, Tensor) else list(x)


class SCEModel(LightningModule):
    """SCE pretraining model: online trunk/projector/predictor, EMA target, queue, SCE loss.

    The batch is ``{"input": [Tensor(B, C, T, H, W) per view], ...}`` (uint8 or float), with
    ``num_global_crops`` global views first, then ``num_local_crops`` local ones. ``forward(x)``
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
        loss: loss component called as ``loss(q, k, queue=, k_global=)``; null builds the SCE
            loss from ``coeff``, ``temp``, ``temp_m`` and ``use_keys``. The ``coeff`` and
            ``temp_m`` schedules are applied to any loss that has those attributes.
        coeff: lambda, weight of the one-hot positive in the target distribution.
        final_scheduler_coeff: value reached by the main ``coeff`` schedule.
        initial_momentum: EMA momentum at the first step.
        scheduler_momentum: ``constant``, ``cosine`` (per step, to 1 at the last step) or
            ``cosine_epoch`` (per epoch).
        mutual_pass: run all crops of a pass through the networks as one concatenated batch
            (BatchNorm statistics are then shared by the crops).
        normalize_outputs: L2-normalise projections and predictions.
        num_devices: devices of the run (-1: from the trainer); informative only, the
            trainer's world size is used at fit start.
        num_global_crops: G, views fed to the target branch (first in the list).
        num_local_crops: L, extra (smaller) views fed to the online branch only.
        num_splits: spatial split mode of the reference (images only); must be 0.
        num_splits_per_combination: split mode parameter; unused.
        per_rank_seed: with several processes, seed each rank's device RNG with
            ``base_seed + global_rank`` at fit start so augmentations differ per rank.
        queue: ``{size: K, feature_dim: D}`` for a queue of K keys, or null for none.
        scheduler_coeff: main ``coeff`` schedule (``linear``, ``cosine`` or null).
        simulate_n_devices: with ``shuffle_bn`` on one device, the number of simulated devices
            whose BatchNorm statistics are computed separately in the target branch.
        shuffle_bn: shuffle the target branch's batch across (possibly simulated) devices.
        start_warmup_coeff: ``coeff`` at the start of its warm-up.
        start_warmup_temp_m: ``temp_m`` at the start of its warm-up.
        sym: symmetric loss (every global crop is a target for the other crops).
        temp: temperature of the online distribution.
        temp_m: temperature of the target distribution (after its warm-up).
        use_keys: use the in-batch gathered keys as extra candidates (see the SCE loss).
        warmup_epoch_coeff: epochs of ``coeff`` warm-up (0: none).
        warmup_epoch_temp_m: epochs of ``temp_m`` warm-up (0: none).
        warmup_scheduler_coeff: ``coeff`` warm-up shape (``linear``, ``cosine`` or null).
        warmup_scheduler_temp_m: ``temp_m`` warm-up shape (``linear``, ``cosine`` or null).
    """

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
        coeff: Annotated[float, UnitInterval] = 0.5,
        final_scheduler_coeff: Annotated[float, UnitInterval] = 0.0,
        initial_momentum: Annotated[float, UnitInterval] = 0.999,
        scheduler_momentum: Literal["constant", "cosine", "cosine_epoch"] = "constant",
        mutual_pass: bool = False,
        normalize_outputs: bool = True,
        num_devices: int = -1,
        num_global_crops: Annotated[int, Positive] = 2,
        num_local_crops: Annotated[int, NonNegative] = 0,
        num_splits: int = 0,
        num_splits_per_combination: int = 2,
        per_rank_seed: bool = True,
        queue: QueueOptions | None = None,
        scheduler_coeff: Literal["linear", "cosine"] | None = None,
        simulate_n_devices: Annotated[int, Positive] = 8,
        shuffle_bn: bool = False,
        start_warmup_coeff: Annotated[float, UnitInterval] = 1.0,
        start_warmup_temp_m: Temperature = 0.05,
        sym: bool = False,
        temp: Temperature = 0.1,
        temp_m: Temperature = 0.05,
        use_keys: bool = False,
        warmup_epoch_coeff: Annotated[int, NonNegative] = 0,
        warmup_epoch_temp_m: Annotated[int, NonNegative] = 0,
        warmup_scheduler_coeff: Literal["linear", "cosine"] | None = "linear",
        warmup_scheduler_temp_m: Literal["linear", "cosine"] | None = "cosine",
    ) -> None:
        super().__init__()
        self._check_args(
            trunk, projector, predictor, num_global_crops, num_local_crops, num_splits,
            scheduler_momentum, initial_momentum, scheduler_coeff, warmup_scheduler_coeff,
            warmup_scheduler_temp_m, warmup_epoch_coeff, warmup_epoch_temp_m, shuffle_bn,
            simulate_n_devices, num_devices,
        )
        # Online branch.
        self.trunk = trunk
        self.projector = projector
        self.predictor = predictor
        self.train_transform = train_transform
        self.val_transform = val_transform
        self.test_transform = test_transform
        # Target branch: frozen copies, parameters and buffers (spec 2.3).
        self.momentum_trunk = make_target(trunk)
        self.momentum_projector = make_target(projector) if projector is not None else None
        self.queue = self._make_queue(queue)
        self.loss_fn = loss if loss is not None else SCELoss(
            coeff=coeff, temp=temp, temp_m=temp_m, use_keys=use_keys)

        self.optimizer_factory = optimizer
        self.normalize_outputs = bool(normalize_outputs)
        self.num_global_crops = int(num_global_crops)
        self.num_local_crops = int(num_local_crops)
        self.num_crops = self.num_global_crops + self.num_local_crops
        self.num_splits = int(num_splits)
        self.num_splits_per_combination = int(num_splits_per_combination)
        self.mutual_pass = bool(mutual_pass)
        self.sym = bool(sym)
        self.per_rank_seed = bool(per_rank_seed)
        self.num_devices = int(num_devices)
        self.shuffle_bn = bool(shuffle_bn)
        self.simulate_n_devices = int(simulate_n_devices)
        if self.shuffle_bn:
            convert_to_split_batchnorm(self.momentum_trunk, 1)
            if self.momentum_projector is not None:
                convert_to_split_batchnorm(self.momentum_projector, 1)
            self._set_devices(self.num_devices if self.num_devices > 0 else 1)

        # Schedules (spec 1.8, 2.3): constructor values are the "final"/initial ones.
        self.initial_coeff = float(coeff)
        self.final_scheduler_coeff = float(final_scheduler_coeff)
        self.scheduler_coeff = scheduler_coeff
        self.start_warmup_coeff = float(start_warmup_coeff)
        self.warmup_epoch_coeff = int(warmup_epoch_coeff)
        self.warmup_scheduler_coeff = warmup_scheduler_coeff
        self.final_temp_m = float(temp_m)
        self.start_warmup_temp_m = float(start_warmup_temp_m)
        self.warmup_epoch_temp_m = int(warmup_epoch_temp_m)
        self.warmup_scheduler_temp_m = warmup_scheduler_temp_m
        self.temp = float(temp)
        self.initial_momentum = float(initial_momentum)
        self.scheduler_momentum = scheduler_momentum

        self.coeff = self.initial_coeff
        self.temp_m = self.final_temp_m
        self.momentum = self.initial_momentum
        # Set from the trainer in configure_optimizers (or by set_schedule_horizon).
        self.steps_per_epoch: int | None = None
        self.max_epochs: int | None = None
        self.total_steps: int | None = None
        self._pending_keys: list[Tensor] = []
        self._ema_pairs: tuple[list[Tensor], list[Tensor]] | None = None

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _check_args(
        trunk: Any, projector: Any, predictor: Any, g: int, local: int, num_splits: int,
        sched_m: str, m0: float, sched_c: str | None, warm_c: str | None, warm_t: str | None,
        warm_ep_c: int, warm_ep_t: int, shuffle_bn: bool, sim: int, num_devices: int,
    ) -> None:
        if not isinstance(trunk, nn.Module):
            raise _err(f"trunk must be an nn.Module (a trunks component), got {type(trunk).__name__}")
        if predictor is not None and projector is None:
            raise _err("a predictor needs a projector; set projector or remove predictor")
        if g < 1 or local < 0:
            raise _err(f"need num_global_crops >= 1 and num_local_crops >= 0, got {g} and {local}")
        if g + local < 2:
            raise _err("SCE needs at least two views; set num_global_crops: 2")
        if num_splits != 0:
            raise _err("num_splits > 0 (spatial split mode, images only) is not implemented; set num_splits: 0")
        if sched_m not in _MOMENTUM_KINDS:
            raise _err(f"scheduler_momentum must be one of {_MOMENTUM_KINDS}, got {sched_m!r}")
        if not 0.0 <= m0 <= 1.0:
            raise _err(f"initial_momentum must be in [0, 1], got {m0}")
        for name, kind in (("scheduler_coeff", sched_c), ("warmup_scheduler_coeff", warm_c),
                           ("warmup_scheduler_temp_m", warm_t)):
            if kind is not None and kind not in _VALUE_KINDS:
                raise _err(f"{name} must be 'linear', 'cosine' or null, got {kind!r}")
        if warm_ep_c < 0 or warm_ep_t < 0:
            raise _err("warmup_epoch_coeff and warmup_epoch_temp_m must be >= 0")
        if shuffle_bn and sim < 1:
            raise _err(f"simulate_n_devices must be >= 1, got {sim}")
        if num_devices == 0 or num_devices < -1:
            raise _err(f"num_devices must be -1 (from the trainer) or positive, got {num_devices}")

    @staticmethod
    def _make_queue(cfg: Mapping[str, int] | None) -> FeatureQueue | None:
        if cfg is None:
            return None
        if not isinstance(cfg, Mapping) or set(cfg) != {"size", "feature_dim"}:
            raise _err("queue must be null or a mapping {size: K, feature_dim: D}")
        return FeatureQueue(size=int(cfg["size"]), feature_dim=int(cfg["feature_dim"]))

    def _set_devices(self, world_size: int) -> None:
        """Effective device count; simulated devices for shuffle-BN on a single process."""
        self.num_devices = int(world_size)
        if self.shuffle_bn:
            n = self.simulate_n_devices if world_size <= 1 else 1
            set_num_simulated_devices(self.momentum_trunk, n)
            if self.momentum_projector is not None:
                set_num_simulated_devices(self.momentum_projector, n)

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
        if self.predictor is not None:
            q = self.predictor(z)
            if self.normalize_outputs:
                z, q = F.normalize(z, dim=1), F.normalize(q, dim=1)
        else:
            if self.normalize_outputs:
                z = F.normalize(z, dim=1)
            q = z
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
        out = self._heads(torch.cat(hs))
        sizes = [v.shape[0] for v in views]
        parts = {k: torch.split(v, sizes) for k, v in out.items()}
        return [{k: parts[k][i] for k in out} for i in range(len(views))]

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
        out = self.momentum_shared_step(torch.cat(list(views)))
        sizes = [v.shape[0] for v in views]
        parts = {k: torch.split(v, sizes) for k, v in out.items()}
        return [{k: parts[k][i] for k in out} for i in range(len(views))]

    # ------------------------------------------------------------------ schedules (spec 1.8)
    def set_schedule_horizon(
        self, steps_per_epoch: int, max_epochs: int, total_steps: int | None = None
    ) -> None:
        """Set ``S`` (optimizer steps per epoch), ``E`` and the run's total optimizer steps."""
        if steps_per_epoch <= 0 or max_epochs <= 0:
            raise _err(f"steps per epoch and max_epochs must be positive, got {steps_per_epoch}, {max_epochs}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.max_epochs = int(max_epochs)
        self.total_steps = int(total_steps) if total_steps is not None else self.steps_per_epoch * self.max_epochs

    def schedule_values(self, step: int, epoch: int) -> dict[str, float]:
        """``coeff``, ``temp_m`` and ``momentum`` for the batch starting at optimizer step ``step``."""
        s_ep, e_max = self.steps_per_epoch, self.max_epochs
        if s_ep is None or e_max is None:
            raise _err("schedule horizon unknown; fit with a Trainer or call set_schedule_horizon")
        temp_m = self.final_temp_m
        wt = self.warmup_epoch_temp_m
        if wt > 0 and epoch < wt:
            temp_m = scheduler_value(self.warmup_scheduler_temp_m, self.start_warmup_temp_m,
                                     self.final_temp_m, step, wt * s_ep - 1)
        coeff = self.initial_coeff
        wc = self.warmup_epoch_coeff
        if wc > 0 and epoch < wc:
            coeff = scheduler_value(self.warmup_scheduler_coeff, self.start_warmup_coeff,
                                    self.initial_coeff, step, wc * s_ep - 1)
        if self.scheduler_coeff is not None:
            if wc > 0 and epoch >= wc:
                coeff = scheduler_value(self.scheduler_coeff, self.initial_coeff, self.final_scheduler_coeff,
                                        step - wc * s_ep, (e_max - wc) * s_ep - 1)
            elif wc == 0:
                coeff = scheduler_value(self.scheduler_coeff, self.initial_coeff,
                                        self.final_scheduler_coeff, step, e_max * s_ep - 1)
        if self.scheduler_momentum == "cosine_epoch":
            momentum = momentum_value("cosine_epoch", self.initial_momentum, epoch, e_max - 1)
        else:
            momentum = momentum_value(self.scheduler_momentum, self.initial_momentum, step,
                                      self.total_steps - 1)
        return {"coeff": float(coeff), "temp_m": float(temp_m), "momentum": float(momentum)}

    def _horizon_from_trainer(self) -> None:
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        batches = trainer.num_training_batches
        accumulate = max(int(trainer.accumulate_grad_batches), 1)
        if math.isinf(batches):
            if math.isinf(total):
                raise _err("cannot size the schedules: set trainer.max_steps or give the train loader a length")
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
            raise _err("no optimizer configured; set model.optimizer (e.g. optimizer_factory)")
        self._horizon_from_trainer()
        return self.optimizer_factory(
            model=self,
            num_steps_per_epoch=self.steps_per_epoch,
            global_batch_size=self._global_batch_size(),
        )

    def on_fit_start(self) -> None:
        """Use the trainer's world size; offset the device RNG by rank (per_rank_seed)."""
        world = int(self.trainer.world_size)
        self._set_devices(world)
        if self.per_rank_seed and world > 1:
            seed = (self.rank_base_seed() + int(self.global_rank)) % (2**63)
            if self.device.type == "cuda":
                torch.cuda.manual_seed(seed)
            else:
                torch.manual_seed(seed)

    @staticmethod
    def rank_base_seed() -> int:
        """Seed that ``per_rank_seed`` offsets: ``PL_GLOBAL_SEED`` if set, else torch's."""
        env = os.environ.get("PL_GLOBAL_SEED")
        return int(env) if env not in (None, "") else int(torch.initial_seed())

    def on_train_start(self) -> None:
        """Collect the EMA parameter pairs once the strategy has wrapped the model."""
        self._ema_pairs = None
        self._pending_keys = []

    def _pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        if self._ema_pairs is None:
            targets: list[Tensor] = []
            onlines: list[Tensor] = []
            pairs = [(self.momentum_trunk, self.trunk)]
            if self.projector is not None:
                pairs.append((self.momentum_projector, self.projector))
            for target, online in pairs:
                t_named = list(target.named_parameters())
                o_named = list(online.named_parameters())
                if [n for n, _ in t_named] != [n for n, _ in o_named]:
                    raise _err("target and online branches have different parameters")
                targets += [p for _, p in t_named]
                onlines += [p for _, p in o_named]
            self._ema_pairs = (targets, onlines)
        return self._ema_pairs

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply the GPU batch transform of the current stage to ``batch["input"]``."""
        return transform_batch(self, batch, self.train_transform, self.val_transform,
                               self.test_transform)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Evaluate coeff / temp_m / momentum for this batch (spec 1.8, 2.3)."""
        values = self.schedule_values(int(self.trainer.global_step), int(self.trainer.current_epoch))
        self.coeff, self.temp_m, self.momentum = values["coeff"], values["temp_m"], values["momentum"]
        self._sync_loss_schedule()

    def _sync_loss_schedule(self) -> None:
        """Give the loss the scheduled ``coeff`` and ``temp_m`` (when it has them)."""
        for name in ("coeff", "temp_m"):
            if hasattr(self.loss_fn, name):
                setattr(self.loss_fn, name, getattr(self, name))

    def compute_loss(self, q: Tensor, k: Tensor, k_global: Tensor, queue: Tensor | None) -> Tensor:
        """SCE loss of predictions ``q`` against keys ``k`` (float32 inside the loss)."""
        return self.loss_fn(q, k, queue=queue, k_global=k_global)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        """Target and online passes, paired SCE losses (spec 1.9); keys kept for the queue."""
        views = _as_views(batch["input"] if isinstance(batch, Mapping) else batch)
        if len(views) != self.num_crops:
            raise _err(
                f"the batch has {len(views)} views but num_global_crops + num_local_crops = "
                f"{self.num_crops}; make the datamodule produce that many clips"
            )
        queue = self.queue.queue.detach() if self.queue is not None else None
        g = self.num_global_crops
        if self.sym:
            targets = self.multi_crop_momentum_shared_step(views[:g])
            online = self.multi_crop_shared_step(views)
            k_global = [concat_all_gather_without_backprop(t["z"]) for t in targets]
            total = views[0].new_zeros((), dtype=torch.float32)
            for i in range(g):
                for j in range(self.num_crops):
                    if j != i:
                        total = total + self.compute_loss(online[j]["q"], targets[i]["z"], k_global[i], queue)
            total = total / ((self.num_crops - 1) * g)
            first = online[0]
            keys = torch.cat(k_global) if g > 1 else k_global[0]
        else:
            target = self.momentum_shared_step(views[0])
            online = self.multi_crop_shared_step(views[1:])
            k_global0 = concat_all_gather_without_backprop(target["z"])
            total = views[0].new_zeros((), dtype=torch.float32)
            for out in online:
                total = total + self.compute_loss(out["q"], target["z"], k_global0, queue)
            total = total / (self.num_crops - 1)
            first = online[0]
            keys = k_global0
        if self.queue is not None:
            self._pending_keys.append(keys.detach())
        self._log_step(total, views[0].shape[0])
        return {"loss": total, **{k: v.detach() for k, v in first.items()}}

    def _log_step(self, loss: Tensor, batch_size: int) -> None:
        self.log("pretrain/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch_size)
        self.log_dict(
            {"pretrain/temp": self.temp, "pretrain/temp_m": self.temp_m, "pretrain/coeff": self.coeff},
            on_step=True, on_epoch=True, batch_size=batch_size,
        )
        self.log("pretrain/momentum_value", self.momentum, on_step=True, on_epoch=False, batch_size=batch_size)
        if self._trainer is not None and self.trainer.optimizers:
            lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
            self.log("pretrain/lr", lr, on_step=True, on_epoch=False, batch_size=batch_size)

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
        targets, onlines = self._pairs()
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
        out = self.shared_step(x)
        return {k: v.detach() for k, v in out.items()}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the current schedule values (queue and target are in the state dict)."""
        checkpoint["sce_schedule"] = {
            "coeff": self.coeff, "temp_m": self.temp_m, "momentum": self.momentum,
            "steps_per_epoch": self.steps_per_epoch, "max_epochs": self.max_epochs,
            "total_steps": self.total_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the schedule values saved by ``on_save_checkpoint``."""
        state = checkpoint.get("sce_schedule")
        if not state:
            return
        self.coeff, self.temp_m, self.momentum = state["coeff"], state["temp_m"], state["momentum"]
        self._sync_loss_schedule()
        if state.get("steps_per_epoch") and state.get("max_epochs"):
            self.set_schedule_horizon(state["steps_per_epoch"], state["max_epochs"], state.get("total_steps"))
