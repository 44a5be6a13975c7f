"""The live runner's worker processes: started, replaced when they die, stopped at the end.

Each worker (``python -m bridge.process_worker``) reads its settings pickled on stdin and
connects to the runner's ROUTER socket as ``w{slot}.{generation}``: a replacement has a
new identity, so the last words of the worker it replaces are recognised and ignored.
Too many deaths in a short time stop the run rather than start workers forever.
"""

from __future__ import annotations

import collections
import os
import pickle
import subprocess
import sys
import time

import zmq

from bridge import process_worker as pw
from exfel_data.analysis.contract import AnalysisError, AnalysisSpec

__all__ = ["WorkerSupervisor", "DEATHS_WINDOW_S"]

DEATHS_WINDOW_S = 10.0


class WorkerSupervisor:
    """Start, replace and stop the worker processes of a :class:`bridge.process.LiveRunner`.

    Parameters
    ----------
    endpoint : str
        The runner's ROUTER socket, which the workers connect to.
    spec : AnalysisSpec
        The analysis each worker loads.
    params : dict
        Its resolved parameters.
    n_workers : int
        Worker processes kept running.
    """

    def __init__(self, endpoint: str, spec: AnalysisSpec, params: dict, n_workers: int):
        self.endpoint, self.spec, self.params, self.n_workers = endpoint, spec, params, n_workers
        self.by_slot: dict[int, tuple[bytes, subprocess.Popen]] = {}
        self.current: set[bytes] = set()  # identities of the workers running now
        self._deaths: collections.deque = collections.deque()

    @property
    def pids(self) -> list[int]:
        """Process IDs of the current worker processes."""
        return [proc.pid for _, proc in self.by_slot.values()]

    def start_all(self) -> None:
        """Start the first generation of every worker."""
        for slot in range(self.n_workers):
            self._start(slot, 0)

    def _start(self, slot: int, generation: int) -> None:
        identity = f"w{slot}.{generation}".encode()
        # The runner's import path, so that the worker finds bridge (and an analysis given
        # as a module) wherever they came from (a checkout, a notebook's sys.path).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.Popen([sys.executable, "-m", "bridge.process_worker"],
                                stdin=subprocess.PIPE, env=env)
        with proc.stdin:
            pickle.dump({"endpoint": self.endpoint, "identity": identity, "spec": self.spec,
                         "params": self.params, "parent_pid": os.getpid()}, proc.stdin)
        old = self.by_slot.get(slot)
        if old is not None:
            self.current.discard(old[0])
        self.by_slot[slot] = (identity, proc)
        self.current.add(identity)

    def dead(self) -> list[tuple[int, bytes, subprocess.Popen]]:
        """``(slot, identity, process)`` of each worker process that has exited."""
        return [(slot, identity, proc) for slot, (identity, proc) in self.by_slot.items()
                if proc.poll() is not None]

    def replace(self, slot: int, identity: bytes) -> None:
        """Start the next generation of the dead worker ``identity`` in ``slot``.

        Raises
        ------
        AnalysisError
            More than ``max(3, 2 * n_workers)`` workers died within ``DEATHS_WINDOW_S``.
        """
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - DEATHS_WINDOW_S:
            self._deaths.popleft()
        if len(self._deaths) > max(3, 2 * self.n_workers):
            raise AnalysisError(f"{len(self._deaths)} worker processes died within "
                                f"{DEATHS_WINDOW_S:g} s; stopping (see the messages above)")
        self._start(slot, int(identity.split(b".")[1]) + 1)

    def stop(self, router: zmq.Socket | None, graceful: bool) -> None:
        """Stop every worker: asked through ``router`` if ``graceful`` (5 s to finish),
        then terminated, then killed."""
        workers = [proc for _, proc in self.by_slot.values()]
        if graceful and router is not None:
            for identity, proc in self.by_slot.values():
                if proc.poll() is None:
                    try:
                        router.send_multipart([identity, pw.STOP])
                    except zmq.ZMQError:
                        pass
        deadline = time.monotonic() + (5.0 if graceful else 0.0)
        for proc in workers:
            _wait(proc, deadline - time.monotonic())
            if proc.poll() is None:
                proc.terminate()
        for proc in workers:
            if not _wait(proc, 2.0):
                proc.kill()
                _wait(proc, 2.0)


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(max(0.0, timeout))
    except subprocess.TimeoutExpired:
        return False
    return True
