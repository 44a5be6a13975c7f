"""Local worker processes for ``exfel-data process --workers N`` that survive a death.

A worker process that dies (segfault, killed, ``os._exit``) fails only the task it held,
with :class:`WorkerDied`, and a new worker takes its place; ``concurrent.futures``'
pool would fail every pending task and refuse new ones (BrokenProcessPool), and
``multiprocessing.Pool`` would wait forever. Each worker holds one task at a time, so
the task a dead worker held is known.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
from concurrent.futures import Future
from multiprocessing.connection import wait

from ..signals import check_interrupt, mark_worker

__all__ = ["LocalPool", "WorkerDied"]

_POLL_S = 0.2


class WorkerDied(Exception):
    """The worker process running a task died; the task's work is lost.

    ``description`` says what died, as a sentence start (``'Worker process 4242 died
    (killed by SIGKILL)'``); it is the exception's message.
    """

    def __init__(self, pid: int | None, exitcode: int | None, description: str | None = None):
        self.pid, self.exitcode = pid, exitcode
        self.description = description or f"Worker process {pid} died ({exit_text(exitcode)})"
        super().__init__(self.description)


def exit_text(code: int | None) -> str:
    """``'killed by SIGKILL'`` / ``'exit code 3'`` for a process' exit code."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Worker:
    def __init__(self, context):
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=_worker_main, args=(child, os.getpid()),
                                    daemon=True, name="exfel-process-worker")
        self.proc.start()
        child.close()
        self.task: Future | None = None


class LocalPool:
    """N worker processes, each running one task at a time; dead ones are replaced.

    Forked where the platform can (call it before the parent opens files), else spawned.
    Results are collected while the caller waits in :meth:`result`.

    Parameters
    ----------
    n : int
        Worker processes.
    """

    def __init__(self, n: int):
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._context = multiprocessing.get_context(method)
        self._workers = [_Worker(self._context) for _ in range(n)]
        self._waiting: collections.deque = collections.deque()

    @property
    def pids(self) -> list[int]:
        """Process IDs of the current workers."""
        return [w.proc.pid for w in self._workers]

    def submit(self, fn, *args) -> Future:
        """Run ``fn(*args)`` in a worker (both must pickle); its future."""
        future: Future = Future()
        self._waiting.append((future, fn, args))
        self._hand_out()
        return future

    def result(self, future: Future):
        """Wait for ``future``'s result, meanwhile collecting the others' and replacing
        dead workers. Raises what the task raised, or :class:`WorkerDied`."""
        while not future.done():
            check_interrupt()  # SIGTERM / Ctrl-C under stop_on_signals
            busy = [w for w in self._workers if w.task is not None]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                             _POLL_S))
            for i, worker in enumerate(self._workers):
                if worker.task is None or not (worker.conn in ready
                                               or worker.proc.sentinel in ready):
                    continue
                self._collect(i, worker)
            self._hand_out()
        return future.result()

    def _collect(self, i: int, worker: _Worker) -> None:
        task, message = worker.task, None
        try:
            if worker.conn.poll():
                message = worker.conn.recv()
        except (EOFError, OSError):
            message = None
        if message is not None:
            worker.task = None
            ok, value = message
            task.set_result(value) if ok else task.set_exception(value)
            return
        if worker.proc.is_alive():
            return  # woken by a partial message: the rest follows
        worker.proc.join()
        worker.conn.close()
        task.set_exception(WorkerDied(worker.proc.pid, worker.proc.exitcode))
        self._workers[i] = _Worker(self._context)

    def _hand_out(self) -> None:
        for worker in self._workers:
            if not self._waiting:
                return
            if worker.task is None:
                future, fn, args = self._waiting.popleft()
                worker.task = future
                worker.conn.send((fn, args))

    def shutdown(self, terminate: bool = False) -> None:
        """Stop the workers: at once (``terminate``), else after their current task."""
        for future, _, _ in self._waiting:
            future.cancel()
        self._waiting.clear()
        for worker in self._workers:
            if terminate:
                worker.proc.terminate()  # also on Ctrl-C: no worker keeps reading
            else:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass  # already gone
        for worker in self._workers:
            worker.proc.join(5.0)
            if worker.proc.is_alive():
                worker.proc.kill()
                worker.proc.join(2.0)
            worker.conn.close()


def _worker_main(conn, parent_pid: int) -> None:
    mark_worker()  # the parent alone handles Ctrl-C and stops us
    while True:
        if not conn.poll(_POLL_S * 5):
            if os.getppid() != parent_pid:
                return  # the parent is gone: do not linger as an orphan
            continue
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, args = task
        try:
            message = (True, fn(*args))
        except Exception as exc:
            message = (False, exc)
        try:
            conn.send(message)
        except Exception as exc:  # the result or the exception does not pickle
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc} (sending back the "
                                           f"result of {getattr(fn, '__name__', fn)})")))
