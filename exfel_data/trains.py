"""Building train dicts (see docs/train-dict.md) with tiny per-train overhead.

Iteration is planned once: for each source index group, where every selected train's
rows are (file, first row, count), as flat numpy arrays. Each key then reads blocks of
consecutive rows (several trains at once for small keys, bounded by a byte budget) and
hands out slices, so a train costs a few dict operations per key, not an HDF5 read.
"""

from __future__ import annotations

import numpy as np

from . import format as fmt
from .reading import DatasetReader
from .rowindex import check_entries, train_rows

__all__ = ["TrainIterator", "iterate_key"]

# Bytes read at once per key when iterating; several trains of small data per read.
BLOCK_BYTES = 8 * 1024**2


class _GroupPlan:
    """Each selected train's rows for one source index group, arranged for iteration."""

    def __init__(self, files, source: str, group: str, train_ids: np.ndarray,
                 inc_suspect: bool):
        rows = train_rows(files, source, group, train_ids, inc_suspect)
        self.files = rows.files
        self.file_idx, self.first, self.count = rows.file_no, rows.first, rows.count
        n = len(train_ids)
        # Compressed view over trains with data: segments of rows contiguous in one file.
        self.nz = np.flatnonzero(self.count)
        self.nz_pos = np.full(n, -1, dtype=np.int64)
        self.nz_pos[self.nz] = np.arange(len(self.nz))
        f, c, fi = self.first[self.nz], self.count[self.nz], self.file_idx[self.nz]
        self.end_c = f + c
        brk = np.ones(len(self.nz), dtype=bool)
        brk[1:] = (fi[1:] != fi[:-1]) | (f[1:] != self.end_c[:-1])
        seg_start = np.flatnonzero(brk)
        seg_stop = np.append(seg_start[1:], len(self.nz)) if len(seg_start) else seg_start
        self.seg_last_c = np.repeat(seg_stop - 1, seg_stop - seg_start)
        # Python lists: indexing them per train is several times cheaper than numpy scalars.
        self.first_l = self.first.tolist()
        self.count_l = self.count.tolist()
        self.file_l = self.file_idx.tolist()


class _KeyReader:
    """Reads one key in blocks of consecutive rows and hands out per-train slices."""

    __slots__ = ("plan", "path", "budget_rows", "buf", "buf_file", "lo", "hi", "reader",
                 "reader_file", "ref")

    def __init__(self, plan: _GroupPlan, path: str, ref_file):
        self.plan = plan
        self.path = path
        # dtype and shape every file's dataset must have (those of the source's first file)
        self.ref = (ref_file, *ref_file.dataset_meta(path))
        dtype, shape = self.ref[1:]
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self.budget_rows = max(1, BLOCK_BYTES // max(row_bytes, 1))
        self.buf = None
        self.buf_file = -1
        self.lo = self.hi = 0
        self.reader = None  # DatasetReader of the current file, kept between fills
        self.reader_file = -1

    def rows(self, i: int) -> tuple[np.ndarray, int]:
        """(buffer, offset of train i's first row in it)."""
        plan = self.plan
        a = plan.first_l[i]
        if plan.file_l[i] != self.buf_file or a < self.lo or a + plan.count_l[i] > self.hi:
            self._fill(i)
        return self.buf, a - self.lo

    def _dataset(self, file_no: int) -> DatasetReader:
        if self.reader_file != file_no:
            fa = self.plan.files[file_no]
            self.reader = None  # release the previous file before opening the next
            reader = DatasetReader(fa.filename, self.path, fa.file)
            ref_file, dtype, shape = self.ref
            check_entries(fa, self.path, reader.dtype, reader.shape, dtype, shape[1:],
                          ref_file)
            self.reader, self.reader_file = reader, file_no
        return self.reader

    def _fill(self, i: int) -> None:
        plan = self.plan
        ic = plan.nz_pos[i]
        last = plan.seg_last_c[ic]
        a = int(plan.first[i])
        limit = a + max(int(plan.count[i]), self.budget_rows)
        j = ic + int(np.searchsorted(plan.end_c[ic:last + 1], limit, side="right")) - 1
        hi = int(plan.end_c[max(j, ic)])
        file_no = plan.file_l[i]
        self.buf = self._dataset(file_no).read_new(a, hi)
        self.buf_file, self.lo, self.hi = file_no, a, hi


class TrainIterator:
    """Iterate over ``(train_id, data)`` for a collection. Made by ``run.trains()``."""

    def __init__(self, coll, require_all: bool = False, flat_keys: bool = False,
                 keep_dims: bool = False):
        self.coll = coll
        self.require_all = require_all
        self.flat_keys = flat_keys
        self.keep_dims = keep_dims

    def _plan(self):
        coll = self.coll
        tids = coll.train_ids
        sources = []
        groups_used = []
        for src in sorted(coll.all_sources):
            sd = coll[src]
            plans: dict[str, _GroupPlan] = {}
            entries = []
            for key in sorted(sd.keys()):
                group = fmt.index_group_of(sd.section, key)
                plan = plans.get(group)
                if plan is None:
                    plan = plans[group] = _GroupPlan(sd.files, src, group, tids,
                                                     coll.inc_suspect_trains)
                path = fmt.key_to_path(sd.section, src, key)
                reader = _KeyReader(plan, path, sd.files[0])
                entries.append((key, plan.count_l, reader, sd.is_control))
            sources.append((src, entries))
            groups_used.extend(plans.values())
        has_all = None
        if self.require_all:
            has_all = np.ones(len(tids), dtype=bool)
            for p in groups_used:
                has_all &= p.count > 0
        return sources, has_all

    def __iter__(self):
        sources, has_all = self._plan()
        keep_dims, flat = self.keep_dims, self.flat_keys
        for i, tid in enumerate(self.coll.train_ids.tolist()):
            if has_all is not None and not has_all[i]:
                continue
            res = {}
            for src, entries in sources:
                meta = {"source": src, "timestamp.tid": tid}
                d = {} if flat else {"metadata": meta}
                for key, count, reader, is_control in entries:
                    c = count[i]
                    if c == 0:
                        continue
                    buf, k = reader.rows(i)
                    d[key] = buf[k] if (is_control or (c == 1 and not keep_dims)) \
                        else buf[k:k + c]
                if flat:
                    res[(src, "metadata")] = meta
                    for key, v in d.items():
                        res[(src, key)] = v
                else:
                    res[src] = d
            yield tid, res

    def __len__(self) -> int:
        return len(self.coll.train_ids)


def iterate_key(kd, keep_dims: bool = False, include_empty: bool = False):
    """Yield (train_id, array) for one KeyData (see ``KeyData.trains``)."""
    plan = _GroupPlan(kd.files, kd.source, kd.index_group, kd.train_ids,
                      kd.inc_suspect_trains)
    reader = _KeyReader(plan, kd.hdf5_data_path, kd.files[0])
    empty = np.zeros((0,) + kd.entry_shape, dtype=kd.dtype) if keep_dims else None
    for i, tid in enumerate(kd.train_ids.tolist()):
        c = plan.count_l[i]
        if c == 0:
            if include_empty:
                yield tid, empty
            continue
        buf, k = reader.rows(i)
        yield tid, (buf[k] if c == 1 and not keep_dims else buf[k:k + c])
