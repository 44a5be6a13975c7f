"""One EXDF HDF5 file: its train IDs, sources and index, opened lazily.

The h5py handle is opened on demand and kept in a process-wide LRU pool with a cap, so
runs of thousands of files never hit "too many open files"; a closed file is reopened
transparently the next time it is needed. A ``FileAccess`` pickles as its path plus the
scanned metadata, so dask workers reopen the file themselves.
"""

from __future__ import annotations

import os
import resource
import threading
from collections import OrderedDict

import h5py
import numpy as np

from . import format as fmt
from .exceptions import FileStructureError

__all__ = ["FileAccess", "set_max_open_files", "n_open_files"]


def _default_max_open() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 4096
    return max(8, min(512, soft // 4))


class _HandlePool:
    """LRU set of open h5py files with an upper bound on their number."""

    def __init__(self, max_open: int):
        self.max_open = max_open
        self._open: OrderedDict[str, h5py.File] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, filename: str) -> h5py.File:
        with self._lock:
            f = self._open.get(filename)
            if f is not None and f.id.valid:
                self._open.move_to_end(filename)
                return f
            f = h5py.File(filename, "r")
            self._open[filename] = f
            self._trim()
            return f

    def _trim(self) -> None:
        while len(self._open) > self.max_open:
            # Drop our reference only ("weak close"): HDF5 closes the file as soon as
            # no dataset object from it is alive, so a reader in another thread that
            # still holds a dataset is never cut off.
            self._open.popitem(last=False)

    def close(self, filename: str) -> None:
        with self._lock:
            f = self._open.pop(filename, None)
            if f is not None:
                f.close()

    def __len__(self) -> int:
        return len(self._open)


_pool = _HandlePool(_default_max_open())


def set_max_open_files(n: int) -> None:
    """Set the cap on simultaneously open HDF5 files (least recently used are closed)."""
    if n < 1:
        raise ValueError(f"max open files must be >= 1, not {n}")
    with _pool._lock:
        _pool.max_open = n
        _pool._trim()


def n_open_files() -> int:
    """Number of HDF5 files exfel_data currently holds open."""
    return len(_pool)


def _read_small(fid, path: str) -> np.ndarray | None:
    """Read a whole (small, numeric) dataset with the low-level API; None if missing.

    Scanning hundreds of files reads thousands of tiny INDEX datasets; the high-level
    h5py path costs several times more per dataset than the read itself.
    """
    try:
        dsid = h5py.h5d.open(fid, path.encode())
    except KeyError:
        return None
    arr = np.empty(dsid.shape, dtype=dsid.dtype)
    if arr.size:
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, arr)
    return arr


def _soft_link_target(fid, path: str) -> str | None:
    try:
        if fid.links.get_info(path.encode()).type == h5py.h5l.TYPE_SOFT:
            return fid.links.get_val(path.encode()).decode()
    except KeyError:
        pass
    return None


