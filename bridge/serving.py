"""The serving loop shared by ``serve_simulation`` and ``serve_run``: feed trains at a pace.

Feeds ``(train_id, data, metadata)`` items to a new :class:`bridge.Server`, paced to a rate,
stoppable from another thread or by a signal, and at the end waits until clients took the
queued trains.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from bridge.curve import KeySource
from bridge.server import Server
from exfel_data.signals import stop_on_signals  # SIGINT/SIGTERM -> the stop event

__all__ = ["finish", "paced", "serve_trains", "stop_on_signals"]

# How long a finished server keeps its socket open for the last trains to leave.
_FLUSH_LINGER_S = 10.0
# How often waits look at the stop event: the bound on how late a stop is noticed.
_POLL_S = 0.2


def paced(trains: Iterable, rate: float | None,
          stop: threading.Event | None = None) -> Iterator:
    """Yield items of ``trains`` at most ``rate`` per second (``None``: as fast as possible).

    When the consumer falls behind, the schedule restarts instead of bursting to catch up.
    Setting ``stop`` ends the iteration, also during a wait between items.
    """
    items = iter(trains)
    period = 1.0 / rate if rate else 0.0
    next_t = time.monotonic()
    while stop is None or not stop.is_set():
        if period:
            # Wait *before* taking the next item so that its timestamp is fresh.
            delay = next_t - time.monotonic()
            if delay > 0:
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    return
                next_t += period
            else:
                next_t = time.monotonic() + period
        try:
            item = next(items)
        except StopIteration:
            return
        yield item


def serve_trains(endpoint: str, trains: Iterable[tuple[int, dict, dict | None]], *,
                 sock: str, policy: str, timestamps: bool = True, rate: float | None = None,
                 until_sent: int | None = None, drain_timeout: float | None = None,
                 stop: threading.Event | None = None,
                 curve_secret_key: KeySource | None = None,
                 curve_allow: str | os.PathLike | None = None,
                 on_ready: Callable[[Server], None] | None = None,
                 on_train: Callable[[int], None] | None = None) -> int:
    """Feed ``(train_id, data, metadata)`` items to a new :class:`bridge.Server` at ``rate``.

    What :func:`bridge.simulation.serve_simulation` and :func:`bridge.serve_run.serve_run`
    share; see them for the parameters. ``until_sent``: stop feeding once clients took this
    many trains (trains dropped under ``drop`` / ``queue`` do not count, so more are fed).
    Without it every item is fed. Returns the number of trains sent to clients.
    """
    with Server(endpoint, sock=sock, policy=policy, timestamps=timestamps,
                curve_secret_key=curve_secret_key, curve_allow=curve_allow) as server:
        if on_ready is not None:
            on_ready(server)
        for train_id, data, metadata in paced(trains, rate, stop):
            if until_sent is not None and _sent_enough(server, until_sent, stop):
                break
            if not _feed_until_stopped(server, data, metadata, stop, train_id):
                break
            if on_train is not None:
                on_train(train_id)
        else:
            if until_sent is not None:
                _sent_enough(server, until_sent, stop)
        if stop is None or not stop.is_set():
            finish(server, drain_timeout, stop)
        return server.stats["sent"]


def _sent_enough(server: Server, target: int, stop: threading.Event | None) -> bool:
    """Whether ``target`` trains were sent, waiting while those queued may still make it.

    False: feed more (trains were dropped, or too few fed).
    """
    while stop is None or not stop.is_set():
        stats = server.stats
        if stats["sent"] >= target:
            return True
        if stats["sent"] + stats["queued"] < target:
            return False
        server.drain(_POLL_S)
    return True


def _feed_until_stopped(server: Server, data: dict, metadata: dict | None,
                        stop: threading.Event | None, train_id: int) -> bool:
    """``server.feed(...)``, but give up when ``stop`` is set (checked every 0.2 s).

    Returns True if the train was fed.
    """
    if stop is None:
        server.feed(data, metadata, train_id=train_id)
        return True
    while not stop.is_set():
        try:
            server.feed(data, metadata, timeout=_POLL_S, train_id=train_id)
            return True
        except TimeoutError:
            continue
    return False


def finish(server: Server, timeout: float | None = None,
           stop: threading.Event | None = None) -> bool:
    """Wait until clients took every queued train, then stop once those have left.

    Returns False if ``timeout`` expired or ``stop`` was set first (the server is stopped
    anyway, at once).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    drained = False
    while stop is None or not stop.is_set():
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if stop is None:
            wait = remaining
        else:
            wait = _POLL_S if remaining is None else min(_POLL_S, remaining)
        drained = server.drain(wait)
        if drained or (remaining is not None and remaining <= wait):
            break
    if not drained or stop is None:
        server.stop(linger=_FLUSH_LINGER_S if drained else 0.0)
        return drained
    # The last trains leave while the socket lingers; in a helper thread, so that ``stop``
    # cuts that short (the helper is left blocked in ZeroMQ; the process may then exit).
    closer = threading.Thread(target=server.stop, kwargs={"linger": _FLUSH_LINGER_S},
                              name="bridge-server-flush", daemon=True)
    closer.start()
    while closer.is_alive():
        if stop.wait(0.05):
            return False
        closer.join(0.05)
    return True
