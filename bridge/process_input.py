"""Where the live runner's trains come from: bridge endpoints, one or several (matched).

Any iterable of ``(data, metadata)`` is a source for :class:`bridge.process.LiveRunner`,
or of :class:`EncodedTrain` (a train as received, decoded by the worker that processes
it); :func:`client_trains` makes one from endpoints, yielding None while idle so that a
stop request is noticed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["client_trains", "EncodedTrain", "train_id_of", "TICK_S"]

TICK_S = 0.2  # how often an idle source yields None (and the runner checks its workers)


class EncodedTrain:
    """A train as a bridge client received it: its frames, not decoded yet.

    The live runner passes the frames on to a worker, which decodes them: the runner
    process does not spend its time decoding trains it only hands over.
    """

    __slots__ = ("frames",)

    def __init__(self, frames: list):
        self.frames = frames

    def decode(self) -> tuple[dict, dict]:
        """``(data, metadata)``, as :meth:`bridge.Client.next` gives them."""
        from bridge.protocol import deserialize

        return deserialize(self.frames)

    @property
    def train_id(self) -> int:
        """Its train ID (decodes the train)."""
        return train_id_of(*self.decode())


def client_trains(endpoints: Sequence[str], sock: str = "REQ", timeout: float | None = None,
                  *, match_timeout: float | None = None,
                  **match: Any) -> Iterator[EncodedTrain | tuple[dict, dict] | None]:
    """Trains from bridge endpoints; None while none arrives.

    One endpoint is read with a :class:`bridge.Client` and its trains come as
    :class:`EncodedTrain` (frames decoded by the worker); several are joined by train
    ID with a :class:`bridge.match.TrainMatcher` (``match``: its ``require``,
    ``optional``... options; ``match_timeout``: its ``timeout``, how long a train waits
    for missing sources) and come as ``(data, metadata)``. The Nones
    (every 0.2 s without a train) let :class:`LiveRunner` notice a stop request, and
    read the source in its dispatch loop. ``timeout``: end when nothing arrived for
    this many seconds (default: wait forever).
    """
    if not endpoints:
        raise ValueError("No endpoint given")
    if match_timeout is not None:
        match["timeout"] = match_timeout
    if len(endpoints) == 1 and not match:
        from bridge.client import Client

        # prefetch: the server sends the next train while this one is handed over.
        return _Trains(lambda: Client(endpoints[0], sock=sock, timeout=TICK_S,
                                      prefetch=sock.upper() == "REQ"),
                       lambda client: EncodedTrain(client.next_frames()), timeout)
    from bridge.match import TrainMatcher

    return _Trains(lambda: TrainMatcher(list(endpoints), sock=sock, **match),
                   lambda matcher: matcher.next(timeout=TICK_S), timeout)


class _Trains:
    """A receiver's trains, None every ``TICK_S`` while none arrives.

    ``returns_when_idle``: :class:`bridge.process.LiveRunner` may read it in its
    dispatch loop (it never blocks longer than a tick).
    """

    returns_when_idle = True

    def __init__(self, make, take, timeout: float | None):
        self._make, self._take, self._timeout = make, take, timeout
        self._receiver = None
        self._last = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        from bridge.client import BridgeTimeout

        if self._receiver is None:
            if self._make is None:
                raise StopIteration
            self._receiver, self._make = self._make(), None
            self._last = time.monotonic()
        try:
            train = self._take(self._receiver)
        except BridgeTimeout:
            if self._timeout is not None and time.monotonic() - self._last > self._timeout:
                self.close()
                raise StopIteration from None
            return None
        self._last = time.monotonic()
        return train

    def close(self) -> None:
        """Close the receiver (a Client, a TrainMatcher); safe to repeat."""
        receiver, self._receiver, self._make = self._receiver, None, None
        if receiver is not None:
            receiver.close()


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
