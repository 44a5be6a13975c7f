"""Stopping a conversion cleanly on Ctrl-C (SIGINT) or SIGTERM.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. During a
conversion that is often inside a callback run by the garbage collector (h5py and ``weakref``
run many), where the exception is printed as "Exception ignored" and lost: the conversion
went on to the end. So while a conversion runs, :func:`stop_on_signals` replaces the default
handlers of SIGINT and SIGTERM by one that only records the signal, and
:func:`check_interrupt` raises :class:`Interrupted` at safe points: between blocks (every
:meth:`Progress.update <exfel_data.write.base.Progress.update>`), while waiting for workers
and before the output is renamed into place. A second signal raises at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Signals received since the outermost :func:`stop_on_signals` started.
_received: list[int] = []
#: Set in local worker processes: their parent handles the signals and stops them.
_in_worker = False


class Interrupted(KeyboardInterrupt):
    """A conversion stopped by SIGINT (Ctrl-C) or SIGTERM; its partial output is removed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal (130 for SIGINT)."""
        return 128 + self.signum


def _record(signum: int, frame) -> None:
    _received.append(signum)
    if len(_received) > 1:  # asked twice: do not wait for the next safe point
        raise Interrupted(signum)


def check_interrupt() -> None:
    """Raise :class:`Interrupted` if a signal arrived (a safe point to stop at)."""
    if _received:
        raise Interrupted(_received[0])


def mark_worker() -> None:
    """In a local worker process: ignore SIGINT, die on SIGTERM (the parent stops it)."""
    global _in_worker
    _in_worker = True
    _received.clear()  # a signal caught between fork and here was the parent's
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: SIGINT and SIGTERM stop the work at the next :func:`check_interrupt`.

    Only default handlers are replaced (a handler the application set stays in charge), only
    in the main thread (Python delivers signals there), and not in local workers. A signal
    that arrived after the last safe point is raised again once the old handlers are back.
    """
    if threading.current_thread() is not threading.main_thread() or _in_worker:
        yield
        return
    previous = {}
    for sig in _SIGNALS:
        handler = signal.getsignal(sig)
        if handler in (signal.default_int_handler, signal.SIG_DFL):
            previous[sig] = handler
            signal.signal(sig, _record)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        pending = _received[:1] if previous else []
        if previous:
            _received.clear()
    if pending:
        signal.raise_signal(pending[0])
