"""Where each selected train's rows are: the reader's one row lookup.

:func:`train_rows` turns the files' INDEX ``first``/``count`` of one source index group
into a table aligned with the selected train IDs: which file holds each train, its first
row and its number of rows. Key reads (:class:`DataChunk` blocks), train iteration,
``data_counts`` and the detector classes all derive from it; :func:`file_rows`, the lookup
from train IDs to INDEX rows beneath it, also serves the train-level INDEX datasets
(``INDEX/timestamp``).

Decisions made here once:

- A file whose source list does not name the index group holds 0 rows of it (a source
  may miss a group in some sequence files); a file that names it but lacks its INDEX
  datasets raises :class:`FileStructureError` naming the file.
- INDEX entries that overlap or run backwards in a file give a warning naming file and
  source (once per file and group); data is still placed as the index says.
- Row numbers past what any file could hold raise :class:`FileStructureError`; rows past
  the end of the dataset being read are refused when a key plans its reads.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import format as fmt
from .exceptions import FileStructureError, exclude_file_hint
from .file_access import FileAccess
from .selection import find_train_ids

__all__ = ["TrainRows", "DataChunk", "train_rows", "file_rows", "check_entries",
           "IndexWarning"]

# No HDF5 file holds this many rows of one dataset (2**44 one-byte rows = 16 TiB): an INDEX
# entry beyond it is damage, and checking costs no file access (index-only counts).
_MAX_ROWS = 2**44


class IndexWarning(UserWarning):
    """A file's INDEX looks damaged (overlapping or reversed entries)."""


@dataclass
class DataChunk:
    """A contiguous block of rows of one dataset in one file.

    Attributes
    ----------
    file : FileAccess
    dataset_path : str
    first : int
        First row of the block in the dataset.
    train_ids : np.ndarray
        The selected trains this block covers (uint64).
    counts : np.ndarray
        Rows per train, same length as ``train_ids`` (int64).
    """

    file: FileAccess
    dataset_path: str
    first: int
    train_ids: np.ndarray
    counts: np.ndarray

    def __repr__(self) -> str:
        tids = self.train_ids
        span = f"{tids[0]}..{tids[-1]}" if len(tids) else "none"
        return (f"DataChunk({self.file.basename}, {self.dataset_path!r}, first={self.first}, "
                f"{len(tids)} trains {span}, {self.total_count} rows)")

    @property
    def total_count(self) -> int:
        return int(self.counts.sum())


def file_rows(files, train_ids: np.ndarray, inc_suspect: bool):
    """For each file holding some of *train_ids*: ``(file number, rows, positions)``.

    ``rows`` are INDEX rows of the file in use (never train ID 0, suspect ones if
    *inc_suspect*) whose train is selected; ``positions`` where those trains sit in
    *train_ids*. The one lookup from train IDs to INDEX rows.
    """
    for j, fa in enumerate(files):
        if len(fa.train_ids) == 0:
            continue
        rows = np.flatnonzero(fa.rows_in_use(inc_suspect))
        pos, ok = find_train_ids(train_ids, fa.train_ids[rows])
        if ok.any():
            yield j, rows[ok], pos[ok]


@dataclass
class TrainRows:
    """Rows of one source index group for each selected train.

    Attributes
    ----------
    source, group : str
    files : tuple of FileAccess
    train_ids : np.ndarray
        The selected trains (sorted uint64).
    file_no : np.ndarray
        Position in ``files`` of the file holding each train; -1 if none does.
    first, count : np.ndarray
        First row and number of rows of each train (int64; count 0 without data).
    """

    source: str
    group: str
    files: tuple
    train_ids: np.ndarray
    file_no: np.ndarray
    first: np.ndarray
    count: np.ndarray

    def chunks(self, dataset_path: str, dtype=None, entry_shape=None) -> list[DataChunk]:
        """Contiguous blocks of rows of one dataset of this group, in train order.

        Each file's rows are first checked against that file's dataset: it must exist,
        hold every row the index points to, and (if given) have *dtype* and
        *entry_shape*; otherwise :class:`FileStructureError` names the file.

        A block ends where the file changes or a train's rows do not follow the
        previous train's rows; trains with 0 rows join the block they fall in.
        """
        has = np.flatnonzero(self.file_no >= 0)
        if not len(has):
            return []
        fno, first, count = self.file_no[has], self.first[has], self.count[has]
        for j in np.unique(fno).tolist():
            mine = fno == j
            end = int((first[mine] + count[mine]).max())
            self._check_dataset(self.files[j], dataset_path, end, dtype, entry_shape)
        brk = np.zeros(len(has), dtype=bool)
        brk[0] = True
        brk[1:] = fno[1:] != fno[:-1]
        nz = np.flatnonzero(count)
        jumps = first[nz[1:]] != first[nz[:-1]] + count[nz[:-1]]
        brk[nz[1:][jumps]] = True
        starts = np.flatnonzero(brk).tolist()
        stops = [*starts[1:], len(has)]
        chunks = []
        for a, b in zip(starts, stops, strict=True):
            c = count[a:b]
            nzs = np.flatnonzero(c)
            chunks.append(DataChunk(self.files[int(fno[a])], dataset_path,
                                    int(first[a + nzs[0]]) if len(nzs) else 0,
                                    self.train_ids[has[a:b]], c))
        return chunks

    def _check_dataset(self, fa: FileAccess, path: str, end: int, dtype, entry_shape):
        try:
            ds_dtype, shape = fa.dataset_meta(path)
        except (KeyError, OSError, RuntimeError) as e:
            raise FileStructureError(
                fa.filename, path, f"dataset of source {self.source!r} not in this file "
                f"or its object header is damaged ({type(e).__name__}: {e})",
                exclude_file_hint(fa.filename)) from None
        if end > shape[0]:
            raise FileStructureError(
                fa.filename, path, f"INDEX points to rows up to {end - 1} (source "
                f"{self.source!r}) but the dataset has {shape[0]} rows",
                exclude_file_hint(fa.filename))
        if dtype is not None:
            check_entries(fa, path, ds_dtype, shape, dtype, entry_shape, self.files[0])


