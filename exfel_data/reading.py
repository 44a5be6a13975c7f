"""Planning contiguous blocks of rows and reading them into one preallocated array.

``plan_chunks`` turns a source's per-file index into :class:`DataChunk` objects (one
per contiguous block of rows in one file); ``read_chunks_into`` reads them with
``read_direct`` straight into consecutive rows of the output, never concatenating
copies. Detector classes and converters build their outputs from these chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import h5py
import numpy as np

from . import format as fmt
from .exceptions import FileStructureError
from .file_access import FileAccess, _pool

__all__ = ["DataChunk", "plan_chunks", "read_chunks_into", "roi_shape", "read_rows"]


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
        Rows per train, same length as ``train_ids``.
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

    @property
    def dataset(self) -> h5py.Dataset:
        return self.file.dataset(self.dataset_path)


def _contiguous_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of runs of True in a boolean array."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=False))


def plan_chunks(
    files: Iterable[FileAccess],
    source: str,
    group: str,
    dataset_path: str,
    train_ids: np.ndarray,
    inc_suspect: bool = True,
) -> list[DataChunk]:
    """Chunks holding the selected trains for one source index group, ordered by train.

    A block ends where the selection has a gap, at a row the index says is suspect (if
    excluded), or where the index is not contiguous in the dataset.
    """
    chunks = []
    for fa in files:
        if len(fa.train_ids) == 0:
            continue
        firsts, counts = fa.get_index(source, group)
        use = fa.rows_in_use(inc_suspect) & np.isin(fa.train_ids, train_ids)
        for a, b in _contiguous_runs(use):
            f, c = firsts[a:b].astype(np.int64), counts[a:b].astype(np.int64)
            nz = np.flatnonzero(c)
            # Split where a train's rows do not follow the previous train's rows.
            breaks = nz[1:][f[nz[1:]] != f[nz[:-1]] + c[nz[:-1]]]
            starts = [0, *breaks.tolist()]
            stops = [*breaks.tolist(), b - a]
            for s, e in zip(starts, stops, strict=False):
                cc = counts[a + s:a + e]
                nzs = np.flatnonzero(cc)
                first = int(firsts[a + s + nzs[0]]) if len(nzs) else 0
                chunks.append(DataChunk(fa, dataset_path, first,
                                        fa.train_ids[a + s:a + e], cc))
    chunks.sort(key=lambda ch: int(ch.train_ids[0]))
    return chunks


def roi_shape(entry_shape: tuple, roi: tuple) -> tuple:
    """Shape of one entry after applying a region of interest (basic indexing only)."""
    if not isinstance(roi, tuple):
        roi = (roi,)
    return np.empty((0,) + tuple(entry_shape), dtype=np.uint8)[(slice(None),) + roi].shape[1:]


def _check_bounds(chunk: DataChunk, n_rows: int) -> None:
    end = chunk.first + chunk.total_count
    if end > n_rows:
        raise FileStructureError(
            chunk.file.filename, chunk.dataset_path,
            f"INDEX points to rows {chunk.first}..{end - 1} but the dataset has {n_rows} rows",
        )


def read_chunks_into(chunks: Iterable[DataChunk], out: np.ndarray, roi=()) -> np.ndarray:
    """Read chunks with ``read_direct`` into consecutive rows of *out*.

    Parameters
    ----------
    chunks : iterable of DataChunk
    out : np.ndarray
        Preallocated output; its first axis must have room for all rows, the other axes
        must match the entry shape after *roi*. Non-contiguous views are filled through a
        small per-chunk buffer.
    roi : tuple
        Basic indexing applied to each entry (e.g. ``np.s_[:, 10:20]``).

    Returns
    -------
    np.ndarray
        *out*.
    """
    if not isinstance(roi, tuple):
        roi = (roi,)
    cursor = 0
    for chunk in chunks:
        n = chunk.total_count
        if n == 0:
            continue
        ds = chunk.dataset
        _check_bounds(chunk, ds.shape[0])
        dest = out[cursor:cursor + n]
        source_sel = (slice(chunk.first, chunk.first + n),) + roi
        if ds.dtype.kind == "O" or out.dtype.kind == "O":
            dest[...] = fmt.decode_strings(np.asarray(ds[source_sel]))
        elif dest.flags.c_contiguous:
            if dest.size:
                ds.read_direct(dest, source_sel=source_sel)
        else:
            tmp = np.empty(dest.shape, dtype=dest.dtype)
            if tmp.size:
                ds.read_direct(tmp, source_sel=source_sel)
            dest[...] = tmp
        cursor += n
    return out


def read_rows(filename: str, dataset_path: str, start: int, stop: int, roi: tuple,
              dtype) -> np.ndarray:
    """Read rows [start, stop) of a dataset by file name (used by dask tasks on workers)."""
    ds = _pool.get(filename)[dataset_path]
    shape = (stop - start,) + roi_shape(ds.shape[1:], roi)
    out = np.empty(shape, dtype=dtype)
    sel = (slice(start, stop),) + roi
    if ds.dtype.kind == "O":
        out[...] = fmt.decode_strings(np.asarray(ds[sel]))
    elif out.size:
        ds.read_direct(out, source_sel=sel)
    return out
