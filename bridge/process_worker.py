"""A worker process of ``exfel-bridge process``: asks for a train, runs ``process``, repeats.

The wire between the runner (a ROUTER socket) and each worker (a DEALER) carries:

- worker -> runner: ``[b'R']`` ready (once, after ``setup``); ``[b'F', traceback]`` setup
  failed; ``[b'D', header, status, ...]`` done with a train, which also asks for the next:
  status ``b'0'`` + the packed result, ``b'N'`` (process returned None), ``b'E'`` +
  exception type + traceback.
- runner -> worker: ``[header, *packed train dict]`` (``header`` = sequence number and
  train ID as two little-endian uint64) or ``[b'S']`` stop.

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

READY, FATAL, DONE, STOP = b"R", b"F", b"D", b"S"
RESULT, EMPTY, ERROR = b"0", b"N", b"E"
_POLL_MS = 500
# Plain ints: pyzmq's enum constants cost microseconds per use.
SNDMORE = int(zmq.SNDMORE)
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)


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
    while True:
        if not sock.poll(_POLL_MS):
            if not _parent_alive(parent_pid) or os.getppid() == 1:
                sock.setsockopt(zmq.LINGER, 0)  # nobody will read what is unsent
                return  # the runner is gone: do not linger as an orphan
            continue
        frames = sock.recv_multipart(copy=False)
        header = frames[0].bytes
        if header == STOP:
            return
        train_id = int.from_bytes(header[8:16], "little")
        data = unpack(frames[1:])
        result, error_type, tb = analysis.call_process(train_id, data, params)
        del data, frames  # free the train's frames before the result goes out
        if error_type is not None:
            reply = [DONE, header, ERROR, error_type.encode(), tb.encode()]
        elif result is None:
            reply = [DONE, header, EMPTY]
        else:
            reply = _result_frames(header, result)
        send_frames(sock, reply)


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


def _result_frames(header: bytes, result) -> list:
    try:
        return [DONE, header, RESULT, *pack(result)]
    except Exception as exc:
        text = (f"process() returned a {type(result).__name__} that cannot be sent to the "
                f"reducer (not picklable): {exc}")
        return [DONE, header, ERROR, type(exc).__name__.encode(), text.encode()]


if __name__ == "__main__":
    main()
