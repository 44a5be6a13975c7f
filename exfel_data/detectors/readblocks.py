"""Read planned runs of frames straight into a preallocated output.

Everything here works from plain data (file names, dataset paths, integer
arrays) so the same functions serve ``get_array`` in-process and dask tasks on
remote workers, which reopen the files themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exfel_data.exceptions import FileChangedError
from exfel_data.file_access import changed_since
from exfel_data.reading import DatasetReader

__all__ = ['Segment', 'ModuleRows', 'read_runs', 'read_box', 'split_at_segments']

# Runs shorter than this (on average) are read as one span into a scratch buffer
# and scattered, because one HDF5 call per frame costs more than reading the gaps.
_SHORT_RUN = 8
_SCRATCH_BYTES = 64 * 1024 ** 2


@dataclass(frozen=True)
class Segment:
    """Rows ``[vstart, vstart + n)`` of a module's virtual row space, stored in a file."""

    vstart: int
    n: int
    filename: str
    dataset_path: str
    first: int
    #: ``FileAccess.identity`` of the indexed file: a task reopening the file by name
    #: (on a dask worker, or after its handle was closed) refuses a replaced file.
    identity: tuple | None = None


@dataclass(frozen=True)
class ModuleRows:
    """How to read one key of one module: its segments and dataset layout."""

    segments: tuple[Segment, ...]
    squeeze_first: bool   # entry has a leading length-1 axis we drop (raw LPD/DSSC)


def split_at_segments(blocks: np.ndarray, segments: tuple[Segment, ...]):
    """Yield (segment, blocks inside it) with runs cut at segment boundaries (used by the
    reads here and by the virtual CXI layout, which maps the same blocks)."""
    if not len(blocks):
        return
    seg_starts = np.array([s.vstart for s in segments], dtype=np.int64)
    seg_ends = seg_starts + np.array([s.n for s in segments], dtype=np.int64)
    src, _dst, n = blocks[:, 0], blocks[:, 1], blocks[:, 2]
    seg_ix = np.searchsorted(seg_starts, src, side='right') - 1
    if (seg_ix < 0).any() or (src + n > seg_ends[seg_ix]).any():
        pieces = []
        for s, d, k in blocks:  # rare: a run crosses a file boundary
            while k > 0:
                i = int(np.searchsorted(seg_starts, s, side='right') - 1)
                if i < 0 or s >= seg_ends[i]:
                    raise ValueError(f"Frame row {s} is not inside any file segment")
                take = min(k, int(seg_ends[i] - s))
                pieces.append((s, d, take))
                s, d, k = s + take, d + take, k - take
        blocks = np.array(pieces, dtype=np.int64)
        src = blocks[:, 0]
        seg_ix = np.searchsorted(seg_starts, src, side='right') - 1
    for i in np.unique(seg_ix):
        yield segments[i], blocks[seg_ix == i]


def _concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in ...])`` without a Python loop."""
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return offsets + np.arange(total)


def read_runs(dest: np.ndarray, blocks: np.ndarray, rows: ModuleRows, roi: tuple = ()):
    """Read runs ``(virtual row, destination frame, length)`` into ``dest``.

    Parameters
    ----------
    dest : np.ndarray
        C-contiguous ``(frames,) + entry shape after roi``; its dtype is the
        output dtype (HDF5 converts on read).
    """
    for seg, seg_blocks in split_at_segments(blocks, rows.segments):
        if seg.identity is not None:
            changed = changed_since(seg.filename, seg.identity)
            if changed:
                raise FileChangedError(seg.filename, changed)
        ds = DatasetReader(seg.filename, seg.dataset_path)
        file_roi = ((0,) if rows.squeeze_first else ()) + tuple(roi)
        frame_bytes = max(1, dest[:1].nbytes)
        span_limit = max(1, _SCRATCH_BYTES // frame_bytes)
        offset = seg.first - seg.vstart
        src = seg_blocks[:, 0]
        # Group runs into spans a scratch buffer can hold
        group = (src - src[0]) // span_limit
        for g in np.unique(group):
            b = seg_blocks[group == g]
            span = int(b[-1, 0] + b[-1, 2] - b[0, 0])
            # Scatter from one read when runs are short and the span is mostly wanted
            if len(b) > 1 and b[:, 2].mean() < _SHORT_RUN and b[:, 2].sum() * 4 >= span:
                _read_scattered(ds, dest, b, offset, file_roi)
            else:
                for s, d, k in b:
                    ds.read(s + offset, s + offset + k, dest[d:d + k], file_roi)


def _read_scattered(ds, dest, blocks, offset, file_roi):
    lo = int(blocks[0, 0])
    hi = int((blocks[:, 0] + blocks[:, 2]).max())
    scratch = np.empty((hi - lo,) + dest.shape[1:], dtype=dest.dtype)
    ds.read(lo + offset, hi + offset, scratch, file_roi)
    src_rows = _concat_ranges(blocks[:, 0] - lo, blocks[:, 2])
    dst_rows = _concat_ranges(blocks[:, 1], blocks[:, 2])
    dest[dst_rows] = scratch[src_rows]


def new_output(shape: tuple, dtype, fill, full: bool) -> np.ndarray:
    """Allocate an output; skip filling when every element will be read."""
    if full:
        return np.empty(shape, dtype=dtype)
    if fill == 0:
        return np.zeros(shape, dtype=dtype)  # calloc: pages appear as they are written
    return np.full(shape, fill, dtype=dtype)


def read_box(tasks: tuple, shape: tuple, entry_ndim: int, dtype, fill, full: bool,
             roi: tuple, out: np.ndarray | None = None) -> np.ndarray:
    """Read one output block (a dask chunk, or the whole ``get_array`` result).

    *shape* is ``(modules, trains, [slots,] *entry)`` with *entry_ndim* entry
    axes; *tasks* is ``((module offset, ModuleRows, runs), ...)`` where each
    module's runs give destination frames in the flattened ``trains * slots`` space.
    *out*, if given, is a C-contiguous array of *shape* and *dtype* to fill instead.
    """
    if out is None:
        out = new_output(shape, dtype, fill, full)
    elif not full:
        out[...] = fill
    entry = tuple(shape[len(shape) - entry_ndim:])
    for mod_off, rows, runs in tasks:
        read_runs(out[mod_off].reshape((-1,) + entry), runs, rows, roi)
    return out
