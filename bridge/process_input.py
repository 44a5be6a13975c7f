"""Where the live runner's trains come from: bridge endpoints, one or several (matched).

Any iterable of ``(data, metadata)`` is a source for :class:`bridge.process.LiveRunner`;
:func:`client_trains` makes one from endpoints, yielding None while idle so that a stop
request is noticed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["client_trains", "train_id_of", "TICK_S"]

TICK_S = 0.2  # how often an idle source yields None (and the runner checks its workers)


def client_trains(endpoints: Sequence[str], sock: str = "REQ", timeout: float | None = None,
                  *, match_timeout: float | None = None,
                  **match: Any) -> Iterator[tuple[dict, dict] | None]:
    """Trains from bridge endpoints as ``(data, metadata)``; None while none arrives.

    One endpoint is read with a :class:`bridge.Client`; several are joined by train ID
    with a :class:`bridge.match.TrainMatcher` (``match``: its ``require``, ``optional``...
    options; ``match_timeout``: its ``timeout``, how long a train waits for missing
    sources). The Nones (every 0.2 s without a train) let :class:`LiveRunner` notice a
    stop request. ``timeout``: end when nothing arrived for this many seconds (default:
    wait forever).
    """
    if not endpoints:
        raise ValueError("No endpoint given")
    if match_timeout is not None:
        match["timeout"] = match_timeout
    if len(endpoints) == 1 and not match:
        from bridge.client import Client

        return _trains(lambda: Client(endpoints[0], sock=sock, timeout=TICK_S),
                       lambda client: client.next(), timeout)
    from bridge.match import TrainMatcher

    return _trains(lambda: TrainMatcher(list(endpoints), sock=sock, **match),
                   lambda matcher: matcher.next(timeout=TICK_S), timeout)


def _trains(make, take, timeout: float | None):
    from bridge.client import BridgeTimeout

    with make() as receiver:
        last = time.monotonic()
        while True:
            try:
                yield take(receiver)
            except BridgeTimeout:
                if timeout is not None and time.monotonic() - last > timeout:
                    return
                yield None
                continue
            last = time.monotonic()


def train_id_of(data: dict, metadata: dict) -> int:
    """The train ID of a ``(data, metadata)`` pair (``timestamp.tid``)."""
    for meta in (metadata or {}).values():
        if "timestamp.tid" in meta:
            return int(meta["timestamp.tid"])
    for props in data.values():
        meta = props.get("metadata", {}) if isinstance(props, Mapping) else {}
        if "timestamp.tid" in meta:
            return int(meta["timestamp.tid"])
    raise ValueError(f"A train without a train ID (timestamp.tid) in sources {sorted(data)}")
