"""Stopping long work cleanly on Ctrl-C (SIGINT) or SIGTERM: the one mechanism of the package.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. That is
often inside a callback run by the garbage collector (h5py and ``weakref`` run many), where the
exception is printed as "Exception ignored" and lost: the work goes on. So while
:func:`stop_on_signals` is active, SIGINT and SIGTERM only set a :class:`StopRequest` (a
``threading.Event``) and the work stops at its next safe point: a loop that watches the event
(the bridge's servers and live commands), or :func:`check_interrupt` between blocks (convert,
merge). Both signals behave the same; the first one stops cleanly, a second one raises
:class:`Interrupted` at once (a ``KeyboardInterrupt``: abort). When the block ends, the previous
handlers are back.

Signal handlers can only be set in the main thread (Python runs them there). Elsewhere
:func:`stop_on_signals` installs nothing (``StopRequest.installed`` is False): the request still
works when set by the program (``request.set()``), and Ctrl-C does what it did before.
``bridge`` builds on this module (``bridge.serving.stop_on_signals``); it imports nothing from
``bridge``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

__all__ = ["Interrupted", "StopRequest", "stop_on_signals", "check_interrupt", "mark_worker"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: The requests of the active stop_on_signals blocks, outermost first.
_active: list[StopRequest] = []
#: Set in local worker processes: their parent handles the signals and stops them.
_in_worker = False


class Interrupted(KeyboardInterrupt):
    """Work stopped by SIGINT (Ctrl-C) or SIGTERM.

    Parameters
    ----------
    signum : int
        The signal that stopped it.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal (130 for SIGINT)."""
        return 128 + self.signum


class StopRequest(threading.Event):
    """An event set by the first SIGINT/SIGTERM of a :func:`stop_on_signals` block.

    A ``threading.Event`` (the program may :meth:`set` it too) that also knows which signal
    set it. Made by :func:`stop_on_signals`.

    Parameters
    ----------
    on_stop : callable, optional
        Called with the signal number when a signal sets it.
    checkpoints : bool
        Whether :func:`check_interrupt` raises once a signal set it.

    Attributes
    ----------
    signum : int or None
        The signal that set it (None: not set by a signal).
    installed : bool
        Whether signal handlers were installed for it (False outside the main thread, in a
        local worker, or where the application's own handlers stay in charge).
    """

    def __init__(self, on_stop: Callable[[int], None] | None = None, checkpoints: bool = False):
        super().__init__()
        self.signum: int | None = None
        self.installed = False
        self.checkpoints = checkpoints
        self._on_stop = on_stop
        self._raised = False  # Interrupted was raised for it: the signal was acted on

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop was requested (a safe point to stop at)."""
        if self.is_set():
            self._raised = True
            raise Interrupted(self.signum or signal.SIGINT)

    def _signalled(self, signum: int) -> None:
        self.signum = signum
        self.set()
        if self._on_stop is not None:
            self._on_stop(signum)


def _handle(signum: int, frame) -> None:
    if any(request.signum is not None for request in _active):
        raise Interrupted(signum)  # asked twice: do not wait for the next safe point
    for request in list(_active):
        request._signalled(signum)


def check_interrupt() -> None:
    """Raise :class:`Interrupted` if a signal arrived in a ``checkpoints=True`` block.

    Call it between blocks of work. Blocks without checkpoints are not looked at: there the
    signal asked a loop watching the event to stop, and what it does next (e.g. write its
    results) must not be refused.
    """
    for request in _active:
        if request.checkpoints and request.signum is not None:
            request._raised = True
            raise Interrupted(request.signum)


def mark_worker() -> None:
    """Prepare a local worker process: the parent alone handles Ctrl-C and stops it.

    SIGINT is ignored, SIGTERM ends the worker, and :func:`stop_on_signals` installs nothing.
    """
    global _in_worker
    _in_worker = True
    _active.clear()  # the parent's requests, inherited by fork
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def stop_on_signals(signals: Iterable[int] = STOP_SIGNALS, *,
                    on_stop: Callable[[int], None] | None = None,
                    checkpoints: bool = False) -> Iterator[StopRequest]:
    """Turn SIGINT (Ctrl-C) and SIGTERM into a stop request within the block.

    The first signal sets the yielded :class:`StopRequest`, a second one raises
    :class:`Interrupted`; the previous handlers are restored after.

    Parameters
    ----------
    signals : iterable of int
        The signals to catch (default SIGINT and SIGTERM).
    on_stop : callable, optional
        Called with the signal number on the first signal, after the request is set (e.g. to
        tell a runner that does not watch the request to stop).
    checkpoints : bool
        False (default): the caller watches the request (a loop checking the event, or
        *on_stop*), and any handler in place is replaced for the block. True: how library
        work such as ``convert()`` stops: :func:`check_interrupt` raises at its next safe
        point; only Python's default handlers are replaced (an application's own handler
        stays in charge); and a signal that arrived after the last safe point is sent again
        once the previous handlers are back, so that it is not lost.

    Yields
    ------
    StopRequest
        Pass it as ``stop=`` to loops that watch an event; nested blocks get their own
        request, set by the same signals.
    """
    request = StopRequest(on_stop, checkpoints)
    if threading.current_thread() is not threading.main_thread() or _in_worker:
        yield request
        return
    previous = {}
    for sig in signals:
        handler = signal.getsignal(sig)
        if handler is _handle:  # an outer block's: it delivers to this request too
            request.installed = True
        elif not checkpoints or handler in (signal.default_int_handler, signal.SIG_DFL):
            previous[sig] = signal.signal(sig, _handle)
            request.installed = True
    _active.append(request)
    finished = False
    try:
        yield request
        finished = True
    finally:
        _active.remove(request)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if finished and checkpoints and previous and request.signum is not None \
            and not request._raised:
        signal.raise_signal(request.signum)
