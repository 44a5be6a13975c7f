"""Karabo bridge server: sends fed trains from a background thread.

``feed()`` (the producer's thread) serializes a train and queues it; the
server thread hands queued trains to clients as they become ready, following a
slow-client policy named after the control system's pipelines:

- ``wait``: ``feed()`` blocks while the queue is full (back-pressure).
- ``drop``: a train nobody is ready for is dropped at once (latest data).
- ``queue``: up to ``max_queue`` trains / ``max_queue_bytes`` wait; when full
  the *oldest* is dropped.

With PUSH and ``wait``, ``feed()`` sends a train itself when nothing is
queued (clients keep up), saving the hand-over to the server thread; the
socket is used by one thread at a time.

ZeroMQ high-water marks are kept small so that the queueing happens here,
where it is bounded and counted, not in socket buffers: one train under
``drop`` / ``queue``; a few per client under ``wait``, which delivers every
train anyway (this spares a thread wake-up per train).
"""
from __future__ import annotations

import itertools
import socket as _socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq

from bridge.protocol import ProtocolError, serialize, serialize_sized, timestamp_metadata

__all__ = ['Server', 'POLICIES', 'SOCKET_TYPES']

POLICIES = ('wait', 'drop', 'queue')
SOCKET_TYPES = ('REP', 'PUB', 'PUSH')

# Kernel send buffer: small, so that it does not hold dozens of small trains
# (stale data for a slow client), but several loopback segments (64 KiB each)
# so big trains flow at full speed (32 KiB stalls them). Big trains even go
# faster than with the kernel's autotuned MBs: the copies stay in cache.
_SNDBUF = 128 * 1024
# PUSH/PUB high-water mark under 'wait' (at most max_queue): trains ZeroMQ may
# hold per client beyond our queue.
_WAIT_SNDHWM = 4
_XPUB_RETRY_S = 0.005
_MAX_REQUEST_BYTES = 64 * 1024
# Plain ints: pyzmq's enum flags cost microseconds per frame in the hot loop.
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_SNDMORE = int(zmq.SNDMORE)
# Frames smaller than this are copied into ZeroMQ (cheaper than tracking them).
_COPY_THRESHOLD = zmq.COPY_THRESHOLD
_instance_ids = itertools.count()


class _Item:
    """One serialized train waiting in the queue."""
    __slots__ = ('frames', 'nbytes')

    def __init__(self, frames: list, nbytes: int):
        self.frames = frames
        self.nbytes = nbytes


def _send_frames(socket: zmq.Socket, frames: list, flags: int) -> None:
    """send_multipart without its per-part overhead (enum flags, Frame objects)."""
    send = socket.send
    more = flags | _SNDMORE
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        send(frame, more if i < last else flags, copy=len(frame) < _COPY_THRESHOLD)


