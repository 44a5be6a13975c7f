"""Running an analysis live: trains to N worker processes, results to one reducer.

Python API behind ``exfel-bridge process`` (the analysis contract is docs/analysis.md)::

    from bridge.process import LiveRunner, client_trains
    runner = LiveRunner(client_trains(['tcp://host:4545']), 'analysis.py', workers=4,
                        publish='tcp://*:4600', every=1.0, out='result.h5')
    result = runner.run()          # until the stream ends, runner.stop() or Ctrl-C

One process (this one) takes trains from any iterable of ``(data, metadata)`` or
:class:`EncodedTrain` and hands each to an idle worker over a ZeroMQ ROUTER socket.
:func:`client_trains` (a ``bridge.Client``'s trains, passed on undecoded, or the train
matcher's) is read in the dispatch loop itself; other iterables (a run's trains, a
generator) in a feeder thread, their trains pickled. Workers (DEALER) ask for a train
when idle, so no train queues behind a busy worker. When every worker is busy, ``policy``
decides: ``drop`` (count and drop the train) or ``wait`` (stop taking trains: the
source's server applies its own policy). Results come back on the same socket and are
added to the one Reducer here, optionally in arrival order through a bounded reorder
buffer; every ``every`` seconds the partial result is published as a bridge stream.
"""

from __future__ import annotations

import collections
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping

import zmq

from bridge import process_worker as pw
from bridge.process_feeder import END as _END
from bridge.process_feeder import FAILED as _FAILED
from bridge.process_feeder import Feeder, handed_train_id
from bridge.process_feeder import encode_train as _encode
from bridge.process_input import TICK_S as _TICK_S
from bridge.process_input import EncodedTrain, client_trains
from bridge.process_publish import ResultPublisher, result_source
from bridge.process_reduce import LiveReduction
from bridge.process_reorder import ReorderBuffer
from bridge.process_supervisor import WorkerSupervisor
from exfel_data.analysis.contract import AnalysisError, AnalysisSpec, ReducerError, resolve_params
from exfel_data.analysis.pool import exit_text
from exfel_data.analysis.result import AnalysisResult, write_result
from exfel_data.analysis.stats import RunStats
from exfel_data.write.output import check_output

__all__ = ["LiveRunner", "client_trains", "EncodedTrain", "POLICIES", "result_source"]

