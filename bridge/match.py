"""Join several live bridge streams into one train dict per train ID.

At the facility a detector's modules, slow data and cameras often arrive as separate streams.
:class:`TrainMatcher` receives them (one thread per stream, each with its own
:class:`bridge.Client`, feeding one bounded inbox) and yields ``(data, metadata)`` per train ID:
the union of the sources that arrived for that train, in increasing train-ID order.

A train is emitted as soon as every *required* source has arrived and no *optional* source is
still on its way (its stream has not yet sent this train). One still incomplete after
``timeout`` seconds, or pushed out of the window (``max_trains`` / ``max_bytes``), is emitted
without its missing optional sources or dropped if a required one is missing; both are counted
per missing source in :attr:`TrainMatcher.stats`. A complete train also settles every older one
still waiting (streams deliver in order, so their missing parts are not coming).
"""
from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from bridge.client import BridgeTimeout, Client
from bridge.match_streams import Inbox, InputStream, open_stream, parse_stream, receive

__all__ = ['TrainMatcher', 'parse_stream']

log = logging.getLogger(__name__)

# Period of the housekeeping (timeouts, silent streams) while nothing arrives.
_TICK_S = 0.05
# Messages of a stream between checks whether it runs ahead of the others.
_PACE_EVERY = 8


class _Pending:
    """Parts of one train received so far."""

    __slots__ = ('tid', 'data', 'metadata', 'first_arrival', 'nbytes')

    def __init__(self, tid: int, now: float):
        self.tid = tid
        self.data: dict[str, dict] = {}
        self.metadata: dict[str, dict] = {}
        self.first_arrival = now
        self.nbytes = 0


def _nbytes(props: dict) -> int:
    return sum([v.nbytes for v in props.values() if type(v) is np.ndarray])