class Server:
    """Serve trains to Karabo bridge clients from a background thread.

    Parameters
    ----------
    endpoint : str
        Where to bind: ``'tcp://127.0.0.1:0'`` (default; port 0 picks a free
        port), ``'tcp://*:4545'`` (every interface: remote clients),
        ``'ipc:///tmp/bridge'``. A bare port number binds loopback only
        (``tcp://127.0.0.1:PORT``), like the command line.
    sock : {'REP', 'PUB', 'PUSH'}
        ``REP``: each train goes to one requesting client (REQ clients share
        the stream); ``PUB``: a copy to every subscriber; ``PUSH``: round-robin.
    policy : {'wait', 'drop', 'queue'}
        What happens when clients are slower than ``feed()``; see module docs.
    max_queue : int
        Trains held for sending (``wait``: ``feed()`` blocks beyond this,
        and ZeroMQ may hold up to ``min(max_queue, 4)`` more per PUSH/PUB
        client; ``queue``: the oldest is dropped beyond this).
    max_queue_bytes : int
        The same limit in bytes (a single bigger train is still accepted).
    protocol_version : {'2.2', '1.0'}
    timestamps : bool
        Add wall-clock ``timestamp``, ``timestamp.sec``, ``timestamp.frac``
        (the time of ``feed()``) to sources that lack them. Monitors drop
        trains without them; pass False to send only what the metadata has.

    Examples
    --------
    >>> with Server('tcp://127.0.0.1:0', sock='REP', policy='drop') as server:
    ...     print('connect to', server.endpoint)
    ...     for train_id, data in run.trains():
    ...         server.feed(data)
    """

    def __init__(
        self,
        endpoint: str | int = 'tcp://127.0.0.1:0',
        sock: str = 'REP',
        policy: str = 'wait',
        max_queue: int = 10,
        max_queue_bytes: int = 2**30,
        protocol_version: str = '2.2',
        timestamps: bool = True,
    ):
        sock = str(sock).upper()
        if sock not in SOCKET_TYPES:
            raise ValueError(f'Unknown socket type {sock!r}; use one of {SOCKET_TYPES}')
        if policy not in POLICIES:
            raise ValueError(f'Unknown policy {policy!r}; use one of {POLICIES}')
        if max_queue < 1 or max_queue_bytes < 1:
            raise ValueError('max_queue and max_queue_bytes must be at least 1')
        serialize({}, protocol_version=protocol_version)  # validates the version
        if isinstance(endpoint, int) or str(endpoint).isdigit():
            endpoint = f'tcp://127.0.0.1:{endpoint}'

        self.sock = sock
        self.policy = policy
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.protocol_version = protocol_version
        self.timestamps = timestamps

        self._queue: deque[_Item] = deque()
        self._queued_bytes = 0
        self._waiting: deque[list] = deque()  # REP: envelopes of pending requests
        self._counts = dict(fed=0, sent=0, dropped=0, requests=0, bad_requests=0)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._linger_ms = 0
        self._error: BaseException | None = None
        self._wake_lock = threading.Lock()
        # PUSH + wait: feed() sends itself while nothing is queued. The socket
        # belongs to the server thread while _thread_has_socket (under _lock).
        self._direct = sock == 'PUSH' and policy == 'wait'
        self._thread_has_socket = False
        self._feeders_waiting = 0  # threads in feed()/drain() waiting on _changed

        self._context = zmq.Context()
        try:
            self._socket = self._make_socket()
            self._socket.bind(endpoint)
            wake_addr = f'inproc://bridge-server-wake-{next(_instance_ids)}'
            self._wake_r = self._context.socket(zmq.PULL)
            self._wake_r.bind(wake_addr)
            self._wake_w = self._context.socket(zmq.PUSH)
            self._wake_w.setsockopt(zmq.SNDHWM, 1)
            self._wake_w.connect(wake_addr)
        except zmq.ZMQError as e:
            self._context.destroy(linger=0)
            raise OSError(f'Cannot bind bridge server to {endpoint!r}: {e}') from None

        self._bound = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._thread = threading.Thread(
            target=self._run, name=f'bridge-server {self._bound}', daemon=True
        )
        self._thread.start()

    # -- public API --------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint clients connect to (real port; host name for ``*``)."""
        return self._bound.replace('0.0.0.0', _socket.gethostname())

    @property
    def port(self) -> int | None:
        """The bound TCP port, or None for other transports."""
        if not self._bound.startswith('tcp://'):
            return None
        return int(self._bound.rsplit(':', 1)[1])

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``fed``, ``sent``, ``dropped``, ``queued`` (now),
        ``queued_bytes`` (now), ``requests``, ``bad_requests``,
        ``waiting_clients`` (REP requests not yet answered)."""
        with self._lock:
            return dict(self._counts, queued=len(self._queue),
                        queued_bytes=self._queued_bytes,
                        waiting_clients=len(self._waiting))

    def feed(
        self,
        data: Mapping[str, Mapping[str, Any]],
        metadata: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: float | None = None,
        *,
        train_id: int | None = None,
        copy: bool = False,
    ) -> None:
        """Queue one train for sending.

        Parameters
        ----------
        data : dict
            ``{source: {key: value}}`` as from ``run.trains()`` or ``Client``.
        metadata : dict, optional
            ``{source: {...}}``; default: each source's ``'metadata'`` entry.
        timeout : float, optional
            ``wait`` policy: give up after this many seconds (TimeoutError).
        train_id : int, optional
            ``timestamp.tid`` for sources whose metadata has none.
        copy : bool
            Arrays are sent without copying, so they must not be modified in
            place after ``feed()``; pass True if you reuse array buffers.

        Raises
        ------
        ProtocolError
            The train cannot be serialized (the message names source and key).
        TimeoutError
            ``wait`` policy and no room in the queue within ``timeout``.
        RuntimeError
            The server is stopped or its thread failed.
        """
        meta = self._complete_metadata(data, metadata, train_id)
        if copy:
            data = {src: {k: (np.array(v) if isinstance(v, np.ndarray) else v)
                          for k, v in props.items()} for src, props in data.items()}
        item = _Item(*serialize_sized(data, meta, self.protocol_version))

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            self._check_running()
            self._counts['fed'] += 1
            if self.policy == 'wait':
                while not self._has_room(item):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        self._counts['fed'] -= 1
                        raise TimeoutError(
                            f'feed() waited {timeout} s for room in the queue of {self.endpoint} '
                            f'({len(self._queue)} trains queued; clients are not keeping up)'
                        )
                    self._wait_changed(remaining)
                    self._check_running()
            elif self.policy == 'drop':
                # Nobody took the previous train yet: it is stale now.
                self._counts['dropped'] += len(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
            elif self.policy == 'queue':
                while self._queue and not self._has_room(item):
                    old = self._queue.popleft()
                    self._queued_bytes -= old.nbytes
                    self._counts['dropped'] += 1
            if self._direct and not self._queue and not self._thread_has_socket:
                # The server thread does not use the socket while the queue is
                # empty (it polls only the wake-up socket): send from here,
                # holding the lock so that it cannot take the socket meanwhile.
                if self._send_direct(item):
                    self._counts['sent'] += 1
                    return
            # Wake the thread only if it can act now; otherwise its next
            # request / POLLOUT event finds the train in the queue.
            need_wake = self.sock == 'PUB' or self.policy == 'drop' or (
                bool(self._waiting) if self.sock == 'REP' else not self._queue)
            self._queue.append(item)
            self._queued_bytes += item.nbytes
        if need_wake:
            self._wake()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued train was handed to a client (or dropped).

        Returns False if ``timeout`` (seconds) expired first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._queue:
                self._check_running()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wait_changed(remaining)
        return True

    def start(self) -> Server:
        """Kept for symmetry with karabo_bridge; the server starts when created."""
        return self

    def stop(self, linger: float = 0.0) -> None:
        """Stop the thread and close the socket.

        Trains still queued are discarded (see :meth:`drain`). ``linger``
        (seconds) lets trains already handed to clients' connections finish
        leaving before the socket closes.
        """
        with self._changed:
            if self._stopping and not self._thread.is_alive():
                return
            self._stopping = True
            self._linger_ms = max(0, int(linger * 1000))
            self._changed.notify_all()
        self._wake()
        self._thread.join()
        self._context.term()

    close = stop

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f'<bridge.Server {self.sock} {self.endpoint} policy={self.policy!r}>'

    # -- producer side helpers ----------------------------------------------

    def _complete_metadata(self, data, metadata, train_id) -> dict:
        if not isinstance(data, Mapping):
            raise ProtocolError(f'Train data must be a dict of sources, not {type(data).__name__}')
        meta = {}
        for source, props in data.items():
            if metadata is not None and source in metadata:
                m = metadata[source]
            elif isinstance(props, Mapping):
                m = props.get('metadata', {})
            else:
                m = {}
            if next(iter(m), None) == 'source' and m['source'] == source and (
                    'timestamp.tid' in m) and (not self.timestamps or (
                    'timestamp' in m and 'timestamp.sec' in m and 'timestamp.frac' in m)):
                meta[source] = m  # complete already: sent as it is, never modified
                continue
            # The real source name (a renamed or stacked source may carry an old one).
            meta[source] = {'source': source, **{k: v for k, v in m.items() if k != 'source'}}
        known = train_id
        if known is None:
            known = next((m['timestamp.tid'] for m in meta.values() if 'timestamp.tid' in m),
                         None)
        if known is None and meta:
            raise ValueError(
                f'No train ID for source(s) {sorted(meta)}: pass feed(..., train_id=N) '
                "or put 'timestamp.tid' in the metadata"
            )
        stamp = None
        for m in meta.values():
            if 'timestamp.tid' not in m:
                m['timestamp.tid'] = int(known)
            if self.timestamps and not all(
                    k in m for k in ('timestamp', 'timestamp.sec', 'timestamp.frac')):
                if 'timestamp' in m:
                    own = timestamp_metadata(m['timestamp'])
                else:
                    stamp = stamp or timestamp_metadata()  # now: time of feed()
                    own = stamp
                for k, v in own.items():
                    m.setdefault(k, v)
        return meta

    def _has_room(self, item: _Item) -> bool:
        if not self._queue:
            return True
        return (len(self._queue) < self.max_queue
                and self._queued_bytes + item.nbytes <= self.max_queue_bytes)

    def _send_direct(self, item: _Item) -> bool:
        """feed()'s own send (lock held, socket not the thread's); False: queue it."""
        try:
            _send_frames(self._socket, item.frames, _NOBLOCK)
            return True
        except zmq.Again:
            pass
        # send() reads ZeroMQ's "pipe has room again" news at most once a
        # millisecond or so; asking for EVENTS reads it now.
        if not self._socket.getsockopt(_EVENTS) & _POLLOUT:
            return False  # no client ready: the server thread takes over
        try:
            _send_frames(self._socket, item.frames, _NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _wait_changed(self, timeout: float | None) -> None:
        # Called with _lock held; the counter lets the server thread skip notifying.
        self._feeders_waiting += 1
        try:
            self._changed.wait(timeout)
        finally:
            self._feeders_waiting -= 1

    def _check_running(self) -> None:
        if self._error is not None:
            raise RuntimeError(f'Bridge server thread failed: {self._error!r}') from self._error
        if self._stopping:
            raise RuntimeError(f'Bridge server {self._bound} is stopped')

    def _wake(self) -> None:
        with self._wake_lock:
            try:
                self._wake_w.send(b'', zmq.NOBLOCK)
            except zmq.Again:
                pass  # a wake-up is already pending
            except zmq.ZMQError:
                pass  # closed during stop()

    # -- server thread ---------------------------------------------------

    def _make_socket(self) -> zmq.Socket:
        if self.sock == 'REP':
            # ROUTER, not REP: several REQ clients are served independently.
            s = self._context.socket(zmq.ROUTER)
            s.setsockopt(zmq.ROUTER_MANDATORY, 1)
            s.setsockopt(zmq.SNDHWM, 4)
            s.setsockopt(zmq.SNDBUF, _SNDBUF)
        else:
            s = self._context.socket(zmq.PUSH if self.sock == 'PUSH' else zmq.XPUB)
            # wait delivers every train, so freshness does not matter: a few
            # trains in ZeroMQ's pipe spare a thread wake-up per train.
            s.setsockopt(zmq.SNDHWM, min(self.max_queue, _WAIT_SNDHWM)
                         if self.policy == 'wait' else 1)
            s.setsockopt(zmq.SNDBUF, _SNDBUF)
            if self.sock == 'PUB':
                # wait/queue: a full subscriber makes send() fail instead of losing data.
                s.setsockopt(zmq.XPUB_NODROP, int(self.policy != 'drop'))
        if self.sock != 'PUSH':
            # Requests and subscriptions are a few bytes: a peer sending more is
            # disconnected instead of filling our memory.
            s.setsockopt(zmq.MAXMSGSIZE, _MAX_REQUEST_BYTES)
        s.setsockopt(zmq.LINGER, 0)
        return s

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        if self.sock != 'PUSH':
            poller.register(self._socket, zmq.POLLIN)
        blocked = False  # XPUB refused a send (a subscriber is full)
        polling_out = False
        try:
            while True:
                if self.sock == 'PUSH':
                    with self._lock:
                        want_out = self._thread_has_socket = bool(self._queue)
                    if want_out != polling_out:
                        poller.register(self._socket, _POLLOUT if want_out else 0)
                        polling_out = want_out
                events = dict(poller.poll(_XPUB_RETRY_S * 1000 if blocked else None))
                if self._wake_r in events:
                    while self._wake_r.poll(0):
                        self._wake_r.recv()
                if self._stopping:
                    break
                if self.sock != 'PUSH' and self._socket in events:
                    self._receive_requests()
                blocked = self._dispatch()
        except BaseException as e:  # reported to the producer by feed()
            with self._changed:
                self._error = e
                self._changed.notify_all()
        finally:
            with self._lock:
                # Under the lock, and marked as the thread's, so that a concurrent
                # feed() never sends directly on a closing socket.
                self._thread_has_socket = True
                self._socket.close(linger=self._linger_ms)
            self._wake_r.close(linger=0)
            with self._wake_lock:
                self._wake_w.close(linger=0)

    def _receive_requests(self) -> None:
        socket = self._socket
        while socket.getsockopt(_EVENTS) & _POLLIN:
            parts = [socket.recv(_NOBLOCK)]
            while socket.getsockopt(_RCVMORE):
                parts.append(socket.recv(_NOBLOCK))
            if self.sock == 'PUB':
                continue  # subscription messages; nothing to do
            try:
                split = parts.index(b'') + 1
            except ValueError:
                split = 1  # DEALER-style peer without delimiter
            envelope, body = parts[:split], parts[split:]
            with self._lock:
                self._counts['requests'] += 1
                if body == [b'next']:
                    self._waiting.append(envelope)
                    continue
                self._counts['bad_requests'] += 1
            shown = b' '.join(body)[:100]
            try:
                self._socket.send_multipart(envelope + [b'Error: bad request ' + shown],
                                            _NOBLOCK)
            except zmq.ZMQError:
                pass  # peer gone or full: nothing more to tell it

    def _dispatch(self) -> bool:
        """Send queued trains to ready clients; return True if XPUB is blocked."""
        item = envelope = None
        sent = False
        while True:
            with self._changed:  # one lock round per train: the result, then the next
                if item is not None:
                    if sent:
                        self._counts['sent'] += 1
                    else:
                        self._queue.appendleft(item)
                        self._queued_bytes += item.nbytes
                    if self._feeders_waiting:  # feed() / drain() blocked
                        self._changed.notify_all()
                    if not sent and self.sock == 'PUB':
                        return True
                if not self._queue:
                    return False
                self._thread_has_socket = True  # feed() keeps off it from now on
                if not self._ready():
                    if self.policy == 'drop':
                        self._counts['dropped'] += len(self._queue)
                        self._queue.clear()
                        self._queued_bytes = 0
                        self._changed.notify_all()
                    return False
                item = self._queue.popleft()
                self._queued_bytes -= item.nbytes
                if self.sock == 'REP':
                    envelope = self._waiting.popleft()
            sent = self._send(item, envelope)

    def _ready(self) -> bool:
        if self.sock == 'REP':
            return bool(self._waiting)
        if self.sock == 'PUSH':
            return bool(self._socket.getsockopt(_EVENTS) & _POLLOUT)
        return True

    def _send(self, item: _Item, envelope: list | None) -> bool:
        """Try to send now; False puts the train back in the queue."""
        if envelope is not None:  # REP
            try:
                _send_frames(self._socket, envelope + item.frames, _NOBLOCK)
            except (zmq.Again, zmq.ZMQError):
                # Peer disconnected (EHOSTUNREACH) or still has an unread reply:
                # forget this request, keep the train for the next one.
                return False
            return True
        try:
            _send_frames(self._socket, item.frames, _NOBLOCK)
        except zmq.Again:
            return False
        return True
