"""Stop signals: SIGTERM (a preempted or cancelled job) and SIGINT (Ctrl+C) end ``fit`` cleanly.

Lightning's signal connector turns SIGTERM into a stop at the next step boundary: it raises
``SIGTERMException`` there, and :class:`~depthlab.checkpointing.LastCheckpoint` writes ``last.ckpt`` on
it. This module adds what Lightning leaves out:

- SIGINT takes the same path (:class:`GracefulStop`). Lightning's default turns it into a
  ``KeyboardInterrupt`` wherever the main thread is, possibly half-way through an optimizer step, so
  the state of that moment is not worth saving. A second Ctrl+C still aborts at once.
- The exit status says which signal stopped the run (:func:`exit_status`: 128 + signal number, as a
  shell reports it), so a scheduler sees an unfinished run; ``SIGTERMException`` itself exits with 0.
- DataLoader workers ignore both signals and are shut down by the main process
  (:mod:`depthlab.data.workers`).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

# The first stop signal of this process (signals are per process, so is this record).
_received: int | None = None


def received_signal() -> int | None:
    """The stop signal :class:`GracefulStop` passed on in this process, if any."""
    return _received


def exit_status() -> int:
    """The exit status of a run stopped by a signal: 128 + its number (130 Ctrl+C, 143 SIGTERM)."""
    return 128 + int(_received or signal.SIGTERM)


class _NameTheSignal(logging.Filter):
    """Lightning's signal connector logs every stop it is handed as ``Received SIGTERM: <number>``;
    for the SIGINT that :class:`GracefulStop` hands it, the line names SIGINT."""

    _pattern = re.compile(r"Received SIGTERM: (\d+)")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            def name(match: re.Match) -> str:
                number = int(match.group(1))
                try:
                    return f"Received {signal.Signals(number).name}: {number}"
                except ValueError:
                    return match.group(0)

            record.msg = self._pattern.sub(name, record.msg)
        return True


def _name_the_signal() -> None:
    connector_log = logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector")
    if not any(isinstance(f, _NameTheSignal) for f in connector_log.filters):
        connector_log.addFilter(_NameTheSignal())


class GracefulStop(L.Callback):
    """During training, SIGINT stops like SIGTERM: at the end of the current step, ``last.ckpt`` written.

    The handler hands the signal to the SIGTERM handler installed at that moment (Lightning's signal
    connector, which also tells the other DDP processes), so there is one stop path. Installed at
    ``on_train_start`` (after Lightning's own handlers, which SLURM's requeue signal keeps using) and
    removed when training ends.
    """

    def __init__(self) -> None:
        self._previous: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        global _received
        _received = None
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = signal.signal(signal.SIGINT, self._stop)
            _name_the_signal()

    def _stop(self, signum: int, frame: Any) -> None:
        global _received
        if _received is not None:  # asked twice: abort now, as Ctrl+C does by default
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        _received = signum
        rank_zero_info(f"depthlab: {signal.Signals(signum).name}: stopping after the current step "
                       "and saving last.ckpt (again to abort without saving)")
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            handler(signum, frame)
        else:  # no stop path installed (not inside Trainer.fit): behave like the default
            raise KeyboardInterrupt

    def _restore(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) == self._stop:
                signal.signal(signal.SIGINT, self._previous)
        self._previous = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
