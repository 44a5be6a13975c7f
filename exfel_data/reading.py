"""Reading rows of a dataset: the reader's one read primitive.

:class:`DatasetReader` opens one dataset of one file and reads ranges of rows straight
into a caller's array. Every data read of the package goes through it (``KeyData``
reads, dask tasks, train iteration, detector reads, converters), so all of them:

- bypass HDF5's chunk cache (rows are read once; the default 1 MiB cache only adds a
  copy, ~35% slower for one-frame chunks),
- use h5py's low-level calls (hyperslab selection, direct read with dtype conversion),
  which cost several times less per call than the high-level path,
- decode variable-length strings to ``str``,
- refuse rows past the dataset's end, and turn every HDF5 error (missing dataset,
  damaged object header, corrupt compressed chunk, another entry shape) into a
  :class:`FileStructureError` naming the file, source and key and how to leave the
  file out.

:func:`read_chunks_into` reads a key's :class:`~.rowindex.DataChunk` blocks into
consecutive rows of one preallocated output; :func:`read_rows` reads one range by file
name (the dask task).
"""

from __future__ import annotations

from collections.abc import Iterable

import h5py
import numpy as np

from . import format as fmt
from .exceptions import FileChangedError, FileStructureError, exclude_file_hint
from .file_access import changed_since, open_h5
from .rowindex import DataChunk

__all__ = ["DatasetReader", "read_chunks_into", "read_rows", "roi_shape", "DataChunk"]


def roi_shape(entry_shape: tuple, roi: tuple) -> tuple:
    """Shape of one entry after applying a region of interest (basic indexing only)."""
    if not isinstance(roi, tuple):
        roi = (roi,)
    return np.empty((0,) + tuple(entry_shape), dtype=np.uint8)[(slice(None),) + roi].shape[1:]


def _describe(path: str) -> str:
    """'source S, key K' for an EXDF dataset path (the path itself if not one)."""
    parts = path.strip("/").split("/")
    if parts[0] == "INSTRUMENT":
        ch = next((i for i, p in enumerate(parts) if ":" in p), None)
        if ch is not None and ch + 1 < len(parts):
            return (f"source {'/'.join(parts[1:ch + 1])!r}, "
                    f"key {'.'.join(parts[ch + 1:])!r}")
    elif parts[0] == "CONTROL" and len(parts) > 4:
        return f"source {'/'.join(parts[1:4])!r}, key {'.'.join(parts[4:])!r}"
    return f"dataset {path!r}"


def _read_error(filename: str, path: str, what: str, exc: BaseException) -> FileStructureError:
    return FileStructureError(
        filename, path, f"{what} ({_describe(path)}) failed: {type(exc).__name__}: {exc}",
        exclude_file_hint(filename))


def _hyperslab(shape: tuple, start: int, stop: int, roi: tuple):
    """(offset, count, memory shape) for rows [start, stop) and *roi*, or None if *roi*
    needs more than integers and step-1 slices (then h5py's selection is used)."""
    offset, count, mshape = [start], [stop - start], [stop - start]
    if len(roi) > len(shape) - 1:
        return None
    for dim, sel in zip(shape[1:], roi, strict=False):
        if isinstance(sel, (int, np.integer)):
            i = int(sel) + dim if sel < 0 else int(sel)
            if not 0 <= i < dim:
                return None  # let h5py raise its IndexError text
            offset.append(i)
            count.append(1)
        elif isinstance(sel, slice) and sel.step in (None, 1):
            a, b, _ = sel.indices(dim)
            offset.append(a)
            count.append(max(0, b - a))
            mshape.append(max(0, b - a))
        else:
            return None
    for dim in shape[1 + len(roi):]:
        offset.append(0)
        count.append(dim)
        mshape.append(dim)
    return tuple(offset), tuple(count), tuple(mshape)


