"""What a conversion writes (keys, trains, rows) and reading it in bounded blocks.

A :class:`ConversionPlan` is built once from a selected run: for each key its dtype,
entry shape and rows per train. Writers then pull data block by block -- either all
blocks of one key (:meth:`ConversionPlan.key_blocks`) or, for row-per-train formats,
all keys for a range of trains (:meth:`ConversionPlan.train_blocks`). Blocks are cut
from the reader's ``data_chunks()`` so that one block holds at most ``block_bytes``
(but always at least one train), which keeps peak memory near one block whatever the
size of the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ExfelDataError

#: Default size of one block of data read and written at once.
BLOCK_BYTES = 64 * 1024**2


class ConversionError(ExfelDataError, ValueError):
    """The selection cannot be written in the requested format (names key and format)."""


class DiskFullError(ConversionError):
    """The output's file system ran out of space (or quota) while writing; nothing was
    written. ``errno`` is the system's error number (ENOSPC, EDQUOT or EFBIG)."""

    def __init__(self, message: str, errno: int):
        super().__init__(message, errno)  # both in args: survives pickling from workers

    @property
    def errno(self) -> int:
        return self.args[1]

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class KeyPlan:
    """One key to convert: its reader object and what its rows look like."""

    source: str
    key: str
    section: str  # 'CONTROL' or 'INSTRUMENT'
    keydata: object  # exfel_data KeyData restricted to the plan's trains
    dtype: np.dtype
    entry_shape: tuple
    counts: np.ndarray  # rows per train of ConversionPlan.train_ids (int64)

    @property
    def name(self) -> str:
        """``source/key``, the name used by the array formats."""
        return f"{self.source}/{self.key}"

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())

    @property
    def row_nbytes(self) -> int:
        itemsize = 64 if self.dtype.kind == "O" else self.dtype.itemsize
        return max(1, int(np.prod(self.entry_shape, dtype=np.int64)) * itemsize)

    @property
    def nbytes(self) -> int:
        return self.n_rows * self.row_nbytes

    @property
    def is_string(self) -> bool:
        return self.dtype.kind in "OSU"

    def __str__(self) -> str:
        return f"{self.source} {self.key}"


@dataclass
class Block:
    """Rows of one key for a range of trains."""

    train_ids: np.ndarray  # train ID of each row (uint64)
    data: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