class TrainMatcher:
    """Receive several bridge streams and yield one matched train dict per train ID.

    Parameters
    ----------
    streams : sequence
        Each an endpoint string (socket type ``sock``, or a prefix: ``'SUB@tcp://host:4546'``),
        an ``(endpoint, sock)`` pair, or an existing :class:`bridge.Client` (used from the
        matcher's thread from now on; closed by you, not by :meth:`close`). A bare port means
        ``tcp://127.0.0.1:PORT``.
    sock : {'REQ', 'SUB', 'PULL'}
        Socket type of the endpoints given as strings.
    require : sequence of glob, optional
        Sources (globs) a train must have to be emitted; every other source is optional.
        Default: every source seen so far on every stream that is not silent, except
        ``optional`` ones (and until a stream sent anything, ``<no data yet from NAME>``).
    optional : sequence of glob
        Sources a train never waits for beyond what their own stream says: awaited only until
        their stream sends this train (or a later one) or goes silent, and never a reason to
        drop a train.
    timeout : float
        Seconds a train waits for its missing parts after its first part arrived.
    max_trains, max_bytes : int
        Window: trains (and bytes of arrays) held at most while waiting; beyond it the oldest
        is settled (emitted or dropped) at once. Bounds memory whatever the input.
    silent_after : float, optional
        A stream with no message for this long is *silent*: reported in ``stats['silent']``
        and logged; with the default requirements its sources no longer hold trains back.
        Default ``3 * timeout``.
    **client_kw
        Passed to the :class:`bridge.Client` made for each endpoint (``max_message_size``,
        ``tune_malloc``; ``receive_ahead`` to SUB/PULL and ``prefetch`` to REQ clients only).

    Examples
    --------
    >>> with TrainMatcher(['tcp://det:4545', ('tcp://xgm:4546', 'SUB')]) as matcher:
    ...     for data, metadata in matcher:
    ...         process(data)
    """

    def __init__(self, streams: Sequence[str | tuple[str, str] | Client], *, sock: str = 'REQ',
                 require: Iterable[str] | None = None, optional: Iterable[str] = (),
                 timeout: float = 1.0, max_trains: int = 100, max_bytes: int = 2**31,
                 silent_after: float | None = None, **client_kw: Any):
        if isinstance(streams, (str, Client)) or not len(streams):
            raise ValueError('TrainMatcher needs a list of streams (endpoints or Clients), '
                             f'got {streams!r}')
        if timeout <= 0:
            raise ValueError(f'timeout must be positive seconds, not {timeout!r}')
        if max_trains < 1 or max_bytes < 1:
            raise ValueError('max_trains and max_bytes must be at least 1')
        self.require = None if require is None else list(require)
        self.optional = list(optional)
        self.timeout = float(timeout)
        self.max_trains = int(max_trains)
        self.max_bytes = int(max_bytes)
        self.silent_after = 3 * self.timeout if silent_after is None else float(silent_after)

        self._streams: list[InputStream] = []
        try:
            for spec in streams:
                self._streams.append(open_stream(spec, sock, client_kw))
        except BaseException:
            self._close_clients()
            raise
        names = [s.name for s in self._streams]
        if len(set(names)) != len(names):
            self._close_clients()
            raise ValueError(f'A stream is given twice: {names}')

        self._window: dict[int, _Pending] = {}     # kept sorted by train ID
        self._window_bytes = 0
        self._floor: int | None = None              # highest train ID emitted or dropped
        self._ready: deque[tuple[dict, dict]] = deque()
        self._all_sources: set[str] | None = None    # every source seen (cache)
        self._optional_cache: dict[str, bool] = {}
        self._required: set[str] = set()
        self._optional: dict[str, InputStream] = {}     # optional sources of live streams
        self._required_dirty = True
        self._counts = Counter()
        self._dropped_by: Counter = Counter()
        self._incomplete_by: Counter = Counter()
        self._duplicates: Counter = Counter()
        self._start = time.monotonic()
        self._last_tick = 0.0
        self._closed = False

        self._stop = threading.Event()
        # Received messages waiting for the matcher's thread (read here directly).
        inbox = Inbox(max(1, min(2 * len(self._streams) + 8, self.max_trains // 2)),
                      self._stop)
        self._inbox, self._arrived = inbox.items, inbox.arrived
        # A stream this far ahead of the slowest pauses; with what the inbox holds, its
        # lead stays within the window.
        self._max_lead = max(1, self.max_trains - inbox.max_items - len(self._streams)
                             - _PACE_EVERY - 1)
        for index, stream in enumerate(self._streams):
            stream.thread = threading.Thread(target=receive,
                                             args=(stream, index, inbox, self._stop),
                                             daemon=True, name=f'matcher-receive {stream.name}')
            stream.thread.start()

    # -- public API ------------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> tuple[dict, dict]:
        """The next matched train as ``(data, metadata)``.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for a matched train; None (default): as long as it takes.

        Returns
        -------
        tuple of dict
            ``(data, metadata)``, both keyed by source name.

        Raises
        ------
        bridge.BridgeTimeout
            No matched train within ``timeout``; the message gives each stream's status.
        RuntimeError
            The matcher is closed.
        """
        if self._closed:
            raise RuntimeError('TrainMatcher is closed')
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            wait = _TICK_S if self._window else 4 * _TICK_S
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            inbox = self._inbox
            if not inbox:
                self._arrived.clear()
                if not inbox:      # a receiver appends, then sets the event
                    self._arrived.wait(wait)
            # Take everything waiting: one timeout check per batch.
            while inbox:
                self._take(inbox.popleft())
            self._tick(time.monotonic())
            if not self._ready and deadline is not None and time.monotonic() >= deadline:
                raise BridgeTimeout(f'No matched train within {timeout:g} s; stream status: '
                                    f'{self.status_line()}')
        return self._ready.popleft()

    def __iter__(self) -> Iterator[tuple[dict, dict]]:
        return self

    def __next__(self) -> tuple[dict, dict]:
        if self._closed:
            raise StopIteration
        return self.next()

    def close(self) -> None:
        """Stop receiving; close the clients the matcher made. Pending trains are discarded."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for stream in self._streams:
            stream.go.set()
        for stream in self._streams:
            if stream.thread is not None:
                stream.thread.join()
        self._close_clients()
        self._window.clear()
        self._window_bytes = 0

    def __enter__(self) -> TrainMatcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f'<bridge.TrainMatcher {[s.name for s in self._streams]}>'

    @property
    def streams(self) -> list[str]:
        """Names (endpoints) of the input streams."""
        return [s.name for s in self._streams]

    @property
    def stats(self) -> dict[str, Any]:
        """Figures so far.

        ``matched`` (complete trains emitted), ``incomplete`` (emitted without some optional
        sources), ``dropped`` (a required source missing), ``incomplete_by_source`` and
        ``dropped_by_source`` (``{source: trains}``), ``late`` (parts of trains already
        emitted or dropped, discarded), ``duplicates`` (``{source: n}``: a source that came
        again for a train, on another stream; the first was kept), ``resets`` (streams whose
        train ID went backwards), ``errors`` (malformed messages), ``window_trains`` and
        ``window_bytes`` (waiting now), ``silent`` (``{stream: seconds}`` without data) and
        ``streams``: per stream ``messages``, ``rate`` (Hz, recent), ``age`` (seconds between
        a train's timestamp and its arrival, last train), ``silent_s``, ``last_train_id``,
        ``late``, ``errors``, ``resets``, ``sources``.
        """
        now = time.monotonic()
        streams = {}
        for s in self._streams:
            streams[s.name] = dict(
                messages=s.messages, rate=s.rate(), age=s.age, silent_s=now - s.heard(self._start),
                last_train_id=s.last_tid, late=s.late, errors=s.errors, resets=s.resets,
                sources=sorted(s.sources))
        return dict(
            matched=self._counts['matched'], incomplete=self._counts['incomplete'],
            dropped=self._counts['dropped'], late=self._counts['late'],
            resets=self._counts['resets'], errors=self._counts['errors'],
            incomplete_by_source=dict(self._incomplete_by),
            dropped_by_source=dict(self._dropped_by), duplicates=dict(self._duplicates),
            window_trains=len(self._window), window_bytes=self._window_bytes,
            silent={name: st['silent_s'] for name, st in streams.items()
                    if st['silent_s'] >= self.silent_after},
            streams=streams)

    def status_line(self) -> str:
        """One line of the main figures, for progress displays."""
        st = self.stats
        text = f"{st['matched']} matched"
        if st['incomplete']:
            text += f", {st['incomplete']} incomplete"
        if st['dropped']:
            worst = sorted(st['dropped_by_source'].items(), key=lambda kv: -kv[1])[:2]
            text += f", {st['dropped']} dropped (missing " + ', '.join(
                f'{src} x{n}' for src, n in worst) + ')'
        if st['late']:
            text += f", {st['late']} late parts"
        rates = ' '.join(f"{v['rate']:.1f}" for v in st['streams'].values())
        text += f" | window {st['window_trains']} | in Hz: {rates}"
        if st['silent']:
            text += ' | silent: ' + ', '.join(f'{name} {sec:.0f} s'
                                               for name, sec in st['silent'].items())
        return text

    def _close_clients(self) -> None:
        for stream in self._streams:
            if stream.own:
                stream.client.close()

    # -- matching --------------------------------------------------------------------------

    def _take(self, item) -> None:
        index, data, metadata, arrived, wall = item
        stream = self._streams[index]
        if data is None:
            if arrived < 0:
                raise RuntimeError(f'Receiving from {stream.name} failed: {metadata!r}') \
                    from metadata
            stream.errors += 1
            self._counts['errors'] += 1
            log.warning('Malformed message from %s skipped: %s', stream.name, metadata)
            return
        stream.messages += 1
        stream.last_arrival = arrived
        stream.arrivals.append(arrived)
        if stream.silent:
            stream.silent = False
            self._required_dirty = True
            log.info('%s sends again', stream.name)
        by_tid: dict[int, list[str]] = {}
        known = stream.sources
        stamp = None
        for source, meta in metadata.items():
            tid = meta.get('timestamp.tid')
            if tid is None:
                stream.errors += 1
                self._counts['errors'] += 1
                continue
            stamp = meta.get('timestamp', stamp)
            sources = by_tid.get(tid)
            if sources is None:
                by_tid[tid] = [source]
            else:
                sources.append(source)
            if source not in known:
                known.add(source)
                self._all_sources = None
                self._required_dirty = True
        if stamp is not None:
            stream.age = wall - float(stamp)
        if not by_tid:
            return
        newest = int(max(by_tid))
        if stream.last_tid is not None and newest < stream.last_tid - self.max_trains:
            self._reset(stream, newest)
        if stream.last_tid is None or newest > stream.last_tid:
            stream.last_tid = newest
        for tid, sources in (sorted(by_tid.items()) if len(by_tid) > 1 else by_tid.items()):
            self._add(stream, int(tid), sources, data, metadata, arrived)
        if stream.messages % _PACE_EVERY == 0:
            self._pace()

    def _pace(self) -> None:
        """Hold back streams running ahead of the others (e.g. replays served flat out).

        A stream nearly a window ahead of the slowest live one stops receiving until
        the others catch up: its server waits or drops by its own policy, instead of the
        matcher dropping trains that the slower streams are about to deliver. Far larger gaps
        are different numberings (a restart), not a lead.
        """
        live = [s.last_tid for s in self._streams if s.last_tid is not None and not s.silent]
        if self._window and any(s.last_tid is None and not s.silent for s in self._streams):
            live.append(next(iter(self._window)))   # a stream yet to start: wait for it
        slowest = min(live) if len(live) > 1 else None
        for s in self._streams:
            gap = 0 if slowest is None or s.last_tid is None or s.silent else s.last_tid - slowest
            ahead = self._max_lead < gap <= 10 * self.max_trains
            if ahead == s.go.is_set():
                if ahead:
                    s.go.clear()
                else:
                    s.go.set()

    def _reset(self, stream: InputStream, tid: int) -> None:
        """The stream went back in train IDs (restarted DAQ, new run): start again there."""
        stream.resets += 1
        self._counts['resets'] += 1
        log.warning('%s went back from train %s to %s: matching from there',
                    stream.name, stream.last_tid, tid)
        # Trains of the old numbering are settled now; those near the new one (other
        # streams that restarted first) keep waiting.
        for old in [t for t in self._window if t > tid + self.max_trains]:
            self._settle(old)
        stream.last_tid = tid
        self._floor = min([tid, *self._window]) - 1

    def _add(self, stream: InputStream, tid: int, sources: list[str], data: dict, metadata: dict,
             now: float) -> None:
        if self._floor is not None and tid <= self._floor:
            stream.late += 1
            self._counts['late'] += 1
            return
        pending = self._window.get(tid)
        if pending is None:
            pending = _Pending(tid, now)
            last = next(reversed(self._window), None)
            self._window[tid] = pending
            if last is not None and tid < last:   # rare: keep the window sorted
                self._window = dict(sorted(self._window.items()))
        for source in sources:
            if source in pending.data:
                self._duplicates[source] += 1
                continue
            props = data[source]
            pending.data[source] = props
            pending.metadata[source] = metadata[source]
            size = _nbytes(props)
            pending.nbytes += size
            self._window_bytes += size
        if self._required_dirty:
            self._update_required()
        if self._complete(pending):
            # Older trains still waiting will not complete: their streams moved on.
            while True:
                oldest = next(iter(self._window))
                self._settle(oldest)
                if oldest == tid:
                    break
        while self._window and (len(self._window) > self.max_trains
                                or self._window_bytes > self.max_bytes):
            self._settle(next(iter(self._window)))

    def _is_optional(self, source: str) -> bool:
        known = self._optional_cache.get(source)
        if known is None:
            known = any(fnmatch.fnmatchcase(source, g) for g in self.optional) or (
                self.require is not None
                and not any(fnmatch.fnmatchcase(source, g) for g in self.require))
            self._optional_cache[source] = known
        return known

    def _update_required(self) -> None:
        required = set()
        for stream in self._streams:
            if self.require is None and stream.silent:
                continue
            if self.require is None and not stream.sources:
                required.add(f'<no data yet from {stream.name}>')
            required.update(s for s in stream.sources if not self._is_optional(s))
        if self.require is not None:
            for glob in self.require:
                if not any(fnmatch.fnmatchcase(s, glob) for s in required):
                    required.add(glob)   # nothing matches yet: a placeholder, never present
        self._required = required
        self._optional = {source: stream for stream in self._streams if not stream.silent
                          for source in stream.sources if source not in required}
        # Streams yet to send anything may carry optional sources: await them (until silent).
        self._optional.update({f'<no data yet from {stream.name}>': stream
                               for stream in self._streams
                               if not stream.silent and not stream.sources})
        self._required_dirty = False

    def _complete(self, pending: _Pending) -> bool:
        """Every required source is there, and no optional one is still on its way.

        An optional source is awaited only while its stream has not yet sent a train at or
        after this one: a source absent from its stream's message for this train (a camera
        at a lower rate) is not coming, and a silent stream is not waited for at all.
        """
        data = pending.data
        if not self._required.issubset(data):
            return False
        for source, stream in self._optional.items():
            if source not in data and (stream.last_tid is None or stream.last_tid < pending.tid):
                return False
        return True

    def _settle(self, tid: int) -> None:
        """Emit train ``tid`` (complete or without optional sources) or drop it."""
        pending = self._window.pop(tid)
        self._window_bytes -= pending.nbytes
        self._floor = tid if self._floor is None else max(self._floor, tid)
        missing = self._required.difference(pending.data)
        if missing:
            self._counts['dropped'] += 1
            self._dropped_by.update(missing)
            return
        if self._all_sources is None:
            self._all_sources = set().union(*(s.sources for s in self._streams)).union(
                f'<no data yet from {s.name}>' for s in self._streams if not s.sources)
        absent = self._all_sources.difference(pending.data)
        if absent:
            self._counts['incomplete'] += 1
            self._incomplete_by.update(absent)
        else:
            self._counts['matched'] += 1
        self._ready.append((pending.data, pending.metadata))

    def _tick(self, now: float) -> None:
        """Settle timed-out trains and notice silent streams."""
        if now - self._last_tick >= _TICK_S:
            self._last_tick = now
            for stream in self._streams:
                since = stream.heard(self._start)
                silent = now - since >= self.silent_after
                if silent != stream.silent:
                    stream.silent = silent
                    self._required_dirty = True
                    if silent:
                        log.warning('No data from %s for %.1f s', stream.name, now - since)
                    self._pace()
        if self._required_dirty:
            self._update_required()
        while self._window:
            oldest = next(iter(self._window.values()))
            if self._complete(oldest) or now - oldest.first_arrival >= self.timeout:
                self._settle(oldest.tid)
            else:
                break
