"""Every run's plots: ``<run>/plots/*.png`` written when training ends, without `sce plot`."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer


class RunPlots(Callback):
    """Draws the run's logged curves (``sce plot``) into ``<run>/plots/`` at the end of fit.

    Added to every run by the built-ins' ``sce_callbacks`` hook, after the config's callbacks,
    so end-of-fit reports (``knn_report``) are in the plots. The run's own earlier plots are
    replaced (a resumed run redraws them). A plot that cannot be drawn is reported, never fatal.
    """

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Flush the loggers, draw, and print where the pictures are (rank 0)."""
        if not trainer.is_global_zero or trainer.interrupted:
            return
        from sce_builtins.tools.plots import plot_run

        for logger in trainer.loggers:
            logger.save()
        run_dir = Path(trainer.default_root_dir)
        try:
            written = plot_run(run_dir, force=True)
        except Exception as exc:  # noqa: BLE001 - pictures never fail a finished run
            print(f"sce: plots not written: {exc}")
            return
        drawn = [p.name for p in written]  # then pictures other callbacks drew (knn_report's embedding)
        drawn += sorted(p.name for p in (run_dir / "plots").glob("*.png") if p.name not in drawn)
        if drawn:
            print(f"sce: plots {run_dir / 'plots'}/ ({', '.join(drawn)})", flush=True)