@dataclass
class ConversionPlan:
    """Everything a writer needs to know before writing.

    Attributes
    ----------
    run_path : str
        The input run (for messages and metadata).
    train_ids : np.ndarray
        The selected trains (uint64, increasing).
    timestamps : np.ndarray
        Train timestamps, ns since the epoch (uint64; 0 where unknown).
    keys : list of KeyPlan
    run_values : dict
        ``{source: {key: value}}`` run-level snapshots of the selected sources.
    metadata : dict
        Run metadata (``proposalNumber``, ``runNumber``, ...) where known.
    part : tuple or None
        ``(i, N)`` when this is part i of N.
    description : dict
        What was asked for (format, selection, trains); identifies the parts of one job.
    """

    run_path: str
    train_ids: np.ndarray
    timestamps: np.ndarray
    keys: list[KeyPlan]
    run_values: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    part: tuple[int, int] | None = None
    description: dict = field(default_factory=dict)
    block_bytes: int = BLOCK_BYTES
    #: The opened run with the plan's train selection (for writers needing other keys).
    run: object = None
    #: What a writer's ``check`` worked out, for its ``write`` to reuse (by format name).
    checked: dict = field(default_factory=dict, repr=False)
    #: Memory reused for the blocks of ``key_blocks(reuse=True)``.
    _scratch: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_trains(self) -> int:
        return len(self.train_ids)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes for k in self.keys)

    def sources(self) -> list[str]:
        return sorted({k.source for k in self.keys})

    def part_info(self) -> dict | None:
        """Part metadata stored in part outputs so ``merge`` can check and order them."""
        if self.part is None:
            return None
        job = json.dumps(self.description, sort_keys=True)
        return {
            "part": self.part[0], "of": self.part[1],
            "first_train": int(self.train_ids[0]) if self.n_trains else None,
            "last_train": int(self.train_ids[-1]) if self.n_trains else None,
            "n_trains": self.n_trains,
            "job": hashlib.sha1(job.encode()).hexdigest()[:16],
            **self.description,
        }

    # -- reading -----------------------------------------------------------------------
    def _rows_per_block(self, kp: KeyPlan, budget: int) -> int:
        return max(1, budget // kp.row_nbytes)

    def key_blocks(self, kp: KeyPlan, budget: int | None = None,
                   reuse: bool = False) -> Iterator[Block]:
        """Blocks of whole trains of one key, each at most ``budget`` bytes (>= 1 train).

        With ``reuse``, every block's data is read into the same buffer (shared by all
        keys of the plan): for callers that are done with a block before asking for the
        next one. It saves the kernel zeroing fresh memory for each block (~10% of a
        conversion's CPU time).
        """
        max_rows = self._rows_per_block(kp, budget or self.block_bytes)
        buffer = None
        if reuse and kp.dtype.kind != "O":
            shape = (min(max_rows, kp.n_rows),) + tuple(kp.entry_shape)
            nbytes = int(np.prod(shape, dtype=np.int64)) * kp.dtype.itemsize
            if self._scratch is None or len(self._scratch) < nbytes:
                self._scratch = np.empty(nbytes, np.uint8)
            buffer = self._scratch[:nbytes].view(kp.dtype).reshape(shape)
        pending: list = []
        pending_rows = 0
        for chunk in _split_chunks(kp.keydata.data_chunks(), max_rows):
            n = chunk.total_count
            if pending and pending_rows + n > max_rows:
                yield _read(kp, pending, pending_rows, buffer)
                pending, pending_rows = [], 0
            pending.append(chunk)
            pending_rows += n
        if pending_rows:
            yield _read(kp, pending, pending_rows, buffer)

    def read_key(self, kp: KeyPlan) -> Block:
        """All rows of one key in one block (for small keys, e.g. strings whose longest
        length must be known before writing)."""
        return _read(kp, kp.keydata.data_chunks(), kp.n_rows)

    def train_ranges(self, keys: list[KeyPlan], budget: int | None = None) -> list[slice]:
        """Split the trains into consecutive ranges holding ~``budget`` bytes of ``keys``."""
        budget = budget or self.block_bytes
        per_train = np.zeros(self.n_trains, dtype=np.int64)
        for kp in keys:
            per_train += kp.counts * kp.row_nbytes
        ranges, start, acc = [], 0, 0
        for i, b in enumerate(per_train.tolist()):
            if acc and acc + b > budget:
                ranges.append(slice(start, i))
                start, acc = i, 0
            acc += b
        if start < self.n_trains:
            ranges.append(slice(start, self.n_trains))
        return ranges

    def read_trains(self, kp: KeyPlan, trains: slice) -> Block:
        """Rows of one key for the trains ``train_ids[trains]``."""
        sub = kp.keydata.select_trains(trains)  # keydata's trains are the plan's trains
        chunks = sub.data_chunks()
        n = sum(c.total_count for c in chunks)
        return _read(kp, chunks, n)

    def train_blocks(self, keys: list[KeyPlan], budget: int | None = None
                     ) -> Iterator[tuple[slice, dict[str, Block]]]:
        """For consecutive ranges of trains, the rows of every key in ``keys``."""
        for trains in self.train_ranges(keys, budget):
            yield trains, {kp.name: self.read_trains(kp, trains) for kp in keys}


def frame_numbers(row_tids: np.ndarray) -> np.ndarray:
    """Position of each row within its train (rows grouped by train)."""
    n = len(row_tids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, row_tids[1:] != row_tids[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


def _split_chunks(chunks, max_rows: int):
    """Cut chunks that hold more than ``max_rows`` rows at train boundaries."""
    for ch in chunks:
        if ch.total_count <= max_rows:
            yield ch
            continue
        ends = np.cumsum(ch.counts.astype(np.int64))
        start_train, start_row = 0, 0
        while start_train < len(ch.counts):
            # Take trains until the block would exceed max_rows (at least one train).
            stop_train = int(np.searchsorted(ends, start_row + max_rows, side="right"))
            stop_train = max(stop_train, start_train + 1)
            stop_row = int(ends[stop_train - 1])
            yield dataclasses.replace(ch, first=ch.first + start_row,
                                      train_ids=ch.train_ids[start_train:stop_train],
                                      counts=ch.counts[start_train:stop_train])
            start_train, start_row = stop_train, stop_row


def _read(kp: KeyPlan, chunks: list, n_rows: int, buffer: np.ndarray | None = None) -> Block:
    from ..reading import read_chunks_into

    if buffer is not None and n_rows <= len(buffer):
        out = buffer[:n_rows]
    else:
        dtype = np.dtype(object) if kp.dtype.kind == "O" else kp.dtype
        out = np.empty((n_rows,) + tuple(kp.entry_shape), dtype=dtype)
    try:
        read_chunks_into(chunks, out)
    except (OSError, ValueError, KeyError) as exc:
        files = sorted({c.file.filename for c in chunks})
        raise ConversionError(f"Reading {kp.source} {kp.key} from {', '.join(files)} "
                              f"failed: {exc}") from exc
    tids = np.concatenate([np.repeat(c.train_ids, c.counts.astype(np.intp)) for c in chunks]) \
        if chunks else np.zeros(0, np.uint64)
    return Block(tids.astype(np.uint64), out)
