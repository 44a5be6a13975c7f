"""The serving loop shared by ``serve_simulation`` and ``serve_run``: feed trains at a pace.

Feeds ``(train_id, data, metadata)`` items to a new :class:`bridge.Server`, paced to a rate,
stoppable from another thread, and at the end waits until clients took the queued trains.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

from bridge.server import Server

__all__ = ["finish", "paced", "serve_trains"]


def paced(trains, rate: float | None) -> Iterator:
    """Yield items of ``trains`` at most ``rate`` per second (``None``: as fast as possible).

    When the consumer falls behind, the schedule restarts instead of bursting to catch up.
    """
    if not rate:
        yield from trains
        return
    period = 1.0 / rate
    items = iter(trains)
    next_t = time.monotonic()
    while True:
        # Wait *before* taking the next item so that its timestamp is fresh.
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
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
                 drain_timeout: float | None = None, stop: threading.Event | None = None,
                 on_ready: Callable[[Server], None] | None = None,
                 on_train: Callable[[int], None] | None = None) -> int:
    """Feed ``(train_id, data, metadata)`` items to a new :class:`bridge.Server` at ``rate``.

    What :func:`bridge.simulation.serve_simulation` and :func:`bridge.serve_run.serve_run`
    share; see them for the parameters. Returns the number of trains fed.
    """
    fed = 0
    with Server(endpoint, sock=sock, policy=policy, timestamps=timestamps) as server:
        if on_ready is not None:
            on_ready(server)
        for train_id, data, metadata in paced(trains, rate):
            if not _feed_until_stopped(server, data, metadata, stop, train_id):
                return fed
            fed += 1
            if on_train is not None:
                on_train(train_id)
        finish(server, drain_timeout)
    return fed


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
            server.feed(data, metadata, timeout=0.2, train_id=train_id)
            return True
        except TimeoutError:
            continue
    return False


# How long a finished server keeps its socket open for the last trains to leave.
_FLUSH_LINGER_S = 10.0


def finish(server: Server, timeout: float | None = None) -> bool:
    """Wait until clients took every queued train, then stop once those have left.

    Returns False if ``timeout`` expired first (the server is stopped anyway).
    """
    drained = server.drain(timeout)
    server.stop(linger=_FLUSH_LINGER_S if drained else 0.0)
    return drained
