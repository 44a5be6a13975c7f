"""Karabo bridge client: receive trains as ``(data, metadata)``.

Compatible with karabo_bridge servers (and ours), and sturdier than the
reference client: a REQ client whose request was lost (timeout, server
restart) re-sends it by itself instead of waiting forever.
"""
from __future__ import annotations

import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from bridge import curve, malloc
from bridge.protocol import deserialize
from bridge.wire import BridgeError

__all__ = ['Client', 'BridgeTimeout', 'SOCKET_TYPES', 'DEFAULT_MAX_MESSAGE_SIZE']

SOCKET_TYPES = ('REQ', 'SUB', 'PULL')
# Largest frame a client accepts by default: above every detector's train in one
# array (corrected DSSC, 800 frames float32: 3.4 GB; AGIPD-1M, 352: 1.5 GB).
DEFAULT_MAX_MESSAGE_SIZE = 4 * 2**30
_REQUEST = b'next'
# Plain ints: pyzmq's enum constants cost microseconds per use.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# Monitor events of a failed ZMTP handshake (wrong CURVE keys, CURVE on one side only).
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class BridgeTimeout(BridgeError, TimeoutError):
    """No train arrived within the client's timeout."""


class Client:
    """Receive trains from a Karabo bridge server.

    Parameters
    ----------
    endpoint : str
        Server address, e.g. ``'tcp://127.0.0.1:4545'`` or ``'ipc:///tmp/bridge'``.
    sock : {'REQ', 'SUB', 'PULL'}
        Must match the server: REQ for REP, SUB for PUB, PULL for PUSH.
    timeout : float, optional
        Seconds :meth:`next` waits before raising :class:`BridgeTimeout`
        (a ``TimeoutError``); None waits forever. Big detector trains take
        ~0.1-1 s to transfer, so do not choose it too small. After a timeout
        the next call asks again on a fresh socket.
    max_message_size : int or None
        Largest frame (bytes) accepted, default 4 GiB
        (:data:`DEFAULT_MAX_MESSAGE_SIZE`: any detector's whole train in one
        array fits); a peer sending a bigger one is disconnected, and
        :meth:`next` times out saying so. Protects memory from a rogue or
        misconfigured sender: ZeroMQ allocates what a frame announces. None:
        no limit.
    context : zmq.Context, optional
        Context to create sockets in; default: a private one.
    tune_malloc : bool, optional
        True: tune glibc (see :func:`bridge.tune_malloc`) so that frames
        above 32 MiB reuse memory instead of being mapped afresh: stacked
        detector trains (268 MB AGIPD) arrive 2-3x faster. Process-wide and
        lasting: threads started afterwards share one heap, and the heap
        keeps its peak size; so it is off by default (None: on only if the
        environment has ``EXFEL_BRIDGE_TUNE_MALLOC=1``). Programs that own
        their process turn it on (``exfel-bridge monitor``). It must happen
        before the ZeroMQ context starts (a client created with ``context=``
        gains only if the tuning came first). No effect off glibc.
    receive_ahead : int, optional
        SUB/PULL only: trains ZeroMQ receives ahead of :meth:`next` (the
        receive high-water mark; default 2). Few keep what you read recent
        and bound memory (2 x 268 MB for stacked AGIPD trains); raise it
        (e.g. 100) to take thousands of small trains per second (~1.3x
        faster for 25 kB trains) when freshness does not matter.
    prefetch : bool
        REQ only: ask for the next train as soon as one arrives, so that the
        server sends it while you work on this one: transfer and processing
        overlap (268 MB trains with 50 ms of work each: 1.6x more trains per
        second; see docs/benchmarks.md). But every train you
        get was asked for one processing time earlier: from a ``drop`` or
        ``queue`` server it is that much older, and the train in flight
        when the client closes is lost. Off by default (monitors want the
        freshest train); for replaying runs as fast as possible.
    curve_server_key : str, path or bytes, optional
        Use ZeroMQ CURVE (for servers started with a secret key): the
        server's public key file (``NAME.key``) or its Z85 public key.
    curve_secret_key : str, path or bytes, optional
        With ``curve_server_key``: this client's secret key file
        (``NAME.key_secret``; its public key must be in the server's allowed
        keys) or Z85 secret key. Default: a fresh key pair, enough for
        servers that accept any client.

    Examples
    --------
    >>> with Client('tcp://localhost:4545', timeout=10) as client:
    ...     for data, metadata in client:
    ...         process(data)
    """

    def __init__(
        self,
        endpoint: str,
        sock: str = 'REQ',
        timeout: float | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        context: zmq.Context | None = None,
        tune_malloc: bool | None = None,
        receive_ahead: int | None = None,
        prefetch: bool = False,
        curve_server_key: curve.KeySource | None = None,
        curve_secret_key: curve.KeySource | None = None,
    ):
        sock = str(sock).upper()
        if sock not in SOCKET_TYPES:
            raise ValueError(f'Unknown socket type {sock!r}; use one of {SOCKET_TYPES}')
        if timeout is not None and timeout <= 0:
            raise ValueError(f'timeout must be positive seconds or None, not {timeout!r}')
        if prefetch and sock != 'REQ':
            raise ValueError(f'prefetch applies to REQ clients; {sock} sockets receive '
                             'ahead by themselves (see receive_ahead)')
        if max_message_size is not None and (
                not isinstance(max_message_size, int) or max_message_size < 1):
            raise ValueError(f'max_message_size must be a positive number of bytes or None '
                             f'(no limit), not {max_message_size!r}')
        if receive_ahead is not None:
            if sock == 'REQ':
                raise ValueError('receive_ahead applies to SUB and PULL clients; '
                                 'a REQ client can ask ahead with prefetch=True')
            if not isinstance(receive_ahead, int) or receive_ahead < 1:
                raise ValueError(f'receive_ahead must be a positive number of trains, '
                                 f'not {receive_ahead!r}')
        if curve_secret_key is not None and curve_server_key is None:
            raise ValueError('curve_secret_key needs curve_server_key (the server\'s public key)')
        self._curve = (None if curve_server_key is None
                       else curve.client_keys(curve_server_key, curve_secret_key))
        self.endpoint = endpoint
        self.sock = sock
        self.timeout = timeout
        self.max_message_size = max_message_size
        self.prefetch = prefetch
        self.receive_ahead = 2 if receive_ahead is None else receive_ahead
        self._own_context = context is None
        if malloc.tuning_wanted(tune_malloc):
            # Before the context exists: its I/O thread, which allocates the
            # received messages, then uses the main heap (glibc serves big
            # blocks in other threads' heaps with mmap whatever the settings).
            malloc.tune_malloc()
        self._context = context or zmq.Context()
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._awaiting_reply = False
        self._disconnects = 0
        self._handshake_failures: dict[int, int] = {}  # event -> count since the last train
        self._connect()

    # -- public API --------------------------------------------------------

    def next(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Receive the next train.

        Returns
        -------
        data : dict
            ``{source: {key: value, 'metadata': {...}}}``
        metadata : dict
            ``{source: {...}}`` (the same dicts as ``data[source]['metadata']``).

        Raises
        ------
        BridgeTimeout
            Nothing arrived within ``timeout`` (a ``TimeoutError``).
        ProtocolError
            The message was malformed; the client stays usable.
        """
        return deserialize(self.next_frames())

    def next_frames(self) -> list[zmq.Frame]:
        """Receive the next train undecoded: its ZeroMQ frames, as the server sent them.

        For passing a train on to another process without decoding it here;
        ``bridge.protocol.deserialize(frames)`` gives what :meth:`next` returns.
        Waits, times out and recovers as :meth:`next` does.

        Raises
        ------
        BridgeTimeout
            Nothing arrived within ``timeout`` (a ``TimeoutError``).
        """
        if self._socket is None:
            raise RuntimeError('Client is closed')
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        self._disconnects = 0
        self._handshake_failures.clear()
        if self.sock == 'REQ' and not self._awaiting_reply:
            try:
                self._request()
            except zmq.Again:
                # No connection took the request within the timeout: ZeroMQ drops a
                # connection whose handshake failed (wrong CURVE keys), and does not retry.
                self._handle_events()
                message = self._timeout_message()
                self._reset()
                raise BridgeTimeout(message) from None

        while True:
            if self._socket.getsockopt(_EVENTS) & _POLLIN:
                # A message is complete (ZeroMQ delivers all parts at once):
                # skip the poll, as when trains arrive faster than we decode.
                return self._receive()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait_ms = None if remaining is None else int(remaining * 1000) + 1
            ready = dict(self._poller.poll(wait_ms))
            if self._socket in ready:
                return self._receive()
            if self._monitor in ready:
                self._handle_events()
            if deadline is not None and time.monotonic() >= deadline and not ready:
                message = self._timeout_message()
                if self.sock == 'REQ' or self._handshake_failures:
                    # SUB/PULL sockets reconnect by themselves, except after a
                    # handshake refused by the server (it may allow us later).
                    self._reset()
                raise BridgeTimeout(message)

    def _receive(self) -> list:
        """The parts of one waiting message (cheaper than recv_multipart per part)."""
        recv = self._socket.recv
        frame = recv(copy=False)
        frames = [frame]
        while frame.more:
            frame = recv(copy=False)
            frames.append(frame)
        self._awaiting_reply = False
        if self.prefetch:
            self._request(wait=False)  # the server sends the next train while this one is used
        return frames

    def _timeout_message(self) -> str:
        msg = (f'No train received from {self.endpoint} ({self.sock}) in the last '
               f'{self.timeout:g} s; is the server running and sending?')
        if self._disconnects:
            msg += f' The connection dropped {self._disconnects} time(s) while waiting'
            if self.max_message_size is not None:
                msg += (f'; a frame larger than max_message_size={self.max_message_size} '
                        'bytes makes ZeroMQ drop the connection (if the server sends such '
                        'trains, pass a bigger max_message_size, or None for no limit)')
            msg += '.'
        msg += self._authentication_hint()
        if self.sock == 'REQ':
            msg += ' The request will be re-sent on the next call.'
        return msg

    def _authentication_hint(self) -> str:
        failures = self._handshake_failures
        if failures.get(zmq.EVENT_HANDSHAKE_FAILED_AUTH):
            return (' The server refused this client\'s CURVE key (authentication failed): '
                    'its public key must be in the directory the server allows '
                    '(--curve-allow); pass the matching secret key (curve_secret_key).')
        if failures:
            what = ('wrong CURVE server key (curve_server_key), or CURVE on one side only'
                    if self._curve is not None else
                    'the server may require CURVE authentication (pass curve_server_key)')
            return (f' The connection handshake failed {sum(failures.values())} time(s): '
                    f'{what}.')
        if self._curve is not None:
            return (' Authentication may be the cause: check that curve_server_key is the '
                    'public key of this server and that it allows this client\'s key.')
        return ''


    def close(self) -> None:
        """Close the socket (and the private ZeroMQ context)."""
        if self._socket is None:
            return
        self._close_sockets()
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def __repr__(self) -> str:
        return f'<bridge.Client {self.sock} {self.endpoint}>'

    # -- socket handling -----------------------------------------------------

    def _connect(self) -> None:
        kind = {'REQ': zmq.REQ, 'SUB': zmq.SUB, 'PULL': zmq.PULL}[self.sock]
        s = self._context.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        if self.sock == 'SUB':
            s.setsockopt(zmq.SUBSCRIBE, b'')
        if self.sock == 'REQ':
            # Allow re-sending a request whose reply will never come; a late
            # reply to the old request is then discarded.
            s.setsockopt(zmq.REQ_RELAXED, 1)
            s.setsockopt(zmq.REQ_CORRELATE, 1)
            if self.timeout is not None:
                # A request finds no connection once a CURVE handshake failed.
                s.setsockopt(zmq.SNDTIMEO, int(self.timeout * 1000) + 1)
        else:
            # Keep few trains buffered so what we read is recent.
            s.setsockopt(zmq.RCVHWM, self.receive_ahead)
        if self.max_message_size is not None:
            s.setsockopt(zmq.MAXMSGSIZE, int(self.max_message_size))
        if self._curve is not None:
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = self._curve
        try:
            s.connect(self.endpoint)
        except zmq.ZMQError as e:
            s.close(linger=0)
            raise ValueError(f'Cannot connect to {self.endpoint!r}: {e}') from None
        self._socket = s
        self._poller = zmq.Poller()
        self._poller.register(s, zmq.POLLIN)
        self._monitor = s.get_monitor_socket(zmq.EVENT_DISCONNECTED | _HANDSHAKE_FAILED)
        self._poller.register(self._monitor, zmq.POLLIN)

    def _close_sockets(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self._socket.close(linger=0)
        self._socket = None

    def _reset(self) -> None:
        """Fresh socket after a timeout: no stale request or late reply survives."""
        self._close_sockets()
        self._awaiting_reply = False
        self._disconnects = 0
        self._connect()

    def _request(self, wait: bool = True) -> None:
        """Ask for a train; ``wait=False``: not now if no connection takes it at once."""
        try:
            self._socket.send(_REQUEST, 0 if wait else zmq.NOBLOCK)
        except zmq.Again:
            if wait:
                raise
            return  # the next call of next() asks again
        self._awaiting_reply = True

    def _handle_events(self) -> None:
        disconnected = False
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event['event'] == zmq.EVENT_DISCONNECTED:
                disconnected = True
                self._disconnects += 1
            elif event['event'] & _HANDSHAKE_FAILED:
                failures = self._handshake_failures
                failures[event['event']] = failures.get(event['event'], 0) + 1
        if not disconnected:
            return
        if self.max_message_size is not None:
            # ZeroMQ does not reconnect after refusing an oversized frame.
            self._close_sockets()
            self._connect()
        if self._awaiting_reply:
            # The server went away with our request: ask again; ZeroMQ
            # delivers it when the server is back.
            self._request(wait=False)
