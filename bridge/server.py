"""Karabo bridge server: sends fed trains from a background thread.

``feed()`` (the producer's thread) completes the train's metadata (:mod:`bridge.metadata`),
serializes it and queues it (:mod:`bridge.send_queue`, which applies the slow-client policy);
the server thread hands queued trains to clients as they become ready, on a socket set up and
guarded by :mod:`bridge.server_socket`.

With PUSH and ``wait``, ``feed()`` sends a train itself when nothing is queued (clients keep
up), saving the hand-over to the server thread; :class:`~bridge.server_socket.SocketOwner`
makes sure the socket is used by one thread at a time.
"""
from __future__ import annotations

import itertools
import os
import socket as _socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq

from bridge import curve, server_socket
from bridge.metadata import complete_metadata
from bridge.protocol import serialize, serialize_sized
from bridge.send_queue import POLICIES, QueuedTrain, SendQueue
from bridge.server_socket import SOCKET_TYPES, SocketOwner, make_socket

__all__ = ['Server', 'POLICIES', 'SOCKET_TYPES']

_XPUB_RETRY_S = 0.005
# Plain ints: pyzmq's enum flags cost microseconds per frame in the hot loop.
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_instance_ids = itertools.count()


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
        What happens when clients are slower than ``feed()``: ``wait`` blocks
        ``feed()`` while the queue is full; ``drop`` drops a train nobody is
        ready for at once; ``queue`` drops the oldest beyond ``max_queue``.
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
    curve_secret_key : str, path or bytes, optional
        Turn on ZeroMQ CURVE (encryption and authentication): the server's
        secret key file (``NAME.key_secret`` from ``exfel-bridge keygen``) or
        its Z85 secret key. Clients then need the server's public key.
    curve_allow : str or path, optional
        With ``curve_secret_key``: a directory of the public key files
        (``*.key``, read once, now) of the clients allowed in. Default: any
        client that knows the server's public key.

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
        curve_secret_key: curve.KeySource | None = None,
        curve_allow: str | os.PathLike | None = None,
    ):
        sock = str(sock).upper()
        if sock not in SOCKET_TYPES:
            raise ValueError(f'Unknown socket type {sock!r}; use one of {SOCKET_TYPES}')
        self._queue = SendQueue(policy, max_queue, max_queue_bytes)
        serialize({}, protocol_version=protocol_version)  # validates the version
        if isinstance(endpoint, int) or str(endpoint).isdigit():
            endpoint = f'tcp://127.0.0.1:{endpoint}'
        if curve_allow is not None and curve_secret_key is None:
            raise ValueError('curve_allow needs curve_secret_key (the server\'s secret key)')
        curve_keys = None if curve_secret_key is None else curve.server_keys(curve_secret_key)

        self.sock = sock
        self.policy = policy
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.protocol_version = protocol_version
        self.timestamps = timestamps

        self._waiting: deque[list] = deque()  # REP: envelopes of pending requests
        self._counts = dict(fed=0, sent=0, requests=0, bad_requests=0)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._linger_ms = 0
        self._error: BaseException | None = None
        self._wake_lock = threading.Lock()
        self._feeders_waiting = 0  # threads in feed()/drain() waiting on _changed
        self._in_flight = 0  # 1 while the server thread sends a train taken from the queue
        self._last_sent: int | None = None  # train ID of the last train sent
        self._topics: set[bytes] = set()  # PUB: subscriptions held by connected subscribers

        self._context = zmq.Context()
        self._authenticator = None
        try:
            if curve_keys is not None:
                self._authenticator = curve.start_authenticator(self._context, curve_allow)
            socket = make_socket(self._context, sock, policy, max_queue, curve_keys)
            socket.bind(endpoint)
            wake_addr = f'inproc://bridge-server-wake-{next(_instance_ids)}'
            self._wake_r = self._context.socket(zmq.PULL)
            self._wake_r.bind(wake_addr)
            self._wake_w = self._context.socket(zmq.PUSH)
            self._wake_w.setsockopt(zmq.SNDHWM, 1)
            self._wake_w.connect(wake_addr)
        except (zmq.ZMQError, curve.CurveKeyError) as e:
            if self._authenticator is not None:
                self._authenticator.stop()
            self._context.destroy(linger=0)
            if isinstance(e, curve.CurveKeyError):
                raise
            raise OSError(f'Cannot bind bridge server to {endpoint!r}: {e}') from None
        self.curve_public_key = None if curve_keys is None else curve_keys[0]

        self._bound = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._owner = SocketOwner(socket, self._lock,
                                  lendable=sock == 'PUSH' and policy == 'wait')
        self._thread = threading.Thread(
            target=self._run, args=(socket,), name=f'bridge-server {self._bound}', daemon=True
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
    def last_sent_train_id(self) -> int | None:
        """Train ID of the last train handed to a client (None before the first)."""
        return self._last_sent

    @property
    def stats(self) -> dict[str, int]:
        """Counters of what the server did, and its queue now.

        ``fed``, ``sent``, ``dropped``, ``queued`` (now), ``queued_bytes`` (now),
        ``requests``, ``bad_requests``, ``waiting_clients`` (REP requests not yet answered).
        """
        with self._lock:
            return dict(self._counts, dropped=self._queue.dropped,
                        queued=len(self._queue) + self._in_flight,
                        queued_bytes=self._queue.nbytes, waiting_clients=len(self._waiting))

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
        meta, tid = complete_metadata(data, metadata, train_id, self.timestamps)
        if copy:
            data = {src: {k: (np.array(v) if isinstance(v, np.ndarray) else v)
                          for k, v in props.items()} for src, props in data.items()}
        item = QueuedTrain(*serialize_sized(data, meta, self.protocol_version), tid)

        queue = self._queue
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            self._check_running()
            if self.policy == 'wait':
                while not queue.has_room(item):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(
                            f'feed() waited {timeout} s for room in the queue of {self.endpoint} '
                            f'({len(queue)} trains queued; clients are not keeping up)'
                        )
                    self._wait_changed(remaining)
                    self._check_running()
            self._counts['fed'] += 1
            queue.make_room(item)
            if self._owner.lent and not queue:
                # The server thread has nothing queued and lent us the socket: send from
                # here, holding the lock so that it cannot take the socket back meanwhile.
                if self._owner.send_direct(item.frames):
                    self._counts['sent'] += 1
                    self._last_sent = item.train_id
                    return
            # Wake the thread only if it can act now; otherwise its next
            # request / POLLOUT event finds the train in the queue.
            need_wake = self.sock == 'PUB' or self.policy == 'drop' or (
                bool(self._waiting) if self.sock == 'REP' else not queue)
            queue.append(item)
        if need_wake:
            self._wake()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued train was handed to a client (or dropped).

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; None (default): as long as it takes.

        Returns
        -------
        bool
            False if ``timeout`` expired first.

        Raises
        ------
        RuntimeError
            The server is stopped or its thread failed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._queue or self._in_flight:
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

        Trains still queued are discarded (see :meth:`drain`). Calls after the first
        return at once.

        Parameters
        ----------
        linger : float
            Seconds to let trains already handed to clients' connections finish leaving
            before the socket closes.
        """
        with self._changed:
            if self._stopping:
                return  # stopped, or being stopped by another thread
            self._stopping = True
            self._linger_ms = max(0, int(linger * 1000))
            self._changed.notify_all()
        self._wake()
        self._thread.join()
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()

    close = stop

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f'<bridge.Server {self.sock} {self.endpoint} policy={self.policy!r}>'

    # -- producer side helpers ----------------------------------------------

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

    def _run(self, socket: zmq.Socket) -> None:
        owner = self._owner
        owner.attach()
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        if self.sock != 'PUSH':
            poller.register(socket, zmq.POLLIN)
        blocked = False  # XPUB refused a send (a subscriber is full)
        polling_out = False
        try:
            while True:
                if self.sock == 'PUSH':
                    with self._lock:
                        want_out = bool(self._queue)
                        if owner.lendable and want_out:
                            owner.take_back()
                        elif owner.lendable:
                            owner.lend()  # nothing queued: feed() may send itself
                    if want_out != polling_out:
                        poller.register(socket, _POLLOUT if want_out else 0)
                        polling_out = want_out
                events = dict(poller.poll(_XPUB_RETRY_S * 1000 if blocked else None))
                if self._wake_r in events:
                    while self._wake_r.poll(0):
                        self._wake_r.recv()
                if self._stopping:
                    break
                if self.sock != 'PUSH' and socket in events:
                    self._receive_requests()
                blocked = self._dispatch()
        except BaseException as e:  # reported to the producer by feed()
            with self._changed:
                self._error = e
                self._changed.notify_all()
        finally:
            owner.close(self._linger_ms)
            self._wake_r.close(linger=0)
            with self._wake_lock:
                self._wake_w.close(linger=0)

    def _receive_requests(self) -> None:
        socket = self._owner.socket
        while socket.getsockopt(_EVENTS) & _POLLIN:
            parts = [socket.recv(_NOBLOCK)]
            while socket.getsockopt(_RCVMORE):
                parts.append(socket.recv(_NOBLOCK))
            if self.sock == 'PUB':
                self._subscription(parts[0])
                continue
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
                socket.send_multipart(envelope + [b'Error: bad request ' + shown], _NOBLOCK)
            except zmq.ZMQError:
                pass  # peer gone or full: nothing more to tell it

    def _subscription(self, message: bytes) -> None:
        # XPUB passes on a topic's first subscription (b'\x01' + topic) and, when its last
        # subscriber unsubscribes or disconnects, the unsubscription (b'\x00' + topic).
        if message[:1] == b'\x01':
            self._topics.add(message[1:])
        elif message[:1] == b'\x00':
            self._topics.discard(message[1:])

    def _dispatch(self) -> bool:
        """Send queued trains to ready clients; return True if XPUB is blocked."""
        queue = self._queue
        item = envelope = None
        sent = False
        while True:
            with self._changed:  # one lock round per train: the result, then the next
                if item is not None:
                    self._in_flight = 0
                    if sent:
                        self._counts['sent'] += 1
                        self._last_sent = item.train_id
                    else:
                        queue.put_back(item)
                    if self._feeders_waiting:  # feed() / drain() blocked
                        self._changed.notify_all()
                    if not sent and self.sock == 'PUB':
                        return True
                if not queue:
                    return False
                if self._owner.lendable:
                    self._owner.take_back()  # feed() keeps off the socket from now on
                if not self._ready():
                    if self.policy == 'drop':
                        queue.drop_all()
                        self._changed.notify_all()
                    return False
                item = queue.popleft()
                self._in_flight = 1
                if self.sock == 'REP':
                    envelope = self._waiting.popleft()
            sent = self._send(item, envelope)

    def _ready(self) -> bool:
        if self.sock == 'REP':
            return bool(self._waiting)
        if self.sock == 'PUSH':
            return bool(self._owner.socket.getsockopt(_EVENTS) & _POLLOUT)
        return bool(self._topics)  # PUB: somebody subscribed (else ZeroMQ would drop it)

    def _send(self, item: QueuedTrain, envelope: list | None) -> bool:
        """Try to send now; False puts the train back in the queue."""
        socket = self._owner.socket
        if envelope is not None:  # REP
            try:
                server_socket.send_frames(socket, envelope + item.frames, _NOBLOCK)
            except (zmq.Again, zmq.ZMQError):
                # Peer disconnected (EHOSTUNREACH) or still has an unread reply:
                # forget this request, keep the train for the next one.
                return False
            return True
        try:
            server_socket.send_frames(socket, item.frames, _NOBLOCK)
        except zmq.Again:
            return False
        return True
