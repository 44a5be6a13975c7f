"""A worker process of ``exfel-bridge process``: asks for a train, runs ``process``, repeats.

The wire between the runner (a ROUTER socket) and each worker (a DEALER) carries:

- worker -> runner: ``[b'R']`` ready (once, after ``setup``); ``[b'F', traceback]`` setup
  failed; ``[done, ...]`` done with a train, which also asks for the next: ``done`` is
  the train's header (below) with a status byte instead of the encoding: ``b'0'`` + the
  packed result, ``b'N'`` (process returned None), ``b'E'`` + exception type +
  traceback.
- runner -> worker: ``[header, *train]`` or ``[b'S']`` stop. ``header``: sequence
  number and train ID (two little-endian uint64; the ID 0 if the runner did not decode
  the train) and how the train is encoded: ``b'P'`` packed ``data`` dict, ``b'B'`` the
  frames of a bridge message as a client received them (the runner passes them on
  without decoding; the worker decodes them and reports the train ID).

Packed: pickle protocol 5; arrays of 64 kB and more travel as frames of their own,
without copies, and arrive read-only as from a ``bridge.Client``; smaller ones inside the
pickle (fewer frames). Cheaper than the bridge protocol for this private hop (~2x for
small trains), and it keeps every value type.

A worker gets a train only after it asked for one, so no train waits behind a busy
worker. It exits when told to stop or when the runner process is gone.
"""

from __future__ import annotations

import os
import pickle
import sys

import zmq

from exfel_data.signals import mark_worker

READY, FATAL, STOP = b"R", b"F", b"S"
RESULT, EMPTY, ERROR = b"0", b"N", b"E"
PACKED, BRIDGE = b"P", b"B"
HEADER_SIZE = 17
_POLL_MS = 500
# Plain ints: pyzmq's enum constants cost microseconds per use.
SNDMORE = int(zmq.SNDMORE)
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)


def header(seq: int, train_id: int, kind: bytes) -> bytes:
    """The first frame of a train (``kind``: encoding) or of its answer (status)."""
    return seq.to_bytes(8, "little") + train_id.to_bytes(8, "little") + kind


def parse_header(head: bytes) -> tuple[int, int, bytes]:
    """``(seq, train_id, kind)`` of a :func:`header`."""
    return (int.from_bytes(head[:8], "little"), int.from_bytes(head[8:16], "little"),
            head[16:17])


def recv_more(recv, frame: zmq.Frame) -> list:
    """The remaining parts of a message whose part ``frame`` was just received, as
    ``zmq.Frame`` objects (no copies; ``frame.more`` is cheaper than ``RCVMORE``)."""
    frames = []
    while frame.more:
        frame = recv(copy=False)
        frames.append(frame)
    return frames


def send_frames(sock: zmq.Socket, frames: list) -> None:
    """Send a multipart message: small frames copied (cheaper), big ones without copies."""
    send = sock.send
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        if isinstance(frame, zmq.Frame):
            send(frame, SNDMORE if i < last else 0)
        else:
            send(frame, SNDMORE if i < last else 0, copy=len(frame) < zmq.COPY_THRESHOLD)


def _parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> None:
    """``python -m bridge.process_worker``: its arguments come pickled on stdin.

    A fresh interpreter, not multiprocessing: the user's main script (or notebook) is not
    imported again in the worker, and no thread or socket of the runner is inherited.
    """
    # Ctrl-C reaches the whole process group: the runner alone handles it and stops us.
    mark_worker()
    worker_main(**pickle.load(sys.stdin.buffer))


def worker_main(endpoint: str, identity: bytes, spec, params: dict, parent_pid: int) -> None:
    """Serve trains from the runner at ``endpoint`` until told to stop."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.LINGER, 2000)  # the last result still leaves when we stop
    sock.connect(endpoint)
    try:
        from exfel_data.analysis.contract import user_traceback

        try:
            analysis = spec.load()
            analysis.prepare_worker(params)
        except Exception as exc:
            sock.send_multipart([FATAL, user_traceback(exc).encode()])
            return
        sock.send(READY)
        _serve(sock, analysis, params, parent_pid)
    finally:
        sock.close()
        context.term()


def _serve(sock: zmq.Socket, analysis, params: dict, parent_pid: int) -> None:
    # A blocking receive with a timeout: cheaper per train than poll() then recv().
    sock.setsockopt(zmq.RCVTIMEO, _POLL_MS)
    recv = sock.recv
    while True:
        try:
            head = recv(copy=False)
        except zmq.Again:
            if not _parent_alive(parent_pid) or os.getppid() == 1:
                sock.setsockopt(zmq.LINGER, 0)  # nobody will read what is unsent
                return  # the runner is gone: do not linger as an orphan
            continue
        frames = recv_more(recv, head)
        head = head.bytes
        if head == STOP:
            return
        seq, train_id, kind = parse_header(head)
        try:
            data = _decode(kind, frames)
        except Exception as exc:  # a malformed message fails this train only
            data, result, error_type = None, None, type(exc).__name__
            tb = f"The train could not be decoded: {error_type}: {exc}"
        else:
            if kind == BRIDGE:
                data, train_id = data
            result, error_type, tb = analysis.call_process(train_id, data, params)
        del data, frames  # free the train's frames before the result goes out
        if error_type is not None:
            reply = [header(seq, train_id, ERROR), error_type.encode(), tb.encode()]
        elif result is None:
            reply = [header(seq, train_id, EMPTY)]
        else:
            reply = _result_frames(header(seq, train_id, RESULT), result)
        send_frames(sock, reply)


def _decode(kind: bytes, frames: list):
    """The packed ``data`` dict, or for bridge frames ``(data, train_id)``."""
    if kind == BRIDGE:
        from bridge.process_input import train_id_of
        from bridge.protocol import deserialize

        data, metadata = deserialize(frames)
        return data, train_id_of(data, metadata)
    return unpack(frames)


def pack(obj) -> list:
    """Frames of ``obj``: its pickle (protocol 5), then its big buffers out of band.

    Arrays under 64 kB stay inside the pickle (one frame is cheaper than several).
    """
    buffers: list = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        raw = buffer.raw()  # a memoryview: len() in bytes
        if len(raw) < zmq.COPY_THRESHOLD:
            return True  # true: serialised in band
        buffers.append(raw)
        return False

    return [pickle.dumps(obj, protocol=5, buffer_callback=out_of_band), *buffers]


def unpack(frames: list):
    """The object of :func:`pack`'s frames (``zmq.Frame`` objects; arrays stay views)."""
    return pickle.loads(frames[0].buffer, buffers=[f.buffer for f in frames[1:]])


def _result_frames(done: bytes, result) -> list:
    try:
        return [done, *pack(result)]
    except Exception as exc:
        text = (f"process() returned a {type(result).__name__} that cannot be sent to the "
                f"reducer (not picklable): {exc}")
        return [done[:16] + ERROR, type(exc).__name__.encode(), text.encode()]


if __name__ == "__main__":
    main()