POLICIES = ("drop", "wait")
# pyzmq's send without its Python wrapper (for options we do not use): a few us less per
# frame, six frames or more per train.
_send = zmq.backend.Socket.send


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LiveRunner:
    """Run an analysis on a live stream with worker processes and one reducer.

    Parameters
    ----------
    source : iterable of (data, metadata) or EncodedTrain
        Trains, e.g. :func:`client_trains` (read in the dispatch loop); any other
        iterable is read in a feeder thread of this process. It may yield None while
        idle, so that a stop request is noticed.
    analysis : str or path-like
        A ``.py`` file or importable module (docs/analysis.md).
    params : dict or iterable of 'name=value', optional
        Parameters, checked against the analysis' ``PARAMS``.
    workers : int
        Worker processes running ``process``.
    publish : str, optional
        Endpoint to serve the partial result on (a bridge stream).
    publish_sock : {'PUB', 'REP'}
        Socket of that server (``PUB``: every viewer gets each update).
    every : float
        Seconds between published partial results (and status calls).
    out : str or path-like, optional
        HDF5 file for the final result, written at the end (temporary name + rename).
    policy : {'drop', 'wait'}
        When every worker is busy: drop the train (counted), or wait for a worker.
    ordered : bool
        Reduce results in the order the trains arrived (bounded by ``reorder_buffer``).
    max_trains : int, optional
        Stop after this many trains were received.
    status : callable, optional
        Called every ``every`` seconds with a dict of counts (for a status line).
    report : callable
        Called with messages: the first ``process`` failure, dead workers.
    """

    def __init__(self, source: Iterable, analysis, params: Mapping | Iterable[str] | None = None,
                 *, workers: int = 1, publish: str | None = None, publish_sock: str = "PUB",
                 every: float = 1.0, out=None, overwrite: bool = False, policy: str = "drop",
                 ordered: bool = False, reorder_buffer: int = 100,
                 max_trains: int | None = None, input_label: str = "",
                 status: Callable[[dict], None] | None = None,
                 report: Callable[[str], None] = _stderr):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.spec = AnalysisSpec.from_path_or_module(analysis)
        self.analysis = self.spec.load()
        self.params = resolve_params(self.analysis, params)
        self.out = check_output(out, overwrite) if out is not None else None
        self.source, self.n_workers, self.every = source, workers, every
        self.publish, self.publish_sock = publish, publish_sock
        self.overwrite, self.policy, self.max_trains = overwrite, policy, max_trains
        self.reorder = ReorderBuffer(reorder_buffer) if ordered else None
        self.input_label, self.status, self.report = input_label, status, report
        self.stats = RunStats()
        self.received = 0
        self.train_ids: list[int] = []
        self._stop = threading.Event()        # the whole run
        self._feed_stop = threading.Event()   # taking trains only
        self._reduction: LiveReduction | None = None
        self._publisher: ResultPublisher | None = None
        # A source that returns within a tick even when idle is read in the dispatch
        # loop itself: no feeder thread sharing the GIL, no hop between threads.
        self._inline = bool(getattr(source, "returns_when_idle", False))
        self._source_iter = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or the run ended)."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the run to end (from another thread or a signal handler); safe to repeat."""
        self._stop.set()
        self._feed_stop.set()

    # -- the run ------------------------------------------------------------------------

    def run(self) -> AnalysisResult:
        """Run until the source ends, :meth:`stop` or Ctrl-C; write and return the result.

        Raises
        ------
        ReducerError
            The reducer raised; what was reduced before is written to ``out`` first.
        AnalysisError
            ``setup`` failed in a worker, or worker processes keep dying.
        """
        self._reduction = LiveReduction(self.analysis, self.spec, self.params, self.stats,
                                        self.train_ids, self.reorder, self.report)
        self._deliver = self._reduction.deliver  # bound once: called for every result
        self._tmpdir = tempfile.mkdtemp(prefix="exfel-process-")
        self._context = zmq.Context()
        self._workers = WorkerSupervisor(f"ipc://{self._tmpdir}/dispatch", self.spec,
                                         self.params, self.n_workers)
        self._current = self._workers.current  # identities of the workers running now
        self._idle: collections.deque = collections.deque()
        self._in_flight: dict[bytes, tuple[int, int, list | None]] = {}
        self._feeder: Feeder | None = None
        self._seq = 0
        error: BaseException | None = None
        stopped = ""
        try:
            self._open_sockets()
            self._workers.start_all()
            # Trains are taken once a worker is ready: none is dropped for start-up.
            self._ready = False
            if self.publish:
                self._publisher = ResultPublisher(self.publish, self.publish_sock,
                                                  self.spec, self.params)
            if self._inline:
                self._loop_inline()
            else:
                self._loop()
        except KeyboardInterrupt:
            pass
        except ReducerError as exc:
            error, stopped = exc, f"the reducer failed at train {exc.train_id}"
        except BaseException as exc:
            error, stopped = exc, str(exc).splitlines()[0] if str(exc) else repr(exc)
        finally:
            self.stop()
            self._shutdown(graceful=error is None and not self._in_flight)
        try:
            result = self._finish(stopped, error)
        finally:
            if self._publisher is not None:
                self._publisher.close()  # the final result leaves before the server stops
        if error is not None:
            raise error
        return result

    def _open_sockets(self) -> None:
        self._router = self._context.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(self._workers.endpoint)
        if not self._inline:
            self._feeder = Feeder(self._context, self.source, self._feed_stop)
            self._feed_in = self._feeder.inbox

    @property
    def worker_pids(self) -> list[int]:
        """Process IDs of the current worker processes."""
        return self._workers.pids

    def _loop(self) -> None:
        """The dispatch loop, with the source read by the feeder thread."""
        both, router_only = zmq.Poller(), zmq.Poller()
        both.register(self._router, zmq.POLLIN)
        both.register(self._feed_in, zmq.POLLIN)
        router_only.register(self._router, zmq.POLLIN)
        router_events = self._router.getsockopt
        feed_events = self._feed_in.getsockopt
        events_opt, pollin = pw.EVENTS, pw.POLLIN
        drop = self.policy == "drop"
        ended = False
        self._start_clock()
        while not self._stop.is_set():
            accept = not ended and (drop or bool(self._idle))
            # Busy: messages already waiting are handled without a poll() system call.
            from_workers = router_events(events_opt) & pollin
            from_feeder = accept and feed_events(events_opt) & pollin
            if not (from_workers or from_feeder):
                poller = both if accept else router_only
                wait = max(0.0, self._next_check - time.monotonic())
                events = dict(poller.poll(int(wait * 1000) + 1))
                from_workers = self._router in events
                from_feeder = self._feed_in in events
            if from_workers:
                while router_events(events_opt) & pollin:
                    self._from_worker()
            if from_feeder:
                ended = self._from_feeder()
            if time.monotonic() >= self._next_check:
                self._on_time()
            if ended and not self._in_flight:
                break

    def _loop_inline(self) -> None:
        """The dispatch loop reading the source itself, between worker messages.

        Per train: one receive from the source, one send to a worker, one receive of
        the result, and one wait for the workers (policy ``wait``: when none is idle)
        or check of their socket (``drop``: before each train). Each such check costs
        as much as a send, hence no more of them.
        """
        router = self._router
        router_events = router.getsockopt
        events_opt, pollin = pw.EVENTS, pw.POLLIN
        workers = zmq.Poller()
        workers.register(router, zmq.POLLIN)
        drop = self.policy == "drop"
        source = self._source_iter = iter(self.source)
        ended = False
        self._start_clock()
        while not self._stop.is_set():
            if ended or not self._ready or not (drop or self._idle):
                # Nothing to take: wait for the workers (their results, their requests).
                if ended and not self._in_flight:
                    break
                wait_ms = int(max(0.0, self._next_check - time.monotonic()) * 1000) + 1
                if workers.poll(wait_ms):
                    self._from_worker()
            elif drop and router_events(events_opt) & pollin:
                self._from_worker()  # results first: they free workers for the next train
            else:
                try:
                    item = next(source)
                    train = None if item is None else _encode(item)
                except StopIteration:
                    ended, train = True, None
                except Exception as exc:
                    self.report(f"Input failed, stopping: {type(exc).__name__}: {exc}")
                    ended, train = True, None
                if train is not None:
                    self.received += 1
                    if not self._idle and router_events(events_opt) & pollin:
                        self._from_worker()  # a worker may have asked meanwhile
                    if not self._dispatch(*train):
                        self.stats.dropped += 1
                    if self.max_trains is not None and self.received >= self.max_trains:
                        ended = True
            if time.monotonic() >= self._next_check:
                self._on_time()

    def _start_clock(self) -> None:
        now = time.monotonic()
        self._next_tick, self._next_publish = now + _TICK_S, now + self.every
        self._next_check = min(self._next_tick, self._next_publish)

    def _on_time(self) -> None:
        """Every tick: replace dead workers; every ``every`` s: publish, call status."""
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + _TICK_S
            self._supervise()
        if now >= self._next_publish:
            self._next_publish = now + self.every
            self._publish()
            if self.status is not None:
                self.status(self.counts())
        self._next_check = min(self._next_tick, self._next_publish)

    def _from_feeder(self) -> bool:
        """Hand waiting trains to idle workers (or drop them); True at the end of input."""
        feed = self._feed_in
        recv, events = feed.recv, feed.getsockopt
        wait = self.policy == "wait"
        while events(pw.EVENTS) & pw.POLLIN:
            if wait and not self._idle:
                return False
            head = recv(copy=False)
            frames = pw.recv_more(recv, head)  # passed on without copies
            head = head.bytes
            kind = head[:1]
            if kind == _END:
                return True
            if kind == _FAILED:
                self.report(f"Input failed, stopping: {frames[0].bytes.decode()}")
                return True
            self.received += 1
            train_id = int.from_bytes(head[1:], "little")
            if not self._dispatch(train_id, kind, frames):
                self.stats.dropped += 1
            if self.max_trains is not None and self.received >= self.max_trains:
                self._stop_feeder()
                return True
        return False

    def _dispatch(self, train_id: int, kind: bytes, frames: list) -> bool:
        header = pw.header(self._seq, train_id, kind)
        router, send = self._router, _send
        while self._idle:
            identity = self._idle.popleft()
            try:
                send(router, identity, pw.SNDMORE)
            except zmq.ZMQError:
                continue  # that worker just went away; try the next one
            send(router, header, pw.SNDMORE)
            last = len(frames) - 1
            for i, frame in enumerate(frames):
                send(router, frame, pw.SNDMORE if i < last else 0, False)
            # Undecoded frames are kept: if the worker dies, they say which train it was.
            self._in_flight[identity] = (self._seq, train_id,
                                         frames if kind == pw.BRIDGE else None)
            self._seq += 1
            return True
        return False

    def _from_worker(self) -> None:
        """Handle one waiting message from a worker."""
        recv = self._router.recv
        identity = recv()
        head = recv(copy=False)
        rest = pw.recv_more(recv, head)
        head = head.bytes
        if head == pw.FATAL:
            raise AnalysisError(f"setup(params) of {self.spec.name} failed in a worker "
                                f"process:\n{rest[0].bytes.decode()}")
        if identity not in self._current:
            return  # a replaced worker's last words
        if not self._ready:
            self._ready = True
            if self._feeder is not None:
                self._feeder.start()
        if len(head) == pw.HEADER_SIZE:
            del self._in_flight[identity]
            self._deliver(*pw.parse_header(head), rest)
        self._idle.append(identity)

    def _supervise(self) -> None:
        """Replace dead workers; the trains they held are lost."""
        for slot, identity, proc in self._workers.dead():
            lost = self._in_flight.pop(identity, None)
            if identity in self._idle:
                self._idle.remove(identity)
            if lost:
                lost = (lost[0], handed_train_id(*lost[1:]))
                self.stats.lose(lost[1])
            what = f"train {lost[1]} lost" if lost else "no train lost"
            self.report(f"Worker process {slot} (pid {proc.pid}) died "
                        f"({exit_text(proc.returncode)}); {what}; starting a replacement")
            if lost:
                self._reduction.lost(*lost)
            self._workers.replace(slot, identity)

    # -- results --------------------------------------------------------------------------

    def counts(self) -> dict:
        """Counts so far: received, in_flight, workers and the :class:`RunStats` ones."""
        return {"received": self.received, "in_flight": len(getattr(self, "_in_flight", ())),
                "workers": self.n_workers, "last_train_id": self.stats.last_train_id,
                **{k: getattr(self.stats, k) for k in RunStats.COUNTS}}

    def _publish(self, data: dict | None = None, final: bool = False) -> None:
        if self._publisher is None or (data is None and not self.stats.reduced):
            return  # partial() is first asked for once there is something reduced
        if data is None:
            data = self._reduction.partial()
        self._publisher.send(data, self.counts(), self._reduction.last_train_id, final)

    def _finish(self, stopped: str, error: BaseException | None) -> AnalysisResult | None:
        """The final result: published once more, written to ``out``; also after errors."""
        try:
            result = self._reduction.final(self.input_label, stopped)
        except ReducerError:
            if error is None:
                raise
            return None  # the first error is the one to report
        result.extra["received"] = self.received
        if self._publisher is not None:
            self._publish(result.data, final=True)
        if self.out is not None:
            write_result(self.out, result, self.overwrite)
            if error is not None and error.args:
                error.args = (f"{error.args[0]}\nStopped; the {self.stats.reduced} "
                              f"trains reduced before were written to {self.out} "
                              "(complete=False).",)
        return result

    # -- shutdown ---------------------------------------------------------------------

    def _stop_feeder(self) -> None:
        # Enough trains: the runner keeps going until the results in flight are in.
        self._feed_stop.set()

    def _shutdown(self, graceful: bool) -> None:
        """Stop every worker (politely if idle, else terminate) and close the sockets."""
        router = getattr(self, "_router", None)
        self._workers.stop(router, graceful)
        # Trains still held by workers stopped before they finished are lost.
        for _, train_id, frames in self._in_flight.values():
            self.stats.lose(handed_train_id(train_id, frames))
        self._in_flight.clear()
        if router is not None:
            router.close(linger=0)
        close = getattr(self._source_iter, "close", None)
        if close is not None:
            close()  # read here (inline): its clean-up (its Client) runs here too
        if self._feeder is None or self._feeder.close(2.0):
            self._context.term()
        # else: the source blocks in next(); its daemon thread ends with the process.
        shutil.rmtree(self._tmpdir, ignore_errors=True)