def check_entries(fa: FileAccess, path: str, dtype, shape: tuple, ref_dtype,
                  ref_entry_shape: tuple, ref_file: FileAccess) -> None:
    """Refuse a file whose dataset has another dtype or entry shape than the others."""
    if np.dtype(dtype) != np.dtype(ref_dtype) or tuple(shape[1:]) != tuple(ref_entry_shape):
        raise FileStructureError(
            fa.filename, path, f"entries are {dtype} {tuple(shape[1:])} in this file but "
            f"{np.dtype(ref_dtype)} {tuple(ref_entry_shape)} in {ref_file.basename}",
            exclude_file_hint(fa.filename))


def train_rows(files, source: str, group: str, train_ids: np.ndarray,
               inc_suspect: bool = True) -> TrainRows:
    """Where each of *train_ids* has rows of one source index group in *files*.

    Parameters
    ----------
    files : sequence of FileAccess
        The source's files (their trains must not overlap, as collections ensure).
    source, group : str
        The source and its index group ('' for control sources).
    train_ids : np.ndarray
        Sorted train IDs to locate.
    inc_suspect : bool
        Use rows whose train ID the file marks as suspect.
    """
    files = tuple(files)
    train_ids = np.asarray(train_ids, dtype=np.uint64)
    n = len(train_ids)
    file_no = np.full(n, -1, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    with_group = [fa if group in fa.index_groups(source) else _NO_TRAINS for fa in files]
    for j, rows, pos in file_rows(with_group, train_ids, inc_suspect):
        firsts, counts = _checked_index(files[j], source, group)
        file_no[pos] = j
        first[pos] = firsts[rows]
        count[pos] = counts[rows]
    return TrainRows(source, group, files, train_ids, file_no, first, count)


class _NoTrains:
    train_ids = np.zeros(0, dtype=np.uint64)


_NO_TRAINS = _NoTrains()
# (filename, source, group) whose INDEX was checked, so each problem is reported once.
_checked: set[tuple[str, str, str]] = set()


def _checked_index(fa: FileAccess, source: str, group: str) -> tuple[np.ndarray, np.ndarray]:
    """(first, count) of a file's index group as int64, checked for damage."""
    firsts, counts = fa.get_index(source, group)
    ipath = fmt.index_group_path(source, group)
    # Rows with train ID 0 are never used (corrupt or padding): their entries do not count.
    real = fa.train_ids != 0
    huge = real & ((firsts >= _MAX_ROWS) | (counts >= _MAX_ROWS))
    if huge.any():
        bad = int(np.flatnonzero(huge)[0])
        raise FileStructureError(
            fa.filename, ipath, f"impossible row numbers for train {fa.train_ids[bad]} "
            f"(first {firsts[bad]}, count {counts[bad]}): the index is damaged",
            exclude_file_hint(fa.filename))
    firsts, counts = firsts.astype(np.int64), counts.astype(np.int64)
    key = (fa.filename, source, group)
    if key not in _checked:
        _checked.add(key)
        rows = np.flatnonzero(real & (counts != 0))
        f, c = firsts[rows], counts[rows]
        back = np.flatnonzero(f[1:] < f[:-1] + c[:-1])
        if len(back):
            r = rows[back[0] + 1]
            warnings.warn(
                f"{fa.filename}: INDEX of {source!r}"
                f"{' group ' + repr(group) if group else ''} has {len(back)} entries that "
                f"overlap or run backwards (first at train {fa.train_ids[r]}, rows "
                f"{f[back[0] + 1]}..{f[back[0] + 1] + c[back[0] + 1] - 1}); its data may be "
                "assigned to the wrong trains. " + exclude_file_hint(fa.filename),
                IndexWarning, stacklevel=4)
    return firsts, counts
