"""Sample-dict wrappers (apply a clip transform to ``sample["input"]``) and ``compose``.

A dataset sample is a dict ``{"input": clip or [clips], "label": int, "idx": int, ...}``. The
only-input wrappers transform the input and return a NEW dict holding only the keys the
training loop uses (:data:`KEPT_KEYS`, plus ``extra_keys``); the sample passed in is not
modified.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sce_core.slots import Component, ComponentList

#: Keys kept by the only-input wrappers: the reference's input/label/idx/aug_index, the clip
#: index of multi-clip evaluation and the bad-data bookkeeping flag ``replaced``.
KEPT_KEYS: tuple[str, ...] = ("input", "label", "idx", "aug_index", "clip_index", "replaced")


def _check_callable(component: str, name: str, value: Any) -> Callable:
    if not callable(value):
        raise ValueError(
            f"{component}: {name} must be a transform (a callable or a config node), "
            f"got {type(value).__name__}."
        )
    return value


def _filter(sample: Mapping[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    return {k: sample[k] for k in keep if k in sample}


def _kept_keys(extra_keys: Sequence[str]) -> tuple[str, ...]:
    return KEPT_KEYS + tuple(k for k in extra_keys if k not in KEPT_KEYS)


class _Repr:
    """``Name(attr=value, ...)`` representation from the instance attributes."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _check_sample(component: str, sample: Any) -> None:
    if not isinstance(sample, Mapping) or "input" not in sample:
        raise ValueError(f"{component}: expected a sample dict with an 'input' key.")


class OnlyInputTransform(_Repr):
    """Apply a clip transform to ``sample["input"]`` (one clip), then keep only the known keys.

    Args:
        transform: the clip transform.
        extra_keys: keys to keep besides ``input, label, idx, aug_index, clip_index, replaced``.
    """

    component_name = "only_input_transform"

    def __init__(self, transform: Component("transforms"), extra_keys: Sequence[str] = ()) -> None:
        self.transform = _check_callable(self.component_name, "transform", transform)
        self.keep = _kept_keys(extra_keys)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Return the filtered sample with the transformed input."""
        _check_sample(self.component_name, sample)
        out = _filter(sample, self.keep)
        out["input"] = self._transform_input(sample["input"])
        return out

    def _transform_input(self, clip: Any) -> Any:
        return self.transform(clip)


class OnlyInputListTransform(OnlyInputTransform):
    """Apply a clip transform independently to every clip of ``sample["input"]`` (a list), so
    each view gets its own random draw, then keep only the known keys.

    Args:
        transform: the clip transform.
        extra_keys: keys to keep besides ``input, label, idx, aug_index, clip_index, replaced``.
    """

    component_name = "only_input_list_transform"

    def _transform_input(self, clips: Any) -> list[Any]:
        if not isinstance(clips, (list, tuple)):
            raise ValueError(
                "only_input_list_transform: sample['input'] must be a list of clips; "
                "use only_input_transform for a single clip."
            )
        return [self.transform(clip) for clip in clips]


class OnlyInputTransformWithDictTransform(_Repr):
    """Apply ``transform`` to ``sample["input"]``, then ``dict_transform`` to the whole sample
    (e.g. ``uniform_crop_video``, which needs ``aug_index``), then keep only the known keys.

    A list input gets ``transform`` applied to each clip.

    Args:
        transform: the clip transform.
        dict_transform: a transform of the whole sample dict.
        extra_keys: keys to keep besides ``input, label, idx, aug_index, clip_index, replaced``.
    """

    def __init__(
        self,
        transform: Component("transforms"),
        dict_transform: Component("transforms"),
        extra_keys: Sequence[str] = (),
    ) -> None:
        name = "only_input_transform_with_dict_transform"
        self.transform = _check_callable(name, "transform", transform)
        self.dict_transform = _check_callable(name, "dict_transform", dict_transform)
        self.keep = _kept_keys(extra_keys)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Return the filtered sample after both transforms."""
        _check_sample("only_input_transform_with_dict_transform", sample)
        out = dict(sample)
        clips = sample["input"]
        if isinstance(clips, (list, tuple)):
            out["input"] = [self.transform(clip) for clip in clips]
        else:
            out["input"] = self.transform(clips)
        return _filter(self.dict_transform(out), self.keep)


class Compose:
    """Apply transforms one after the other.

    Args:
        transforms: the transforms, in order.
    """

    def __init__(self, transforms: ComponentList("transforms")) -> None:
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise ValueError("compose: transforms must be a list of transforms.")
        self.transforms = [
            _check_callable("compose", f"transforms[{i}]", t) for i, t in enumerate(transforms)
        ]

    def __call__(self, x: Any) -> Any:
        """Return ``x`` passed through every transform."""
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
