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
from collections.abc import Callable

import h5py
import numpy as np

from . import format as fmt
from .exceptions import FileChangedError, FileStructureError, exclude_file_hint
from .scan import read_index as _read_index
from .scan import read_train_ids as _read_train_ids
from .scan import scan_file, summarize

__all__ = ["FileAccess", "scan_file", "set_max_open_files", "n_open_files",
           "files_with_trains", "open_h5", "handle_pool", "HandlePool"]


def _default_max_open() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 4096
    return max(8, min(512, soft // 4))


class HandlePool:
    """LRU set of open h5py files with an upper bound on their number.

    One process-wide instance, :data:`handle_pool`, holds every h5py file the reader
    opens; other modules get files through :func:`open_h5` (or ``FileAccess.file``).
    """

    def __init__(self, max_open: int):
        self.max_open = max_open
        self._open: OrderedDict[str, h5py.File] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, filename: str, on_open=None) -> h5py.File:
        """The open file, opened now if needed.

        *on_open*, if given, is called with the h5py file when it had to be opened
        (not when reused); if it raises, the file is closed again and the error passes.
        """
        with self._lock:
            f = self._open.get(filename)
            if f is not None and f.id.valid:
                self._open.move_to_end(filename)
                return f
            try:
                f = h5py.File(filename, "r")
            except OSError as e:  # gone, truncated or damaged since the run was opened
                raise FileStructureError(filename, "/", f"cannot open: {e}",
                                         exclude_file_hint(filename)) from e
            if on_open is not None:
                try:
                    on_open(f)
                except BaseException:
                    self._open.pop(filename, None)
                    f.close()
                    raise
            self._open[filename] = f
            self._trim()
            return f

    def set_max_open(self, n: int) -> None:
        """Change the cap, dropping the least recently used files above it."""
        with self._lock:
            self.max_open = n
            self._trim()

    def _trim(self) -> None:
        while len(self._open) > self.max_open:
            # Drop our reference only ("weak close"): HDF5 closes the file as soon as
            # no dataset object from it is alive, so a reader in another thread that
            # still holds a dataset is never cut off.
            self._open.popitem(last=False)

    def close(self, filename: str) -> None:
        """Close one file (it is reopened on its next use)."""
        with self._lock:
            f = self._open.pop(filename, None)
            if f is not None:
                f.close()

    def forget_all(self) -> None:
        """Drop every handle (weak close, as when trimming); files reopen on next use."""
        with self._lock:
            self._open.clear()

    def filenames(self) -> set[str]:
        """Names of the files held open now."""
        with self._lock:
            return set(self._open)

    def __len__(self) -> int:
        return len(self._open)


#: The process-wide pool of open h5py files (see :class:`HandlePool`).
handle_pool = HandlePool(_default_max_open())


def open_h5(filename: str) -> h5py.File:
    """The open, read-only h5py file for a run file, from the capped handle pool.

    The only way exfel_data modules get an open ``h5py.File`` of a file they read (a
    :class:`FileAccess` adds a check that the file is still the one that was indexed:
    use ``FileAccess.file`` when you have one). Do not close it: the pool does.
    """
    return handle_pool.get(filename)


def set_max_open_files(n: int) -> None:
    """Set the cap on simultaneously open HDF5 files (least recently used are closed).

    Parameters
    ----------
    n : int
        The most files open at once, process-wide.

    Raises
    ------
    ValueError
        *n* is below 1.
    """
    if n < 1:
        raise ValueError(f"max open files must be >= 1, not {n}")
    handle_pool.set_max_open(n)


def n_open_files() -> int:
    """Number of HDF5 files exfel_data currently holds open."""
    return len(handle_pool)


class FileAccess:
    """Metadata of one EXDF file plus on-demand access to its datasets.

    Parameters
    ----------
    filename : str
        Path to the HDF5 file.
    info : dict, optional
        Previously scanned metadata (from :func:`scan_file` or :mod:`exfel_data.run_map`);
        when given, the file is not opened until data or an index is read.
    """

    def __init__(self, filename: str, info: dict | None = None):
        filename = os.fspath(filename)
        # abspath costs ~2 us: too much for thousands of files already given absolute
        self.filename = filename if filename.startswith("/") and "/." not in filename \
            and "//" not in filename else os.path.abspath(filename)
        self._keys: dict[str, frozenset[str]] = {}
        self._run_keys: dict[str, frozenset[str]] = {}
        self._ds_meta: dict[str, tuple[np.dtype, tuple]] = {}
        self._groups_cache: dict[str, list[str]] | None = None
        self._aux_cache: dict | None = None  # auxiliary_sources, read on first use
        # Called with this FileAccess after an index was read from the file (run map).
        self.index_listener = None
        # Says where the run cache this file's metadata came from is, or that it is off
        # (set by RunDirectory; shown by info()).
        self.cache_status: Callable[[], str] | None = None
        if info is None:
            info = scan_file(self.filename)
        self._set_info(info)

    # -- metadata -------------------------------------------------------------------
    def _set_info(self, info: dict) -> None:
        self.format_version: str = info["format_version"]
        self.train_ids: np.ndarray = info["train_ids"]
        self.valid: np.ndarray = info["valid"]
        # INDEX/origin, read only for files with suspect trains (else None).
        self.origin: np.ndarray | None = info.get("origin")
        self.source_ids: list[str] = info["source_ids"]
        self.control_sources: frozenset[str] = frozenset(info["control_sources"])
        self.instrument_sources: frozenset[str] = frozenset(info["instrument_sources"])
        self.legacy_sources: dict[str, str] = dict(info["legacy_sources"])
        # {(source, group): (firsts, counts)} read so far; a run map may give a callable
        # returning them, so that opening a run builds no per-file dicts.
        index = info.get("index") or {}
        self._index_loader = index if callable(index) else None
        self._index: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = (
            {} if callable(index) else dict(index))
        self.mtime_ns: int = info["mtime_ns"]
        self.size: int = info["size"]
        # inode and status-change time: with size and mtime, what identifies the file
        # that was indexed (None in infos made before they were recorded)
        self.ino: int | None = info.get("ino")
        self.ctime_ns: int | None = info.get("ctime_ns")
        self.index_rows: int = info.get("index_rows", len(self.train_ids))
        summary = info.get("summary") or summarize(self.train_ids, self.valid)
        (self.n_zero, self.n_suspect, self.increasing, self._first, self._last,
         self._first_valid, self._last_valid) = summary

    def _load_index(self) -> None:
        if self._index_loader is not None:
            self._index = {**self._index_loader(), **self._index}
            self._index_loader = None

    def info(self) -> dict:
        """The scanned metadata, as accepted by the constructor (for caching)."""
        self._load_index()
        return {
            "format_version": self.format_version, "train_ids": self.train_ids,
            "valid": self.valid, "origin": self.origin, "source_ids": self.source_ids,
            "control_sources": sorted(self.control_sources),
            "instrument_sources": sorted(self.instrument_sources),
            "legacy_sources": self.legacy_sources, "index": dict(self._index),
            "summary": (self.n_zero, self.n_suspect, self.increasing, self._first,
                        self._last, self._first_valid, self._last_valid),
            "mtime_ns": self.mtime_ns, "size": self.size, "ino": self.ino,
            "ctime_ns": self.ctime_ns, "index_rows": self.index_rows,
        }

    @property
    def zero_rows(self) -> np.ndarray:
        """Boolean mask of rows with train ID 0 (corrupt rows, never used)."""
        return self.train_ids == 0

    def used_train_ids(self, inc_suspect: bool) -> np.ndarray:
        """Train IDs of the rows in use (see :meth:`rows_in_use`)."""
        if self.n_zero == 0 and (inc_suspect or self.n_suspect == 0):
            return self.train_ids
        return self.train_ids[self.rows_in_use(inc_suspect)]

    def train_span(self, inc_suspect: bool) -> tuple[int, int]:
        """(min, max) train ID of the rows in use; (0, -1) if there are none."""
        return (self._first, self._last) if inc_suspect else (self._first_valid,
                                                              self._last_valid)

    # -- convenience ----------------------------------------------------------------
    @property
    def all_sources(self) -> frozenset[str]:
        return self.control_sources | self.instrument_sources

    @property
    def basename(self) -> str:
        return os.path.basename(self.filename)

    def section_of(self, source: str) -> str:
        if source in self.control_sources:
            return "CONTROL"
        if source in self.instrument_sources:
            return "INSTRUMENT"
        for section, sources in self.auxiliary_sources.items():
            if source in sources:
                return section
        return "INSTRUMENT"

    @property
    def auxiliary_sources(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """``{'REDUCTION' / 'ERRATA': {source: index groups}}`` from
        ``METADATA/auxiliarySources`` (newer files; read on first use)."""
        aux = self._aux_cache
        if aux is None:
            aux = self._aux_cache = _read_auxiliary_sources(self.file)
        return aux

    def _groups(self) -> dict[str, list[str]]:
        """{source: [index groups]} from the source list (legacy names excluded)."""
        if self._groups_cache is None:
            groups: dict[str, list[str]] = {}
            for sid in self.source_ids:
                if not sid:
                    continue
                section, source, group = fmt.parse_source_id(sid)
                if section and source not in self.legacy_sources:
                    groups.setdefault(source, []).append(group)
            self._groups_cache = groups
        return self._groups_cache

    def index_groups(self, source: str) -> list[str]:
        return list(self._groups().get(source, ()) or self._aux_groups(source))

    def _aux_groups(self, source: str) -> tuple[str, ...]:
        if source in self.control_sources or source in self.instrument_sources:
            return ()
        for sources in self.auxiliary_sources.values():
            if source in sources:
                return sources[source]
        return ()

    def get_index(self, source: str, group: str) -> tuple[np.ndarray, np.ndarray]:
        """(firsts, counts) per train row for one source index group.

        Read from the file on first use, then kept.
        """
        try:
            return self._index[(source, group)]
        except KeyError:
            pass
        if self._index_loader is not None:
            self._load_index()
            return self.get_index(source, group)
        ipath = fmt.index_group_path(source, group)
        if group not in self.index_groups(source):
            raise FileStructureError(self.filename, ipath, "no such index group")
        value = _read_index(self.file.id, self.filename, ipath, len(self.train_ids))
        self._index[(source, group)] = value
        if self.index_listener is not None:
            self.index_listener(self)
        return value

    @property
    def validity_flag(self) -> np.ndarray:
        """EXtra-data's name of :attr:`valid`: True for trains not suspect (per INDEX row)."""
        return self.valid

    def rows_in_use(self, inc_suspect: bool) -> np.ndarray:
        """Boolean mask of train rows to use (never zero rows; suspect ones optionally)."""
        return self.train_ids != 0 if inc_suspect else self.valid

    # -- h5py access ----------------------------------------------------------------
    @property
    def file(self) -> h5py.File:
        """The open h5py file (opened on demand, subject to the open-files cap).

        Each time the file is (re)opened it is checked to be the one that was indexed
        (:meth:`check_unchanged`).
        """
        return handle_pool.get(self.filename, self.check_unchanged)

    @property
    def identity(self) -> tuple:
        """(size, mtime_ns, inode, ctime_ns) of the file that was indexed."""
        return self.size, self.mtime_ns, self.ino, self.ctime_ns

    def check_unchanged(self, f: h5py.File) -> None:
        """Raise FileChangedError if *f* is not the file whose train IDs we hold.

        Files open lazily, so a file replaced after the run was opened (or after its
        cache entry was written) would otherwise be read under the old train IDs.
        Compares size, mtime, inode and ctime with the indexed file, and the train IDs
        in the file with ours (one small read).
        """
        changed = changed_since(self.filename, self.identity)
        if not changed:
            tids = _read_train_ids(f.id)
            if tids is None or not np.array_equal(tids, self.train_ids):
                changed = ["INDEX/trainId"]
        if changed:
            raise FileChangedError(self.filename, changed)

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
        handle_pool.close(self.filename)

    def __getstate__(self):
        self._load_index()  # the loader refers to the whole run map's arrays
        state = self.__dict__.copy()
        state["_ds_meta"] = {}
        state["index_listener"] = None
        state["cache_status"] = None
        return state

    def __repr__(self) -> str:
        return f"FileAccess({self.filename!r})"

    def __hash__(self) -> int:
        return hash(self.filename)

    def __eq__(self, other) -> bool:
        return isinstance(other, FileAccess) and other.filename == self.filename


def changed_since(filename: str, identity: tuple) -> list[str]:
    """Which of size, mtime, inode, ctime differ from *identity* (``FileAccess.identity``;
    None entries are not compared)."""
    st = os.stat(filename)
    now = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    return [name for name, a, b in zip(("size", "mtime", "inode", "ctime"), now, identity,
                                       strict=True) if b is not None and a != b]


def files_with_trains(files, train_ids: np.ndarray, inc_suspect: bool) -> list[FileAccess]:
    """The files with rows in use for some of *train_ids* (the first file if none)."""
    kept = [f for f in files if np.isin(f.train_ids[f.rows_in_use(inc_suspect)],
                                         train_ids).any()]
    return kept or list(files[:1])


def _read_auxiliary_sources(f: h5py.File) -> dict[str, dict[str, tuple[str, ...]]]:
    """Parse ``METADATA/auxiliarySources/<SECTION>``: entries ``SECTION/source/group``."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    grp = f.get("METADATA/auxiliarySources")
    if not isinstance(grp, h5py.Group):
        return out
    for section in grp:
        sources: dict[str, list[str]] = {}
        for entry in grp[section][:]:
            entry = entry.decode() if isinstance(entry, bytes) else str(entry)
            if not entry.startswith(section + "/"):
                continue
            source, _, group = entry[len(section) + 1:].rpartition("/")
            if source:
                sources.setdefault(source, []).append(group)
        out[section] = {s: tuple(g) for s, g in sources.items()}
    return out
