"""The server's ZeroMQ socket: how it is set up, sent on, and which thread may use it.

ZeroMQ high-water marks are kept small so that the queueing happens in the server's
:class:`~bridge.send_queue.SendQueue`, where it is bounded and counted, not in socket buffers:
one train under ``drop`` / ``queue``; a few per client under ``wait``, which delivers every
train anyway (this spares a thread wake-up per train).

ZeroMQ sockets are not thread-safe: :class:`SocketOwner` is the one place that decides which
thread may use the socket, and asserts it.
"""
from __future__ import annotations

import threading

import zmq

__all__ = ['SOCKET_TYPES', 'SocketOwner', 'make_socket', 'send_frames']

SOCKET_TYPES = ('REP', 'PUB', 'PUSH')

# Kernel send buffer: small, so that it does not hold dozens of small trains
# (stale data for a slow client), but several loopback segments (64 KiB each)
# so big trains flow at full speed (32 KiB stalls them). Big trains even go
# faster than with the kernel's autotuned MBs: the copies stay in cache.
_SNDBUF = 128 * 1024
# PUSH/PUB high-water mark under 'wait' (at most max_queue): trains ZeroMQ may
# hold per client beyond our queue.
_WAIT_SNDHWM = 4
# Requests and subscriptions are a few bytes: a peer sending more is
# disconnected instead of filling our memory.
_MAX_REQUEST_BYTES = 64 * 1024
# Plain ints: pyzmq's enum flags cost microseconds per frame in the hot loop.
_NOBLOCK = int(zmq.NOBLOCK)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_SNDMORE = int(zmq.SNDMORE)
# Frames smaller than this are copied into ZeroMQ (cheaper than tracking them).
_COPY_THRESHOLD = zmq.COPY_THRESHOLD


def make_socket(context: zmq.Context, sock: str, policy: str, max_queue: int,
                curve_keys: tuple[bytes, bytes] | None = None) -> zmq.Socket:
    """A server socket of type ``sock`` ('REP', 'PUB', 'PUSH'), tuned for ``policy``.

    REP is served by a ROUTER (several REQ clients independently), PUB by an XPUB (its
    subscription messages tell whether anyone listens). ``curve_keys``: the server's
    (public, secret) CURVE key pair; clients must then use CURVE with its public key.
    """
    if sock == 'REP':
        s = context.socket(zmq.ROUTER)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        s.setsockopt(zmq.SNDHWM, 4)
    else:
        s = context.socket(zmq.PUSH if sock == 'PUSH' else zmq.XPUB)
        # wait delivers every train, so freshness does not matter: a few
        # trains in ZeroMQ's pipe spare a thread wake-up per train.
        s.setsockopt(zmq.SNDHWM, min(max_queue, _WAIT_SNDHWM) if policy == 'wait' else 1)
        if sock == 'PUB':
            # wait/queue: a full subscriber makes send() fail instead of losing data.
            s.setsockopt(zmq.XPUB_NODROP, int(policy != 'drop'))
    s.setsockopt(zmq.SNDBUF, _SNDBUF)
    if sock != 'PUSH':
        s.setsockopt(zmq.MAXMSGSIZE, _MAX_REQUEST_BYTES)
    s.setsockopt(zmq.LINGER, 0)
    if curve_keys is not None:
        s.curve_publickey, s.curve_secretkey = curve_keys
        s.curve_server = True
    return s


def send_frames(socket: zmq.Socket, frames: list, flags: int) -> None:
    """send_multipart without its per-part overhead (enum flags, Frame objects)."""
    send = socket.send
    more = flags | _SNDMORE
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        send(frame, more if i < last else flags, copy=len(frame) < _COPY_THRESHOLD)


class SocketOwner:
    """Which thread may use the server socket now.

    The server thread owns the socket. If ``lendable`` (PUSH with ``wait``), it lends the
    socket to ``feed()`` while it has nothing queued: a feeding thread may then send itself
    (:meth:`send_direct`), sparing the hand-over to the server thread. Both sides hold the
    server's ``lock`` while they lend, take back or send directly, so the socket is never used
    by two threads at once; each method asserts its part of that rule.
    """

    def __init__(self, socket: zmq.Socket, lock: threading.Lock, lendable: bool):
        self._socket = socket
        self._lock = lock
        self.lendable = lendable
        self._lent = False
        self._closed = False
        self._thread: int | None = None

    def attach(self) -> None:
        """Called once by the server thread: from now on it owns the socket."""
        assert self._thread is None
        self._thread = threading.get_ident()

    def _assert_thread(self) -> None:
        assert threading.get_ident() == self._thread, 'only the server thread'

    @property
    def socket(self) -> zmq.Socket:
        """The socket, for the server thread while it owns it."""
        self._assert_thread()
        assert not self._lent and not self._closed
        return self._socket

    def lend(self) -> None:
        """Server thread, lock held, nothing queued: ``feed()`` may send directly."""
        self._assert_thread()
        assert self.lendable and self._lock.locked() and not self._closed
        self._lent = True

    def take_back(self) -> None:
        """Server thread, lock held: no direct send can be under way, nor start."""
        self._assert_thread()
        assert self._lock.locked()
        self._lent = False

    @property
    def lent(self) -> bool:
        """Whether a feeding thread (holding the lock) may send directly now."""
        return self._lent

    def send_direct(self, frames: list) -> bool:
        """A feeding thread's own send (lock held, socket lent); False: queue the train."""
        assert self._lent and self._lock.locked() and not self._closed
        socket = self._socket
        try:
            send_frames(socket, frames, _NOBLOCK)
            return True
        except zmq.Again:
            pass
        # send() reads ZeroMQ's "pipe has room again" news at most once a
        # millisecond or so; asking for EVENTS reads it now.
        if not socket.getsockopt(_EVENTS) & _POLLOUT:
            return False  # no client ready: the server thread takes over
        try:
            send_frames(socket, frames, _NOBLOCK)
            return True
        except zmq.Again:
            return False

    def close(self, linger_ms: int) -> None:
        """Server thread: close the socket; a concurrent ``feed()`` never sends on it."""
        self._assert_thread()
        with self._lock:
            self._lent = False
            self._closed = True
            self._socket.close(linger=linger_ms)
