"""Small in-process components for core tests (registered with ``sce_core.testing``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Literal

from sce_core.slots import Component, ComponentList, Factory
from sce_core.testing import isolated_registries, tmp_component


class ToyTrunk:
    """A toy trunk.

    Args:
        depth: number of layers.
        width: features per layer.
        norm: normalisation kind.
    """

    def __init__(self, depth: int = 18, width: int = 8, norm: Literal["bn", "ln"] = "bn") -> None:
        self.depth, self.width, self.norm = depth, width, norm


class ToyHead:
    """A toy head."""

    def __init__(self, input_dim: int, output_dim: int = 4, hidden_dims: Sequence[int] = ()) -> None:
        self.input_dim, self.output_dim, self.hidden_dims = input_dim, output_dim, list(hidden_dims)


def toy_opt(params: list, lr: float = 0.1, momentum: float = 0.9) -> dict:
    """A toy optimizer factory."""
    return {"params": params, "lr": lr, "momentum": momentum}


class ToyModel:
    """A toy model holding a trunk, a head, an optimizer factory and transforms."""

    def __init__(
        self,
        trunk: Component("trunks"),
        head: Component("heads"),
        optimizer: Factory("optimizers") = None,
        transforms: ComponentList("transforms") = (),
        temp: float = 0.1,
        queue: dict | None = None,
    ) -> None:
        self.trunk, self.head, self.optimizer = trunk, head, optimizer
        self.transforms, self.temp, self.queue = list(transforms), temp, queue


class ToyScale:
    """Multiply by a factor."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor


class ToyData:
    """A toy datamodule with a decoder given as name + args (the seed's form)."""

    def __init__(self, datadir: str, decoder: Component("decoders", args_param="decoder_args") = "toy_dec",
                 decoder_args: dict | None = None, train: dict | None = None) -> None:
        self.datadir, self.decoder, self.train = datadir, decoder, train


class ToyDecoder:
    """A toy decoder."""

    def __init__(self, fps: int = 30, num_threads: int = 1) -> None:
        self.fps, self.num_threads = fps, num_threads


class ToySampler:
    """A toy sampler."""

    def __init__(self, num_clips: int = 2) -> None:
        self.num_clips = num_clips


TOYS = {
    ("trunks", "toy_trunk"): ToyTrunk,
    ("heads", "toy_head"): ToyHead,
    ("optimizers", "toy_opt"): toy_opt,
    ("models", "toy_model"): ToyModel,
    ("transforms", "toy_scale"): ToyScale,
    ("datamodules", "toy_data"): ToyData,
    ("decoders", "toy_dec"): ToyDecoder,
    ("clip_samplers", "toy_sampler"): ToySampler,
}


@contextlib.contextmanager
def toys() -> Iterator[None]:
    """Every toy registered inside an isolated registry."""
    with isolated_registries(), contextlib.ExitStack() as stack:
        for (kind, name), obj in TOYS.items():
            stack.enter_context(tmp_component(kind, name, obj))
        yield
