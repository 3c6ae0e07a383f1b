"""Annotations that tell the builder and the validator which kind a parameter holds.

A component declares a nested component parameter with :func:`Component` (built before the
constructor runs), :func:`ComponentList` (a list of them) or :func:`Factory` (a callable that
builds the node later with runtime arguments, e.g. an optimizer that needs parameters)::

    from sce_core.slots import Component, Factory

    class SCEModel(LightningModule):
        def __init__(self, trunk: Component("trunks"), optimizer: Factory("optimizers")): ...

A subclass that adds parameters to a component class declares only its own and passes the
rest on with ``**kwargs: BaseArgs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

__all__ = ["BaseArgs", "Component", "ComponentList", "Factory"]  # docs/api.md


@dataclass(frozen=True)
class Slot:
    """Marker stored in ``Annotated`` metadata: the slot's kind and how it is built."""

    kind: str
    many: bool = False
    lazy: bool = False
    args_param: str | None = None


def Component(kind: str, *, args_param: str | None = None) -> Any:  # noqa: N802
    """A parameter holding one component of ``kind``, built before the owner.

    ``args_param`` names a sibling parameter that holds the component's arguments when the
    config gives the name as a bare string (the seed's ``decoder: frame`` + ``decoder_args``).
    """
    return Annotated[Any, Slot(kind, args_param=args_param)]


def ComponentList(kind: str) -> Any:  # noqa: N802
    """A parameter holding a list of components of ``kind``, each built before the owner."""
    return Annotated[list, Slot(kind, many=True)]


def Factory(kind: str, *, args_param: str | None = None) -> Any:  # noqa: N802
    """A parameter receiving a :class:`sce_core.building.NodeFactory`: call it with runtime kwargs.

    ``args_param`` as for :func:`Component` (the optimizer factory's ``name`` + ``params``).
    """
    return Annotated[Any, Slot(kind, lazy=True, args_param=args_param)]


@dataclass(frozen=True)
class _ForwardedToBase:
    """Marker of ``**kwargs`` that a class passes on to its base class' ``__init__``."""


BaseArgs = Annotated[Any, _ForwardedToBase()]
"""Annotation of a ``**kwargs`` that a component class passes to its base class' ``__init__``:
the base's parameters become the component's own for validation, building and ``sce info``
(documented in the base's docstring)::

    class HMDB51(VideoDataModule):
        def __init__(self, split_id: int = 1, **kwargs: BaseArgs) -> None:
            super().__init__(**kwargs)
"""


def forwards_to_base(annotation: Any) -> bool:
    """Whether an annotation is :data:`BaseArgs`."""
    return any(isinstance(m, _ForwardedToBase) for m in getattr(annotation, "__metadata__", ()))


def slot_of(annotation: Any) -> Slot | None:
    """Return the :class:`Slot` carried by an annotation, if any."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Slot):
            return meta
    return None
