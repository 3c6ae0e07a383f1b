"""Stopping a run on a signal (SLURM preemption, ``scancel``, ``kill``) without losing work.

The first SIGTERM only sets a flag. Before training starts there is nothing to save, so the
run stops at once (:class:`~sce_core.errors.RunInterrupted`). Once training runs, every rank
checks the flag after each optimizer step in one collective over a host (gloo) group, so the
GPU is not synchronised (the flag of any rank stops all of them), the run checkpoint is written, and all ranks leave together. A second signal, more
than a second after the first (launchers may deliver one signal twice), ends the process at
once; the checkpoint on disk is then the previous complete one (writes are atomic).

Lightning's own SIGTERM handling is replaced: it runs a collective inside the signal handler,
which can pair with another rank's gradient all-reduce and hang a DDP job.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from sce_core.errors import RunInterrupted

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM,)
REPEAT_WINDOW_S = 1.0


def exit_code_for(signum: int) -> int:
    """128 + the signal number: what a shell reports for a process ended by that signal."""
    return 128 + int(signum)


class StopRequest:
    """The process-wide stop flag set by a signal handler.

    ``immediate``: raise from the handler (nothing to save yet) instead of setting the flag.
    ``confirmed``: set once the stop checkpoint is written; Lightning then ends the fit loop.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.received_at = 0.0
        self.immediate = True
        self.confirmed = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.signum or signal.SIGTERM)

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        """Signal handler: first signal -> flag (or raise before training); second -> exit."""
        now = time.monotonic()
        if self.signum is not None:
            if now - self.received_at < REPEAT_WINDOW_S:
                return
            print(f"sce: second {signal.Signals(signum).name}: stopping now", file=sys.stderr, flush=True)
            os._exit(exit_code_for(signum))
        self.signum, self.received_at = signum, now
        name = signal.Signals(signum).name
        if self.immediate:
            raise RunInterrupted(f"stopped by {name} before training started; nothing to save",
                                 exit_code_for(signum))
        print(f"sce: {name} received: saving a checkpoint after the current step, then stopping "
              f"(a second signal stops at once)", file=sys.stderr, flush=True)

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle the stop signals inside the block, restoring the previous handlers after it."""
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self.handle)
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous = {}


def replace_lightning_signals(trainer: Any, stop: StopRequest) -> None:
    """Lightning's signal handling off: no handler of its own, no per-step broadcast.

    Lightning broadcasts rank 0's SIGTERM flag through the training process group before every
    step (a host-device round trip on GPUs); the run's checkpoint callback already agrees on
    the flag over a host group, and every rank ends the fit at the same step.
    """
    trainer._signal_connector = LightningSignals(stop)
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    if loop is not None and hasattr(loop, "_broadcast_sigterm_tensor"):
        loop._broadcast_sigterm_tensor = _no_broadcast


def _no_broadcast() -> None:
    """Stands in for Lightning's per-step SIGTERM broadcast (see :func:`replace_lightning_signals`)."""


class LightningSignals:
    """Stands in for ``Trainer._signal_connector``: installs no handler of Lightning's.

    Lightning reads ``received_sigterm`` after each step and epoch and ends the fit with a
    ``SIGTERMException`` when it is true; it becomes true once the stop checkpoint is saved.
    """

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop

    @property
    def received_sigterm(self) -> bool:
        return self.stop.confirmed

    @received_sigterm.setter
    def received_sigterm(self, value: bool) -> None:  # Lightning resets it at start-up
        pass

    def register_signal_handlers(self) -> None:
        """Nothing: :meth:`StopRequest.installed` handles the signals for the whole run."""

    def teardown(self) -> None:
        """Nothing to restore."""
