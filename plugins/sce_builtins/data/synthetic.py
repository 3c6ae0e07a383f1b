"""The demo's datamodule: the moving-digits dataset, generated into its folder when absent."""

from __future__ import annotations

from sce_builtins.data.datamodule import VideoDataModule
from sce_builtins.data.options import SyntheticOptions
from sce_core.slots import BaseArgs, Component


class SyntheticVideoDataModule(VideoDataModule):
    """``video_folder`` over the synthetic moving-digits videos of ``sce data synth``.

    ``prepare_data`` creates the dataset in ``datadir`` (rank 0, once: a finished dataset has a
    marker file and is reused), so a fresh machine needs no download and no preparation step.
    It writes only into a new or empty folder, or one it created earlier (``.sce-synthetic``
    marker); any other non-empty ``datadir`` is refused with a one-line error and left untouched.

    Args:
        datadir: folder of the dataset (the demo uses a folder in sce-core's cache).
        synthetic: generation options of ``make_synthetic_dataset`` (num_classes,
            train_per_class, val_per_class, frames, size, fps, seed, formats, ...).
        decoder: video decoder (``frame`` for frame folders, ``pyav`` for the mp4 files).

    Every other argument is one of ``video_folder`` (``sce info video_folder``).
    """

    name = "synthetic_videos"

    def __init__(
        self,
        datadir: str,
        synthetic: SyntheticOptions | None = None,
        decoder: Component("decoders", args_param="decoder_args") = "frame",  # type: ignore[valid-type]
        **kwargs: BaseArgs,
    ) -> None:
        super().__init__(datadir, decoder=decoder, **kwargs)
        self.synthetic = dict(synthetic or {})

    def prepare_data(self) -> None:
        """Generate the dataset if ``datadir`` does not hold it yet, then check the layout."""
        from sce_builtins.tools.synth import make_synthetic_dataset

        make_synthetic_dataset(self.datadir, progress=True, **self.synthetic)
        super().prepare_data()
