"""The train matcher's inputs: stream addresses, and one client and receiving thread each.

Each stream's thread (:func:`receive`) calls ``Client.next()`` and puts
``(index, data, metadata, arrival, wall time)`` into the matcher's bounded :class:`Inbox`.
Failures travel the same way, with ``data`` None: a malformed message (the
``ProtocolError``, receiving goes on), or the client failing (arrival ``-1``; the thread
ends). A stream the matcher pauses (``go`` cleared: it runs too far ahead of the others)
stops receiving, so its server applies its own policy.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from bridge.client import SOCKET_TYPES, Client
from bridge.protocol import ProtocolError

__all__ = ['CLIENT_FOR', 'parse_stream', 'InputStream', 'open_stream', 'Inbox', 'receive']

# How long a receiving thread blocks in Client.next() before checking for close().
WAKE_S = 0.5

#: The client socket type that talks to each server socket type.
CLIENT_FOR = {'REP': 'REQ', 'PUB': 'SUB', 'PUSH': 'PULL'}


def parse_stream(text: str, default_sock: str = 'REQ') -> tuple[str, str]:
    """Split a stream address: ``'SUB@tcp://host:4545'`` -> ``('tcp://host:4545', 'SUB')``.

    The server's socket name is accepted too (``PUB@...`` means SUB); a bare port means
    ``tcp://127.0.0.1:PORT``.

    Parameters
    ----------
    text : str
        ``[SOCKET@]endpoint`` or a bare port number.
    default_sock : str
        The client socket type when ``text`` has no ``SOCKET@`` prefix.

    Returns
    -------
    tuple of str
        ``(endpoint, socket type)``, the socket type one of REQ, SUB, PULL.

    Raises
    ------
    ValueError
        An unknown socket type.
    """
    sock, at, endpoint = str(text).partition('@')
    if not at:
        sock, endpoint = default_sock, str(text)
    sock = CLIENT_FOR.get(sock.upper(), sock.upper())
    if sock not in SOCKET_TYPES:
        raise ValueError(f'{text!r}: unknown socket type {sock!r}; write e.g. '
                         'SUB@tcp://host:4545 (REQ, SUB or PULL)')
    if endpoint.isdigit():
        endpoint = f'tcp://127.0.0.1:{endpoint}'
    return endpoint, sock


class InputStream:
    """One input stream: its client, receiving thread and figures.

    Parameters
    ----------
    client : bridge.Client
        Its client (``timeout`` set, so that the thread notices a close).
    own : bool
        Whether the matcher made the client (and closes it).
    """

    def __init__(self, client: Client, own: bool):
        self.client = client
        self.own = own
        self.name = client.endpoint
        self.sources: set[str] = set()
        self.messages = 0
        self.late = 0
        self.errors = 0
        self.resets = 0
        self.last_tid: int | None = None
        self.last_arrival: float | None = None      # monotonic
        self.resumed = 0.0          # when the receiver last stopped waiting for the matcher
        self.held = False           # the receiver waits for the matcher (not for data)
        self.age: float | None = None                # received_at - timestamp of last train
        self.arrivals: deque[float] = deque(maxlen=50)
        self.silent = False
        self.thread: threading.Thread | None = None
        self.go = threading.Event()     # cleared while the stream is too far ahead
        self.go.set()

    def rate(self) -> float:
        """Messages per second, over the last 50."""
        if len(self.arrivals) < 2 or self.arrivals[-1] == self.arrivals[0]:
            return 0.0
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])

    def heard(self, start: float) -> float:
        """Since when the stream has been silent: its last message, or ``start`` (monotonic).

        Time its receiver spent waiting for the matcher (paused, or the caller not taking
        trains) does not count.
        """
        if self.held or not self.go.is_set():
            return time.monotonic()
        last = self.last_arrival if self.last_arrival is not None else start
        return max(last, self.resumed)


def open_stream(spec: str | tuple[str, str] | Client, sock: str,
                client_kw: dict[str, Any]) -> InputStream:
    """An :class:`InputStream` for one ``TrainMatcher`` stream argument (see there)."""
    if isinstance(spec, Client):
        if spec.timeout is None:
            spec.timeout = WAKE_S   # so that the thread notices close()
        return InputStream(spec, own=False)
    if isinstance(spec, (tuple, list)):
        endpoint, sock = parse_stream(f'{spec[1]}@{spec[0]}')
    else:
        endpoint, sock = parse_stream(spec, sock)
    # One option set for all: each socket type takes the options that apply to it.
    kw = {k: v for k, v in client_kw.items()
          if k != ('receive_ahead' if str(sock).upper() == 'REQ' else 'prefetch')}
    client = Client(endpoint, sock=sock, timeout=WAKE_S, **kw)
    return InputStream(client, own=True)


class Inbox:
    """Received messages waiting for the matcher's thread, at most ``max_items``.

    A deque and an event are cheaper than ``queue.Queue`` (two locks per message), which
    matters for small trains: the matcher's thread reads :attr:`items` directly and waits
    on :attr:`arrived`.

    Parameters
    ----------
    max_items : int
        Messages held at most; a receiver waits for room beyond that.
    stop : threading.Event
        Set when the matcher closes: a waiting receiver gives up its message.
    """

    def __init__(self, max_items: int, stop: threading.Event):
        self.items: deque = deque()
        self.max_items = max_items
        self.arrived = threading.Event()
        self._stop = stop

    def put(self, item: tuple, stream: InputStream) -> None:
        """Append a received message (from ``stream``'s thread)."""
        # Full: the matcher's caller is slower than the streams; wait for room.
        if len(self.items) >= self.max_items:
            stream.held = True
            while len(self.items) >= self.max_items:
                if self._stop.wait(0.001):
                    return
            stream.resumed = time.monotonic()   # waiting for the caller is not silence
            stream.held = False
        self.items.append(item)
        self.arrived.set()


def receive(stream: InputStream, index: int, inbox: Inbox, stop: threading.Event) -> None:
    """The receiving thread of stream number ``index``: until ``stop`` or its client fails."""
    client = stream.client
    while not stop.is_set():
        if not stream.go.is_set():
            if stream.go.wait(WAKE_S):
                stream.resumed = time.monotonic()   # a pause is not silence
            continue
        try:
            data, metadata = client.next()
            item = (index, data, metadata, time.monotonic(), time.time())
        except TimeoutError:
            continue
        except ProtocolError as e:
            item = (index, None, e, 0.0, 0.0)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer's thread
            inbox.put((index, None, e, -1.0, 0.0), stream)
            return
        inbox.put(item, stream)