def _read_index(fid, filename: str, ipath: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, count) of one INDEX group, from first/count or first/last/status."""
    firsts = _read_small(fid, f"{ipath}/first")
    if firsts is None:
        raise FileStructureError(filename, ipath, "index (first/count) not found")
    counts = _read_small(fid, f"{ipath}/count")
    if counts is None:
        last = _read_small(fid, f"{ipath}/last")
        status = _read_small(fid, f"{ipath}/status")
        if last is None or status is None:
            raise FileStructureError(filename, f"{ipath}/count",
                                     "neither count nor last/status found")
        counts = fmt.counts_from_last_status(firsts[:n], last[:n], status[:n])
    return fmt.fit_index(firsts, counts, n)


class FileAccess:
    """Metadata of one EXDF file plus on-demand access to its datasets.

    Parameters
    ----------
    filename : str
        Path to the HDF5 file.
    info : dict, optional
        Previously scanned metadata (from :mod:`exfel_data.run_map`); when given, the
        file is not opened until data is read.
    """

    def __init__(self, filename: str, info: dict | None = None):
        self.filename = os.path.abspath(filename)
        self._keys: dict[str, frozenset[str]] = {}
        self._run_keys: dict[str, frozenset[str]] = {}
        self._ds_meta: dict[str, tuple[np.dtype, tuple]] = {}
        if info is None:
            info = self._scan()
        self._set_info(info)

    # -- metadata -------------------------------------------------------------------
    def _set_info(self, info: dict) -> None:
        self.format_version: str = info["format_version"]
        self.train_ids: np.ndarray = info["train_ids"]
        self.valid: np.ndarray = info["valid"]
        self.origin: np.ndarray | None = info.get("origin")
        self.source_ids: list[str] = info["source_ids"]
        self.control_sources: frozenset[str] = frozenset(info["control_sources"])
        self.instrument_sources: frozenset[str] = frozenset(info["instrument_sources"])
        self.legacy_sources: dict[str, str] = dict(info["legacy_sources"])
        # {(source, group): (firsts, counts)}
        self.index: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = info["index"]
        self.mtime_ns: int = info["mtime_ns"]
        self.size: int = info["size"]
        self.zero_rows = self.train_ids == 0

    def info(self) -> dict:
        """The scanned metadata, as accepted by the constructor (for caching)."""
        return {
            "format_version": self.format_version, "train_ids": self.train_ids,
            "valid": self.valid, "origin": self.origin, "source_ids": self.source_ids,
            "control_sources": sorted(self.control_sources),
            "instrument_sources": sorted(self.instrument_sources),
            "legacy_sources": self.legacy_sources, "index": self.index,
            "mtime_ns": self.mtime_ns, "size": self.size,
        }

    def _scan(self) -> dict:
        st = os.stat(self.filename)
        f = self.file
        try:
            return self._scan_open(f, st)
        finally:
            self.close()  # scanning done; data reads reopen the file on demand

    def _scan_open(self, f: h5py.File, st: os.stat_result) -> dict:
        name = self.filename
        fid = f.id
        version = fmt.version_of(f)
        tids = _read_small(fid, "INDEX/trainId")
        if tids is None:
            raise FileStructureError(name, "INDEX/trainId", "no train index")
        tids = tids.astype(np.uint64, copy=False)
        nonzero = np.flatnonzero(tids)
        n = int(nonzero[-1]) + 1 if len(nonzero) else 0  # drop trailing zero padding
        tids = tids[:n]

        flag = _read_small(fid, "INDEX/flag") if version != "0.5" else None
        if flag is None:
            valid = np.zeros(n, dtype=bool)
            valid[tids != 0] = fmt.guess_valid_trains(tids[tids != 0])
        elif len(flag) < n:
            raise FileStructureError(name, "INDEX/flag", f"{len(flag)} rows for {n} trains")
        else:
            valid = fmt.valid_from_flag(flag[:n], version)
        valid &= tids != 0
        origin = _read_small(fid, "INDEX/origin")
        if origin is not None:
            origin = origin[:n].astype(np.int32)

        src_path = fmt.source_list_path(version)
        src_ds = f.get(src_path)
        if src_ds is None:
            raise FileStructureError(name, src_path, "no list of data sources")
        source_ids = [fmt.decode_scalar(s) for s in src_ds[()]]

        control, instrument, legacy = set(), set(), {}
        index: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for sid in source_ids:
            if not sid:
                continue
            section, source, group = fmt.parse_source_id(sid)
            if section == "":
                continue  # Karabo_TimerServer pseudo source (format 1.1) and the like
            if section == "CONTROL":
                control.add(source)
            else:
                if source not in instrument:
                    target = _soft_link_target(fid, f"INSTRUMENT/{source}")
                    if target is not None:
                        legacy[source] = target.strip("/").partition("/")[2]
                    instrument.add(source)
                if source in legacy:
                    continue
            ipath = fmt.index_group_path(source, group)
            index[(source, group)] = _read_index(fid, name, ipath, n)
        for old in legacy:
            instrument.discard(old)
        return {
            "format_version": version, "train_ids": tids, "valid": valid, "origin": origin,
            "source_ids": source_ids, "control_sources": control,
            "instrument_sources": instrument, "legacy_sources": legacy, "index": index,
            "mtime_ns": st.st_mtime_ns, "size": st.st_size,
        }

    # -- convenience ----------------------------------------------------------------
    @property
    def all_sources(self) -> frozenset[str]:
        return self.control_sources | self.instrument_sources

    @property
    def basename(self) -> str:
        return os.path.basename(self.filename)

    def section_of(self, source: str) -> str:
        return "CONTROL" if source in self.control_sources else "INSTRUMENT"

    def index_groups(self, source: str) -> list[str]:
        return [g for (s, g) in self.index if s == source]

    def get_index(self, source: str, group: str) -> tuple[np.ndarray, np.ndarray]:
        """(firsts, counts) per train row for one source index group."""
        try:
            return self.index[(source, group)]
        except KeyError:
            raise FileStructureError(
                self.filename, fmt.index_group_path(source, group), "no such index group"
            ) from None

    def rows_in_use(self, inc_suspect: bool) -> np.ndarray:
        """Boolean mask of train rows to use (never zero rows; suspect ones optionally)."""
        return ~self.zero_rows if inc_suspect else self.valid

    # -- h5py access ----------------------------------------------------------------
    @property
    def file(self) -> h5py.File:
        """The open h5py file (opened on demand, subject to the open-files cap)."""
        return _pool.get(self.filename)

    def dataset(self, path: str) -> h5py.Dataset:
        return self.file[path]

    def dataset_meta(self, path: str) -> tuple[np.dtype, tuple]:
        """(dtype, shape) of a dataset, cached."""
        meta = self._ds_meta.get(path)
        if meta is None:
            ds = self.file[path]
            meta = self._ds_meta[path] = (ds.dtype, ds.shape)
        return meta

    def _walk_keys(self, group_path: str) -> frozenset[str]:
        grp = self.file.get(group_path)
        if grp is None:
            return frozenset()
        keys = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                keys.append(name.replace("/", "."))

        grp.visititems(visit)
        return frozenset(keys)

    def keys(self, source: str) -> frozenset[str]:
        """API key names of a source in this file (control keys end .value/.timestamp)."""
        keys = self._keys.get(source)
        if keys is None:
            section = self.section_of(source)
            keys = self._keys[source] = self._walk_keys(f"/{section}/{source}")
        return keys

    def run_keys(self, source: str) -> frozenset[str]:
        """Key names under ``RUN/<source>``."""
        keys = self._run_keys.get(source)
        if keys is None:
            keys = self._run_keys[source] = self._walk_keys(f"/RUN/{source}")
        return keys

    def has_dataset(self, path: str) -> bool:
        if path in self._ds_meta:
            return True
        obj = self.file.get(path)
        return isinstance(obj, h5py.Dataset)

    def metadata(self) -> dict:
        """Contents of METADATA (not the source lists) as a dict of scalars/strings."""
        if self.format_version == "0.5":
            return {"dataFormatVersion": "0.5"}
        res = {}
        for name, ds in self.file["METADATA"].items():
            if isinstance(ds, h5py.Dataset) and ds.shape and ds.shape[0] >= 1:
                res[name] = fmt.decode_scalar(ds[0])
        return res

    def close(self) -> None:
        """Close the h5py handle (it is reopened if needed again)."""
        _pool.close(self.filename)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_ds_meta"] = {}
        return state

    def __repr__(self) -> str:
        return f"FileAccess({self.filename!r})"

    def __hash__(self) -> int:
        return hash(self.filename)

    def __eq__(self, other) -> bool:
        return isinstance(other, FileAccess) and other.filename == self.filename