class DatasetReader:
    """One dataset of one file, opened for bulk row reads without HDF5's chunk cache.

    Parameters
    ----------
    filename : str
        The file (taken from the capped pool of open files).
    path : str
        The dataset path.
    h5file : h5py.File, optional
        The open file, when the caller has it (``FileAccess.file`` checks the file is
        the one that was indexed).

    Attributes
    ----------
    shape : tuple
    dtype : np.dtype
    """

    __slots__ = ("filename", "path", "dsid", "shape", "dtype")

    def __init__(self, filename: str, path: str, h5file: h5py.File | None = None):
        self.filename, self.path = filename, path
        f = open_h5(filename) if h5file is None else h5file
        dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        dapl.set_chunk_cache(0, 0, 1.0)
        try:
            self.dsid = h5py.h5d.open(f.id, path.encode(), dapl)
        except KeyError as e:
            raise FileStructureError(
                filename, path, f"dataset ({_describe(path)}) not in this file, or its "
                f"object header is damaged ({e})", exclude_file_hint(filename)) from None
        except (OSError, RuntimeError, ValueError) as e:
            raise _read_error(filename, path, "opening the dataset", e) from e
        self.shape = self.dsid.shape
        self.dtype = self.dsid.dtype

    def read(self, start: int, stop: int, out: np.ndarray, roi: tuple = ()) -> np.ndarray:
        """Read rows [start, stop) (then *roi* within each entry) into *out*.

        *out* has shape ``(stop - start,) + entry shape after roi``; its dtype may
        differ from the file's (HDF5 converts). Returns *out*.
        """
        if stop > self.shape[0] or start < 0:
            raise FileStructureError(
                self.filename, self.path, f"INDEX points to rows {start}..{stop - 1} but the "
                f"dataset ({_describe(self.path)}) has {self.shape[0]} rows",
                exclude_file_hint(self.filename))
        if not out.size:
            return out
        try:
            slab = _hyperslab(self.shape, start, stop, roi)
            if self.dtype.kind == "O" or out.dtype.kind == "O":
                sel = (slice(start, stop),) + roi
                out[...] = fmt.decode_strings(np.asarray(h5py.Dataset(self.dsid)[sel]))
            elif slab is None or out.shape != slab[2]:
                # Fancy ROI (or a shape h5py reports better): h5py's selection.
                sel = (slice(start, stop),) + roi
                dest = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
                h5py.Dataset(self.dsid).read_direct(dest, source_sel=sel)
                if dest is not out:
                    out[...] = dest
            else:
                offset, count, _ = slab
                fspace = self.dsid.get_space()
                fspace.select_hyperslab(offset, count)
                dest = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
                # A memory space of the file selection's rank (integer-indexed axes kept
                # as length 1: same bytes in C order); with a lower rank HDF5 takes an
                # element-wise path, ~200x slower for (N, 1, 256, 256) raw LPD frames.
                self.dsid.read(h5py.h5s.create_simple(count), fspace, dest)
                if dest is not out:
                    out[...] = dest
        except (OSError, RuntimeError, TypeError, ValueError) as e:
            raise _read_error(self.filename, self.path, f"reading rows {start}..{stop - 1}",
                              e) from e
        return out

    def read_new(self, start: int, stop: int, roi: tuple = (), dtype=None) -> np.ndarray:
        """Rows [start, stop) in a new array (strings decoded, *dtype* or the file's)."""
        if dtype is None:
            dtype = object if self.dtype.kind == "O" else self.dtype
        shape = (max(0, stop - start),) + roi_shape(self.shape[1:], roi)
        return self.read(start, stop, np.empty(shape, dtype=dtype), roi)


def read_chunks_into(chunks: Iterable[DataChunk], out: np.ndarray, roi=()) -> np.ndarray:
    """Read chunks into consecutive rows of *out*.

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
    reader = None
    for chunk in chunks:
        n = chunk.total_count
        if n == 0:
            continue
        fa = chunk.file
        if reader is None or (reader.filename, reader.path) != (fa.filename,
                                                               chunk.dataset_path):
            reader = DatasetReader(fa.filename, chunk.dataset_path, fa.file)
        reader.read(chunk.first, chunk.first + n, out[cursor:cursor + n], roi)
        cursor += n
    return out


def read_rows(filename: str, dataset_path: str, start: int, stop: int, roi: tuple,
              dtype, identity: tuple | None = None) -> np.ndarray:
    """Read rows [start, stop) of a dataset by file name (used by dask tasks on workers).

    With *identity* (``FileAccess.identity``), a file changed since it was indexed
    raises FileChangedError instead of being read (tasks may run long after planning).
    """
    if identity is not None:
        changed = changed_since(filename, identity)
        if changed:
            raise FileChangedError(filename, changed)
    return DatasetReader(filename, dataset_path).read_new(start, stop, roi, dtype)
