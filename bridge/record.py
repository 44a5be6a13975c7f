"""Record a live stream (train dicts) into an EXDF run folder that RunDirectory opens.

Trains are buffered (bounded in trains and bytes) and appended to growable datasets of the
current sequence file through :class:`exfel_data.write.exdf_writer.ExdfWriter`; a sequence file
is written under a temporary name and renamed when it holds ``sequence_size`` trains (or on
:meth:`Recorder.close`), so every finished file stays valid whatever happens later.

Sources with ``:`` in their name go to INSTRUMENT (index group = first key component), the others
to CONTROL (``x.value`` / ``x.timestamp``; a key ``x`` is stored as ``x.value``), as the DAQ names
them. Each key is stored as one entry per train with the dtype and shape it arrived with.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exfel_data.write.exdf_writer import STRING_DTYPE, ExdfWriter, train_timestamps

__all__ = ['Recorder', 'RecordError']

log = logging.getLogger(__name__)

# Entries above this are written train by train instead of stacked into one block first.
_STACK_LIMIT = 1 << 20


class RecordError(ValueError):
    """The recording cannot start or go on (output folder in use, bad option)."""


@dataclass(frozen=True)
class _Spec:
    """How one key is stored: dtype and entry shape (strings as variable-length)."""
    dtype: Any
    shape: tuple

    def describe(self) -> str:
        kind = 'string' if self.dtype is STRING_DTYPE else str(np.dtype(self.dtype))
        return f'{kind} {self.shape}'


def _storable(value) -> tuple[np.ndarray, _Spec] | str:
    """The value as an array and its storage spec, or why it cannot be stored."""
    if value is None:
        return 'None has no HDF5 representation'
    if isinstance(value, (list, tuple)):
        try:
            items = np.asarray(value, dtype=object)
        except ValueError:
            items = None
        if items is None or any(isinstance(v, (list, tuple)) for v in items.flat):
            return 'ragged nested lists cannot be stored'
        kinds = {isinstance(v, (str, bytes)) for v in items.flat}
        if len(kinds) > 1:
            return 'lists mixing strings and numbers cannot be stored'
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except ValueError:
        return 'ragged nested lists cannot be stored'
    kind = arr.dtype.kind
    if kind in 'biufc':
        return arr, _Spec(arr.dtype, arr.shape)
    if kind in 'US' or (kind == 'O' and all(isinstance(v, (str, bytes)) for v in arr.flat)):
        return arr, _Spec(STRING_DTYPE, arr.shape)
    return f'values of dtype {arr.dtype} (mixed or nested lists, structs) cannot be stored'


def _control_name(key: str) -> tuple[str, bool]:
    """(dataset key, is a timestamp) of a control key as the train dict names it."""
    if key.endswith('.timestamp'):
        return key[:-len('.timestamp')], True
    if key.endswith('.value'):
        return key[:-len('.value')], False
    return key, False


def _check_free(folder: Path) -> None:
    if folder.exists():
        if not folder.is_dir():
            raise RecordError(f'{folder} exists and is not a folder')
        used = sorted(p.name for p in folder.iterdir() if p.suffix == '.h5')
        if used:
            raise RecordError(f'{folder} already holds a run ({used[0]}, ...); '
                              'record into a new or empty folder')


class _Sequence:
    """One sequence file being written: its writer, layout and rows so far."""

    def __init__(self, path: Path, number: int, run: int, proposal: int):
        self.writer = ExdfWriter(path, np.zeros(0, np.uint64), run_number=run,
                                 proposal=proposal, sequence=number)
        self.layout: dict[str, dict[str, _Spec]] = {}   # source -> key -> spec
        self.rows: dict[tuple[str, str], int] = {}       # (source, dataset key) -> rows
        self.trains = 0

    def declare(self, source: str, layout: dict[str, _Spec], sequence_size: int) -> None:
        w = self.writer
        if ':' in source:
            w.add_instrument_source(source, {k.partition('.')[0]: 0 for k in layout})
        else:
            w.add_control_source(source, counts=0)
        add = w.add_instrument_key if ':' in source else w.add_control_key
        for key, spec in layout.items():
            # About 1 MiB per chunk, but no bigger than a whole file's rows need.
            row = max(1, int(np.prod(spec.shape, dtype=np.int64))
                      * np.dtype(spec.dtype).itemsize)
            chunks = (max(1, min(sequence_size, 2**20 // row)),) + tuple(
                max(1, n) for n in spec.shape)
            add(source, key, spec.dtype, spec.shape, growable=True, chunks=chunks)
        self.layout[source] = layout


class Recorder:
    """Write train dicts into a run folder, one sequence file per ``sequence_size`` trains.

    Parameters
    ----------
    out_dir : str or Path
        Run folder to create (or an empty existing folder). Files are named
        ``RAW-R{run:04d}-DA01-S{n:05d}.h5``.
    sources : sequence of glob
        Only sources matching one of these globs are recorded.
    sequence_size : int
        Trains per sequence file.
    run, proposal : int
        Written to each file's METADATA (and the file names).
    buffer_trains, buffer_bytes : int
        Trains are written in blocks of at most this many trains / bytes of arrays (bounded
        memory; big trains are written one at a time).

    Notes
    -----
    A source appearing late joins the current file (earlier trains have no rows of it). When
    a source's keys, dtypes or shapes change, the following trains go to a new run folder
    (``OUT_DIR_part2``, ...; :attr:`run_dirs`), with a note in :attr:`notes`: the files of one
    run must agree on them, or readers refuse the key. Keys that cannot be stored (``None``,
    mixed lists; instrument keys without an index group) are left out with a note. A train ID
    not above the last recorded one (a restarted stream) is not recorded (counted in
    ``stats['skipped']``).
    """

    def __init__(self, out_dir: str | os.PathLike, *, sources: Sequence[str] = ('*',),
                 sequence_size: int = 500, run: int = 1, proposal: int = 0,
                 buffer_trains: int = 32, buffer_bytes: int = 64 * 2**20):
        if sequence_size < 1 or buffer_trains < 1 or buffer_bytes < 1:
            raise RecordError('sequence_size, buffer_trains and buffer_bytes must be at least 1')
        self.out_dir = Path(out_dir)
        _check_free(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        #: Run folders written: ``out_dir``, then ``out_dir_part2``... after layout changes.
        self.run_dirs: list[Path] = [self.out_dir]
        self._layout: dict[str, dict[str, _Spec]] = {}   # this run folder's keys
        self.sources = list(sources) or ['*']
        self.sequence_size = int(sequence_size)
        self.run = int(run)
        self.proposal = int(proposal)
        self.buffer_trains = int(buffer_trains)
        self.buffer_bytes = int(buffer_bytes)
        #: Things the recording changed or left out, in words (also logged).
        self.notes: list[str] = []
        self.files: list[Path] = []
        self._noted: set = set()
        self._selected: dict[str, bool] = {}
        self._seq: _Sequence | None = None
        self._next_number = 0
        self._buffer: list[tuple[int, int, dict]] = []
        self._buffered_bytes = 0
        self._last_tid: int | None = None
        self._counts = dict(trains=0, bytes=0, skipped=0)
        self._closed = False

    # -- public API ------------------------------------------------------------------------

    def add(self, data: Mapping[str, Mapping[str, Any]],
            metadata: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
        """Record one train dict (as from ``Client.next()``, a matcher or ``run.trains()``).

        Parameters
        ----------
        data : mapping
            Source name -> key -> value, one train.
        metadata : mapping, optional
            Source name -> bridge metadata (``timestamp.tid``, ``timestamp``); without it
            each source's ``data[source]['metadata']`` is used.

        Returns
        -------
        bool
            False if the train was not recorded: no selected source, no train ID (or
            different ones), or a train ID not above the last recorded one.

        Raises
        ------
        RuntimeError
            The recorder is closed.
        """
        if self._closed:
            raise RuntimeError(f'Recorder of {self.out_dir} is closed')
        train = {}
        tids, stamps = set(), []
        for source, props in data.items():
            if not self._wanted(source):
                continue
            meta = (metadata or {}).get(source) or props.get('metadata', {})
            if 'timestamp.tid' in meta:
                tids.add(int(meta['timestamp.tid']))
            if 'timestamp' in meta:
                stamps.append(float(meta['timestamp']))
            train[source] = self._convert(source, props)
        if not train:
            return False
        if len(tids) != 1:
            self._counts['skipped'] += 1
            self._note(('tid', len(tids) > 1), 'A train whose sources carry '
                       + ('different train IDs' if tids else 'no train ID (timestamp.tid)')
                       + f' ({sorted(tids)}) was not recorded')
            return False
        tid = tids.pop()
        if self._last_tid is not None and tid <= self._last_tid:
            self._counts['skipped'] += 1
            self._note(('back', tid), f'Train {tid} came after train {self._last_tid}: not '
                       'recorded (a restarted stream? record it into a new folder)')
            return False
        self._last_tid = tid
        stamp_ns = (int(min(stamps) * 1e9) if stamps
                    else int(train_timestamps(np.array([tid]))[0]))   # as files without any
        nbytes = sum(arr.nbytes for values, _ in train.values() for arr, _ in values.values())
        self._buffer.append((tid, stamp_ns, train))
        self._buffered_bytes += nbytes
        self._counts['trains'] += 1
        self._counts['bytes'] += nbytes
        if len(self._buffer) >= self.buffer_trains or self._buffered_bytes >= self.buffer_bytes:
            self._flush()
        return True

    def record(self, stream: Iterable, *, trains: int | None = None,
               duration: float | None = None, stop: threading.Event | None = None,
               on_train: Callable[[Recorder], None] | None = None) -> int:
        """Record trains from a stream until a limit is reached or the stream ends.

        A Client should have a ``timeout`` (e.g. 0.5 s) so that the time limits are checked
        while nothing arrives. Does not close the recorder.

        Parameters
        ----------
        stream : iterable
            A Client, a TrainMatcher or any iterable of ``(data, metadata)``.
        trains : int, optional
            Stop after this many trains were recorded.
        duration : float, optional
            Stop after this many seconds.
        stop : threading.Event, optional
            Stop when this is set.
        on_train : callable, optional
            Called as ``on_train(recorder)`` after each train received.

        Returns
        -------
        int
            The number of trains recorded.
        """
        start = time.monotonic()
        recorded = 0
        # A matcher waits forever by default; ask it in short steps to check the limits.
        get = (lambda: stream.next(timeout=0.5)) if hasattr(stream, 'status_line') \
            else iter(stream).__next__
        while trains is None or recorded < trains:
            if (duration is not None and time.monotonic() - start >= duration) or (
                    stop is not None and stop.is_set()):
                break
            try:
                data, metadata = get()
            except TimeoutError:
                continue
            except StopIteration:
                break
            recorded += self.add(data, metadata)
            if on_train is not None:
                on_train(self)
        return recorded

    def close(self) -> list[Path]:
        """Write what is buffered and finish the current file. Returns the files written."""
        if self._closed:
            return self.files
        self._closed = True
        try:
            self._flush()
        finally:
            self._finish_file()
        return self.files

    def abort(self) -> None:
        """Stop without finishing the current file (its temporary file is removed)."""
        self._closed = True
        if self._seq is not None:
            self._seq.writer.abort()
            self._seq = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stats(self) -> dict[str, Any]:
        """``trains`` and ``bytes`` recorded, ``skipped`` trains, ``files`` finished."""
        return dict(self._counts, files=len(self.files), notes=len(self.notes))

    # -- converting a train ----------------------------------------------------------------

    def _wanted(self, source: str) -> bool:
        known = self._selected.get(source)
        if known is None:
            known = self._selected[source] = any(
                fnmatch.fnmatchcase(source, g) for g in self.sources)
        return known

    def _convert(self, source: str, props: Mapping[str, Any]) -> tuple[dict, dict]:
        """({dataset key: (array, spec)}, {control key: its timestamp}) of one source."""
        out, stamps = {}, {}
        control = ':' not in source
        for key, value in props.items():
            if key == 'metadata':
                continue
            if not control and '.' not in key:
                self._note(('group', source, key), f'{source} {key}: not recorded; instrument '
                           "keys need an index group ('data.x', 'image.y')")
                continue
            got = _storable(value)
            if isinstance(got, str):
                self._note(('type', source, key), f'{source} {key}: not recorded; {got}')
                continue
            if control:
                name, is_stamp = _control_name(key)
                if is_stamp:
                    if got[0].shape == () and got[0].dtype.kind in 'iu' and got[0] >= 0:
                        stamps[name] = int(got[0])
                        continue
                    name = key    # not a Karabo timestamp: a value of its own
                if not key.endswith('.value'):
                    self._note(('value', source), f'{source}: control keys are stored as '
                               f"'KEY.value' (EXDF naming), e.g. {key!r} as {name + '.value'!r}")
                out[name] = got
            else:
                out[key] = got
        return out, stamps

    # -- writing ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write the buffered trains, rolling sequence files as needed."""
        buffer, self._buffer, self._buffered_bytes = self._buffer, [], 0
        block: list[tuple[int, int, dict]] = []
        for tid, stamp, train in buffer:
            changed = self._changed(train, tid)
            if self._seq is not None and (changed or
                                          self._seq.trains + len(block) >= self.sequence_size):
                self._write_block(block)
                block = []
                self._finish_file()
            if changed:
                self._new_folder()
            if self._seq is None:
                self._start_file()
            self._declare_new(train, tid, bool(block))
            block.append((tid, stamp, train))
        self._write_block(block)
        if self._seq is not None and self._seq.trains >= self.sequence_size:
            self._finish_file()

    def _changed(self, train: dict, tid: int) -> bool:
        """True (with a note) if a source's keys, dtypes or shapes differ from this run's."""
        for source, (values, _) in train.items():
            known = self._layout.get(source)
            if known is None:
                continue
            layout = {k: spec for k, (_, spec) in values.items()}
            if layout != known:
                diff = sorted(set(layout) ^ set(known))
                if diff:
                    what = f'keys {diff} appeared or disappeared'
                else:
                    key = next(k for k in layout if layout[k] != known[k])
                    what = (f'{key} changed from {known[key].describe()} to '
                            f'{layout[key].describe()}')
                self._note(None, f'{source}: {what} at train {tid}; the following trains go '
                           f'to a new run folder {self._folder_name(len(self.run_dirs) + 1)} '
                           "(a run's files must agree on every key's dtype and shape)")
                return True
        return False

    def _declare_new(self, train: dict, tid: int, after_others: bool) -> None:
        seq = self._seq
        for source, (values, _) in train.items():
            if source not in seq.layout:
                if seq.trains or after_others:
                    self._note(('late', source), f'{source} first appears at train {tid}; '
                               'earlier trains of the file have no data of it')
                layout = {k: spec for k, (_, spec) in values.items()}
                seq.declare(source, layout, self.sequence_size)
                self._layout.setdefault(source, layout)

    def _write_block(self, block: list[tuple[int, int, dict]]) -> None:
        if not block:
            return
        seq = self._seq
        w = seq.writer
        counts = {}
        for source, layout in seq.layout.items():
            present = np.array([source in train for _, _, train in block], np.uint64)
            counts[source] = (present if ':' not in source
                              else {k.partition('.')[0]: present for k in layout})
        stamps = np.array([s for _, s, _ in block], np.uint64)
        tids = [t for t, _, _ in block]
        w.append_trains(tids, stamps, counts)
        for source, layout in seq.layout.items():
            rows = [(train[source], stamp) for _, stamp, train in block if source in train]
            if not rows:
                continue
            for key in layout:
                self._write_rows(source, key, [values[key][0] for (values, _), _ in rows])
                if ':' not in source:   # the key's own timestamp, else the train's
                    self._write_rows(source, key + '.timestamp', [
                        np.uint64(own.get(key, stamp)) for (_, own), stamp in rows])
        seq.trains += len(block)

    def _write_rows(self, source: str, key: str, values: list[np.ndarray]) -> None:
        seq = self._seq
        start = seq.rows.get((source, key), 0)
        if values[0].nbytes * len(values) <= _STACK_LIMIT or values[0].dtype.kind in 'OUS':
            seq.writer.write(source, key, np.stack(values), start)
        else:
            # Grow once for the block, then write each train's entry straight from its array.
            seq.writer.dataset(source, key).resize(start + len(values), axis=0)
            for i, value in enumerate(values):
                seq.writer.write(source, key, value[np.newaxis], start + i)
        seq.rows[(source, key)] = start + len(values)

    def _folder_name(self, part: int) -> Path:
        return self.out_dir if part == 1 else self.out_dir.with_name(
            f'{self.out_dir.name}_part{part}')

    def _new_folder(self) -> None:
        """Go on in the next run folder (``OUT_DIR_part2``, ...): a new layout."""
        folder = self._folder_name(len(self.run_dirs) + 1)
        _check_free(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.run_dirs.append(folder)
        self._layout = {}
        self._next_number = 0

    def _start_file(self) -> None:
        number = self._next_number
        self._next_number += 1
        path = self.run_dirs[-1] / f'RAW-R{self.run:04d}-DA01-S{number:05d}.h5'
        self._seq = _Sequence(path, number, self.run, self.proposal)

    def _finish_file(self) -> None:
        seq, self._seq = self._seq, None
        if seq is None:
            return
        if not seq.trains:
            seq.writer.abort()
            return
        self.files.append(seq.writer.close())
        log.info('Finished %s (%d trains)', self.files[-1].name, seq.trains)

    def _note(self, once_key, text: str) -> None:
        if once_key is not None:
            if once_key in self._noted:
                return
            self._noted.add(once_key)
        self.notes.append(text)
        log.warning(text)
