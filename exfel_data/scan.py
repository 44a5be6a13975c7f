"""Reading what opening an EXDF file needs, with as few HDF5 calls as possible.

``scan_file`` reads the format version, train IDs, their flags and the source list (and
INDEX/origin for files with suspect trains); ``read_index`` reads one source's
first/count later, when that source is used. Both use h5py's low-level API: scanning
hundreds of files reads thousands of tiny datasets, and the high-level path costs several
times more per dataset than the read itself.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from . import format as fmt
from .exceptions import FileStructureError, exclude_file_hint

__all__ = ["scan_file", "read_index", "read_train_ids", "summarize"]

_VLEN_STR = h5py.h5t.py_create(h5py.string_dtype("utf-8"))
_UINT64 = h5py.h5t.NATIVE_UINT64
_INT32 = h5py.h5t.NATIVE_INT32


def _read_small(fid, path: str, mtype=None) -> np.ndarray | None:
    """Read a whole (small) dataset with the low-level API; None if missing.

    Scanning hundreds of files reads thousands of tiny datasets: every h5py id object
    costs ~10 us, so only the dataset and its dataspace are created. *mtype* is the
    memory type (``_UINT64``, ``_INT32`` or ``_VLEN_STR``); None: the file's dtype.
    """
    try:
        dsid = h5py.h5d.open(fid, path.encode())
    except KeyError:
        return None
    shape = dsid.get_space().get_simple_extent_dims()
    if mtype is None:
        arr = np.empty(shape, dtype=dsid.dtype)
    elif mtype is _VLEN_STR:
        arr = np.empty(shape, dtype=object)
    else:
        arr = np.empty(shape, dtype=np.uint64 if mtype is _UINT64 else np.int32)
    if arr.size:
        try:
            dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, arr, mtype)
        except (TypeError, ValueError, OSError):
            if mtype is not _VLEN_STR:
                raise
            # fixed-length strings: no conversion to variable length; read as stored
            arr = np.empty(shape, dtype=dsid.dtype)
            dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, arr)
    return arr


def _soft_link_target(fid, path: str) -> str | None:
    try:
        if fid.links.get_info(path.encode()).type == h5py.h5l.TYPE_SOFT:
            return fid.links.get_val(path.encode()).decode()
    except KeyError:
        pass
    return None


def read_index(fid, filename: str, ipath: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, count) of one INDEX group, from first/count or first/last/status."""
    firsts = _read_small(fid, f"{ipath}/first", _UINT64)
    if firsts is None:
        raise FileStructureError(filename, ipath, "index (first/count) not found",
                                 exclude_file_hint(filename))
    counts = _read_small(fid, f"{ipath}/count", _UINT64)
    if counts is None:
        last = _read_small(fid, f"{ipath}/last", _UINT64)
        status = _read_small(fid, f"{ipath}/status")
        if last is None or status is None:
            raise FileStructureError(filename, f"{ipath}/count",
                                     "neither count nor last/status found",
                                     exclude_file_hint(filename))
        counts = fmt.counts_from_last_status(firsts[:n], last[:n], status[:n])
    return fmt.fit_index(firsts, counts, n)


def summarize(train_ids: np.ndarray, valid: np.ndarray) -> tuple:
    """Per-file facts that opening a run needs, so it needs no array work per file.

    ``(n_zero, n_suspect, increasing, first, last, first_valid, last_valid)``: rows with
    train ID 0, suspect rows (not zero, not valid), whether the non-zero train IDs are
    strictly increasing, and the min/max train ID over non-zero and over valid rows
    (0, -1 when there are none).
    """
    nonzero = train_ids != 0
    used = train_ids[nonzero] if not nonzero.all() else train_ids
    good = train_ids[valid]
    increasing = bool(len(used) < 2 or (used[1:] > used[:-1]).all())
    return (len(train_ids) - len(used), len(used) - len(good), increasing,
            int(used.min()) if len(used) else 0, int(used.max()) if len(used) else -1,
            int(good.min()) if len(good) else 0, int(good.max()) if len(good) else -1)


def _trim_padding(tids: np.ndarray) -> np.ndarray:
    """Train IDs without the trailing zeros (preallocated rows never written)."""
    nonzero = np.flatnonzero(tids)
    return tids[:int(nonzero[-1]) + 1 if len(nonzero) else 0]


def read_train_ids(fid) -> np.ndarray | None:
    """INDEX/trainId of an open file without trailing zero padding (None if missing)."""
    tids = _read_small(fid, "INDEX/trainId", _UINT64)
    return None if tids is None else _trim_padding(tids)


def scan_file(filename: str, st: os.stat_result | None = None) -> dict:
    """Read what opening a file needs: train IDs, flags, sources (not the indexes).

    Returns the metadata dict accepted by :class:`FileAccess`. Per-source INDEX
    first/count are read later, on first use of that source in this file.
    """
    if st is None:
        st = os.stat(filename)
    # Default access properties, like h5py.File: HDF5 refuses to open a file again with
    # another close degree while our handle pool holds it open.
    fid = h5py.h5f.open(filename.encode(), h5py.h5f.ACC_RDONLY)
    try:
        return _scan_fid(fid, filename, st)
    finally:
        fid.close()


def _scan_fid(fid, name: str, st: os.stat_result) -> dict:
    ver = _read_small(fid, "METADATA/dataFormatVersion", _VLEN_STR)
    version = "0.5" if ver is None or not len(ver) else str(fmt.decode_scalar(ver.flat[0]))
    raw_tids = _read_small(fid, "INDEX/trainId", _UINT64)
    if raw_tids is None:
        raise FileStructureError(name, "INDEX/trainId", "no train index")
    tids = _trim_padding(raw_tids)
    n = len(tids)

    flag = _read_small(fid, "INDEX/flag", _INT32) if version != "0.5" else None
    if flag is None:
        valid = np.zeros(n, dtype=bool)
        valid[tids != 0] = fmt.guess_valid_trains(tids[tids != 0])
    elif len(flag) < n:
        raise FileStructureError(name, "INDEX/flag", f"{len(flag)} rows for {n} trains")
    else:
        valid = fmt.valid_from_flag(flag[:n], version)
    valid &= tids != 0
    summary = summarize(tids, valid)
    origin = None
    if summary[1]:  # origin only matters to name who sent suspect train IDs
        origin = _read_small(fid, "INDEX/origin", _INT32)
        if origin is not None:
            origin = origin[:n]

    src_path = fmt.source_list_path(version)
    src = _read_small(fid, src_path, _VLEN_STR)
    if src is None:
        raise FileStructureError(name, src_path, "no list of data sources")
    source_ids = [fmt.decode_scalar(s) for s in src.tolist()]

    control, instrument, legacy = set(), set(), {}
    for sid in source_ids:
        if not sid:
            continue
        section, source, _group = fmt.parse_source_id(sid)
        if section == "CONTROL":
            control.add(source)
        elif section == "INSTRUMENT" and source not in instrument:
            target = _soft_link_target(fid, f"INSTRUMENT/{source}")
            if target is not None:
                legacy[source] = target.strip("/").partition("/")[2]
            instrument.add(source)
    instrument.difference_update(legacy)
    return {
        "format_version": version, "train_ids": tids, "valid": valid, "origin": origin,
        "source_ids": source_ids, "control_sources": control,
        "instrument_sources": instrument, "legacy_sources": legacy, "index": {},
        "summary": summary, "mtime_ns": st.st_mtime_ns, "size": st.st_size,
        "ino": st.st_ino, "ctime_ns": st.st_ctime_ns, "index_rows": len(raw_tids),
    }
