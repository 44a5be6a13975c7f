"""The live runner's feeder thread, for sources that may block, and how trains are encoded.

:class:`bridge.process.LiveRunner` reads a source that returns within a tick when idle
(:func:`bridge.process_input.client_trains`) in its dispatch loop; any other iterable (a
run's trains, a generator) is read here, in a thread, so that the dispatch loop keeps
serving workers while ``next()`` blocks. Each train crosses to the runner as one message
on an inproc PAIR socket: ``kind + train ID`` (8 bytes, little-endian), then the frames of
:func:`encode_train`; ``END`` ends the input, ``FAILED`` + a text says why it failed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import zmq

from bridge import process_worker as pw
from bridge.process_input import TICK_S, EncodedTrain, train_id_of

__all__ = ["Feeder", "encode_train", "handed_train_id", "END", "FAILED"]

FEED_HWM = 2
END, FAILED = b"E", b"X"  # feeder -> runner, besides the encodings of trains


def encode_train(item) -> tuple[int, bytes, list]:
    """``(train ID or 0, encoding, frames)`` of a source's item, for a worker."""
    if isinstance(item, EncodedTrain):
        return 0, pw.BRIDGE, item.frames  # passed on undecoded: the worker decodes
    data, metadata = item
    return train_id_of(data, metadata), pw.PACKED, pw.pack(data)


def handed_train_id(train_id: int, frames: list | None) -> int:
    """The ID of a train handed to a worker: ``train_id``, or decoded from the undecoded
    ``frames`` it was passed on as (0 if undecodable: the worker would have failed it)."""
    if frames is None:
        return train_id
    try:
        return EncodedTrain(frames).train_id
    except Exception:
        return 0


class Feeder:
    """A thread reading ``source`` into :attr:`inbox`, the runner's end of a PAIR socket.

    Parameters
    ----------
    context : zmq.Context
        The runner's context (inproc sockets need the same one).
    source : iterable of (data, metadata) or EncodedTrain
        Trains; None items (the source is idle) are skipped.
    stop : threading.Event
        Set to stop taking trains: the thread ends within a tick, unless blocked in the
        source's ``next()`` (it is a daemon thread).
    """

    def __init__(self, context: zmq.Context, source: Iterable, stop: threading.Event):
        self._context, self._source, self._stop = context, source, stop
        self.inbox = context.socket(zmq.PAIR)
        self.inbox.setsockopt(zmq.RCVHWM, FEED_HWM)
        self.inbox.setsockopt(zmq.LINGER, 0)
        self._endpoint = f"inproc://feed-{id(self)}"
        try:
            self.inbox.bind(self._endpoint)
        except zmq.ZMQError:
            self.inbox.close(linger=0)  # else the runner's context.term() would wait for it
            raise
        self._thread = threading.Thread(target=self._feed, name="exfel-process-feeder",
                                        daemon=True)

    def start(self) -> None:
        """Start reading (once the first worker is ready: no train dropped for start-up)."""
        self._thread.start()

    def close(self, timeout: float) -> bool:
        """Close :attr:`inbox`, wait for the thread; whether it ended (or never started)."""
        self.inbox.close(linger=0)
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _feed(self) -> None:
        sock = self._context.socket(zmq.PAIR)
        sock.setsockopt(zmq.SNDHWM, FEED_HWM)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self._endpoint)
        source = iter(self._source)
        try:
            for item in source:
                if self._stop.is_set():
                    break
                if item is None:
                    continue  # the source is idle
                tid, kind, frames = encode_train(item)
                if not self._send(sock, [kind + tid.to_bytes(8, "little"), *frames]):
                    break
            else:
                self._send(sock, [END])
        except Exception as exc:
            try:
                self._send(sock, [FAILED, f"{type(exc).__name__}: {exc}".encode()])
            except zmq.ZMQError:
                pass  # the runner is shutting down anyway
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's clean-up (its Client) runs in this thread
            sock.close()

    def _send(self, sock: zmq.Socket, frames: list) -> bool:
        """Send unless stopped meanwhile (under ``wait`` the runner may not read)."""
        if not sock.getsockopt(pw.EVENTS) & pw.POLLOUT:
            while not sock.poll(int(TICK_S * 1000), pw.POLLOUT):
                if self._stop.is_set():
                    return False
        pw.send_frames(sock, frames)
        return True
