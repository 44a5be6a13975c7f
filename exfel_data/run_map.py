"""Per-run cache of each file's train IDs, flags, sources and the indexes read so far.

Reopening a run of hundreds of files then needs one ``np.load`` plus a ``stat`` per file
instead of opening every file. An entry is used only while the file's size, modification
time, inode and status-change time all match what was recorded (so a file replaced by
another of the same size and mtime -- ``touch -r``, ``rsync -t``, tar extraction -- is
rescanned); stale or missing entries are rescanned. When a file is first opened for
reading, its train IDs are compared with the cached ones as well
(``FileAccess.check_unchanged``).

Where (docs/reading.md, "Fast reopening"): read from the newest of ``<run>/.exfel_data_map.npz``,
``<proposal>/scratch/.exfel_data_maps/<raw|proc>_rNNNN.npz`` (facility runs whose proposal
has a scratch folder, as EXtra-data's ``.karabo_data_maps``) and the user cache dir
(``$EXFEL_DATA_CACHE_DIR`` or ``$XDG_CACHE_HOME/exfel_data/run_maps``); written to the first
of them that is writable. Source files are never modified; the cache is written to a
temporary name (tagged with host and pid, see :mod:`tempnames`) and renamed.

When: at open after a scan, and at interpreter exit for per-source INDEX arrays read after
that (lazily, from the files). The exit write runs in a daemon thread (started, idle, when
a cache first has something to add: Python 3.12 starts no thread at exit) given at most
``EXIT_BUDGET_S`` seconds in all: a slow folder cannot delay the exit, and a write
abandoned there leaves a temporary file that the next write to that folder removes.
A folder found unwritable (read-only, permission) is not tried again. Errors are never
raised from the cache: at worst it is not written.

Switch: ``RunDirectory(cache=False)`` or ``EXFEL_DATA_RUN_CACHE=0`` neither read nor write
it; ``cache='read'`` or ``EXFEL_DATA_RUN_CACHE=read`` read it but never write.

Layout (no pickle): ``meta``, a JSON document with the file names and a table of unique
strings, and ``data``, one int64 array holding every table back to back (per-file rows,
concatenated train IDs and flags, index arrays). The source lists are stored once per
distinct list (all sequence files of an aggregator share one), so loading needs little
Python work per file.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import json
import logging
import os
import threading
import time
from functools import partial
from typing import Literal

import numpy as np

from .euxfel_paths import proposal_scratch
from .exceptions import ExfelDataError
from .tempnames import left_by_dead_process, owner_tag

__all__ = ["RunMap", "same_file", "cache_mode", "describe_cache"]

log = logging.getLogger(__name__)

CACHE_NAME = ".exfel_data_map.npz"
#: The folder in a proposal's scratch holding run caches (EXtra-data: .karabo_data_maps).
SCRATCH_FOLDER = ".exfel_data_maps"
#: The environment switch: 0/off/no/false, read, 1/on/yes/true (default).
MODE_ENV = "EXFEL_DATA_RUN_CACHE"
_MODES = {"0": "off", "off": "off", "no": "off", "false": "off",
          "1": "on", "on": "on", "yes": "on", "true": "on", "": "on", "read": "read"}
#: Seconds that writing caches may take at interpreter exit, all runs together.
EXIT_BUDGET_S = 2.0
CACHE_VERSION = 4
# Columns of the per-file table.
_FILE_COLS = ("n", "off", "mtime_ns", "size", "version", "sources", "n_zero", "n_suspect",
              "increasing", "first", "last", "first_valid", "last_valid", "origin_off",
              "ino", "ctime_ns", "index_rows")
_TABLES = ("files", "tids", "valid", "index_keys", "index_data", "origin")


def user_cache_dir() -> str:
    """``$EXFEL_DATA_CACHE_DIR``, else ``$XDG_CACHE_HOME/exfel_data/run_maps``."""
    base = os.environ.get("EXFEL_DATA_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "exfel_data", "run_maps")


def cache_mode(cache: bool | Literal["read"] = True) -> tuple[str, str]:
    """``(mode, why)``: 'on', 'read' or 'off', from ``RunDirectory(cache=)`` and the
    ``EXFEL_DATA_RUN_CACHE`` environment variable (the more restrictive wins).

    Raises
    ------
    ExfelDataError
        *cache* or the environment variable is not one of the accepted values.
    """
    if cache is True or cache is False or cache == "read":
        arg = {True: "on", False: "off", "read": "read"}[cache]
    else:
        raise ExfelDataError(f"cache={cache!r}: use True, False or 'read'")
    value = os.environ.get(MODE_ENV, "")
    env = _MODES.get(value.strip().lower())
    if env is None:
        raise ExfelDataError(f"{MODE_ENV}={value!r} is not understood: use 0 (off), read "
                             "(use caches, never write one) or 1 (on, the default)")
    order = ("off", "read", "on")
    if order.index(env) < order.index(arg):
        return env, f"{MODE_ENV}={value}"
    return arg, f"RunDirectory(cache={cache!r})" if arg != "on" else ""


class RunMap:
    """Cached file infos for one run directory.

    Parameters
    ----------
    run_dir : str
        The run folder.
    writable : bool
        Write the cache when it changed (False: only read it).
    """

    def __init__(self, run_dir: str, writable: bool = True):
        self.run_dir = os.path.realpath(run_dir)
        digest = hashlib.sha1(self.run_dir.encode()).hexdigest()[:20]
        self.candidates = [os.path.join(self.run_dir, CACHE_NAME)]
        scratch = proposal_scratch(run_dir)
        if scratch is not None:
            self.candidates.append(os.path.join(scratch[0], SCRATCH_FOLDER,
                                                f"{scratch[1]}.npz"))
        self.candidates.append(os.path.join(user_cache_dir(), f"{digest}.npz"))
        self.writable = writable
        self.entries: dict[str, dict] = {}
        self.changed = False
        #: Where the cache was read from / last written to (None: neither yet).
        self.loaded_from: str | None = None
        self.written_to: str | None = None
        self._unwritable: set[str] = set()  # folders where writing failed
        for path in self._newest_first():
            if self._load(path):
                self.loaded_from = path
                break

    def _newest_first(self) -> list[str]:
        found = []
        for path in self.candidates:
            try:
                found.append((os.stat(path).st_mtime_ns, path))
            except OSError:
                continue
        return [path for _, path in sorted(found, key=lambda x: -x[0])]

    def describe(self) -> str:
        """Where the cache is, for ``info()``: one line."""
        where = self.written_to or self.loaded_from
        if not self.writable:
            return f"{where}, never written" if where else "none found, none written"
        if where is None:
            return "not written: no writable place (" + ", ".join(self.candidates) + ")"
        return f"{where} (updated at exit; off: {MODE_ENV}=0)"

    # -- reading --------------------------------------------------------------------
    def _load(self, path: str) -> bool:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                if meta.get("version") != CACHE_VERSION:
                    return False
                data = z["data"]
            tables = {name: data[a:b].reshape(shape)
                      for name, (a, b, shape) in meta["tables"].items()}
            self._unpack(meta, tables)
        except Exception:  # noqa: BLE001 - a broken cache (BadZipFile, EOFError...) is ignored
            self.entries.clear()
            return False
        return True

    def _unpack(self, meta: dict, t: dict) -> None:
        names, strings = meta["names"], meta["strings"]
        tids = t["tids"].view(np.uint64)
        valid = t["valid"].astype(bool)
        origin = t["origin"].astype(np.int32)
        index_data = t["index_data"].view(np.uint64)
        # (source_ids, control, instrument, legacy), shared by the files that have them
        source_sets = [(sids, frozenset(control), frozenset(instrument), legacy)
                       for sids, control, instrument, legacy in meta["source_sets"]]
        rows = t["files"].tolist()
        # Rows of index_keys per file (written in file order); dicts are built on first use.
        ik = t["index_keys"]
        fnums = np.arange(len(names))
        ik_start = np.searchsorted(ik[:, 0], fnums, "left").tolist()
        ik_stop = np.searchsorted(ik[:, 0], fnums, "right").tolist()
        for fi, (name, row) in enumerate(zip(names, rows, strict=True)):
            (n, off, mtime_ns, size, version, sources, n_zero, n_suspect, increasing, first,
             last, first_valid, last_valid, origin_off, ino, ctime_ns, index_rows) = row
            source_ids, control, instrument, legacy = source_sets[sources]
            self.entries[name] = {
                "format_version": strings[version],
                "train_ids": tids[off:off + n],
                "valid": valid[off:off + n],
                "origin": origin[origin_off:origin_off + n] if origin_off >= 0 else None,
                "source_ids": source_ids,
                "control_sources": control,
                "instrument_sources": instrument,
                "legacy_sources": legacy,
                "index": partial(_index_dict, ik[ik_start[fi]:ik_stop[fi]], strings,
                                 index_data, n) if ik_stop[fi] > ik_start[fi] else {},
                "summary": (n_zero, n_suspect, bool(increasing), first, last, first_valid,
                            last_valid),
                "mtime_ns": mtime_ns,
                "size": size,
                "ino": ino,
                "ctime_ns": ctime_ns,
                "index_rows": index_rows,
            }

    def get(self, filename: str, st: os.stat_result) -> dict | None:
        """Cached info for a file if it is still the same file (see :func:`same_file`)."""
        info = self.entries.get(os.path.basename(filename))
        if info is None or not same_file(info, st):
            return None
        return info

    # -- updating -------------------------------------------------------------------
    def put(self, filename: str, info: dict) -> None:
        self.entries[os.path.basename(filename)] = info
        self.changed = True

    def drop_missing(self, names: set[str]) -> None:
        """Forget entries for files no longer present."""
        for gone in set(self.entries) - names:
            del self.entries[gone]
            self.changed = True

    def watch(self, fa) -> None:
        """Add indexes that *fa* (a FileAccess from this map) reads later to the cache."""
        if self.writable:
            fa.index_listener = self._index_read

    def _index_read(self, fa) -> None:
        name = os.path.basename(fa.filename)
        info = self.entries.get(name)
        if info is None or _identity(info) != (fa.size, fa.mtime_ns, fa.ino, fa.ctime_ns):
            return
        self.entries[name] = fa.info()
        if not self.changed:
            self.changed = True
            _pending.add(self)
            try:
                _exit_writer()
            except RuntimeError:  # no thread now (interpreter shutting down): tried at exit
                pass

    # -- writing --------------------------------------------------------------------
    def _pack(self) -> tuple[bytes, np.ndarray]:
        strings: dict[str, int] = {}

        def sid(s: str) -> int:
            return strings.setdefault(s, len(strings))

        names = list(self.entries)
        rows, tids, valid = [], [], []
        source_sets: dict[str, int] = {}  # JSON of (source_ids, control, ...) -> number
        index_keys, index_data, origin = [], [], []
        off = ioff = ooff = 0
        for fi, name in enumerate(names):
            info = self.entries[name]
            t = np.asarray(info["train_ids"], np.uint64)
            n = len(t)
            origin_off = -1
            if info.get("origin") is not None:
                origin_off = ooff
                origin.append(np.asarray(info["origin"], np.int64)[:n])
                ooff += n
            n_zero, n_suspect, increasing, first, last, first_valid, last_valid = \
                info["summary"]
            sources = json.dumps([list(info["source_ids"]), sorted(info["control_sources"]),
                                  sorted(info["instrument_sources"]),
                                  dict(sorted(info["legacy_sources"].items()))])
            rows.append((n, off, info["mtime_ns"], info["size"], sid(info["format_version"]),
                         source_sets.setdefault(sources, len(source_sets)), n_zero, n_suspect,
                         int(increasing), first, last, first_valid, last_valid, origin_off,
                         info["ino"], info["ctime_ns"], info.get("index_rows", n)))
            tids.append(t.view(np.int64))
            valid.append(np.asarray(info["valid"], np.int64))
            off += n
            index = info.get("index") or {}
            if callable(index):  # packed, as loaded
                index = index()
            for (src, grp), (firsts, counts) in index.items():
                index_keys.append((fi, sid(src), sid(grp), ioff))
                index_data += [np.asarray(firsts, np.uint64).view(np.int64),
                               np.asarray(counts, np.uint64).view(np.int64)]
                ioff += 2 * n

        def table(items, width):
            return np.asarray(items, np.int64).reshape(-1, width)

        def flat(parts):
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)

        parts = {
            "files": table(rows, len(_FILE_COLS)), "tids": flat(tids), "valid": flat(valid),
            "index_keys": table(index_keys, 4), "index_data": flat(index_data),
            "origin": flat(origin),
        }
        layout, pos = {}, 0
        for name in _TABLES:
            arr = parts[name]
            layout[name] = (pos, pos + arr.size, arr.shape)
            pos += arr.size
        meta = {"version": CACHE_VERSION, "names": names, "strings": list(strings),
                "source_sets": [json.loads(x) for x in source_sets], "tables": layout}
        data = np.concatenate([parts[name].reshape(-1) for name in _TABLES])
        return json.dumps(meta).encode(), data

    def save(self) -> str | None:
        """Write the cache (atomically) to the first writable location; return its path.

        Never raises for a folder that cannot be written: the next place is tried, and
        None is returned when there is none (or nothing changed, or the map is read-only).
        """
        if not self.changed or not self.writable:
            return None
        meta, data = self._pack()
        for path in self.candidates:
            folder = os.path.dirname(path)
            if folder in self._unwritable:
                continue
            try:
                _write_atomically(path, meta, data)
            except OSError as e:
                log.debug("run cache not written to %s: %s", path, e)
                self._unwritable.add(folder)
                continue
            self.changed = False
            self.written_to = path
            _pending.discard(self)
            return path
        return None


def _write_atomically(path: str, meta: bytes, data: np.ndarray) -> None:
    """Write the npz under a tagged temporary name, then rename it to *path*."""
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(name) + ".*.tmp")):
        if left_by_dead_process(os.path.basename(stale)[len(name) + 1:-len(".tmp")]):
            try:  # a write abandoned at the exit of a process that is gone
                os.unlink(stale)
            except OSError:
                pass
    tmp = f"{path}.{owner_tag()}.tmp"
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, meta=np.frombuffer(meta, np.uint8), data=data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _identity(info: dict) -> tuple:
    return info["size"], info["mtime_ns"], info.get("ino"), info.get("ctime_ns")


def same_file(info: dict, st: os.stat_result) -> bool:
    """Whether *st* is the file *info* was scanned from: same size, mtime, inode, ctime.

    The inode changes when a file is replaced by another (copy + rename, tar, rsync);
    the status-change time changes on any write or ``touch -r`` and cannot be set back,
    so a replacement of the same size and mtime is still seen.
    """
    return _identity(info) == (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _index_dict(keys: np.ndarray, strings: list[str], data: np.ndarray, n: int) -> dict:
    """{(source, group): (firsts, counts)} of one file from its rows of index_keys."""
    return {(strings[src], strings[grp]): (data[off:off + n], data[off + n:off + 2 * n])
            for _fi, src, grp, off in keys.tolist()}


# Run maps holding indexes read after they were saved; written when Python exits.
_pending: set[RunMap] = set()


def describe_cache(run_map: RunMap | None, why: str) -> str:
    """One line for ``info()``: where the cache is, or that it is off (*why*: what set the
    mode, '' for the default)."""
    if run_map is None:
        return f"off ({why})"
    return run_map.describe() + (f" ({why})" if why else "")


def _save_all(run_maps: list[RunMap]) -> None:
    for run_map in run_maps:
        try:
            run_map.save()
        except Exception as e:  # noqa: BLE001 - a cache must never break the exit
            log.debug("run cache of %s not written: %s", run_map.run_dir, e)


class _ExitWriter:
    """An idle daemon thread that writes the pending caches when told to, at exit.

    Started when a cache first has something to add, not at exit: Python 3.12 refuses to
    start threads in atexit handlers. A daemon thread, so one stuck on a slow or hung file
    system does not keep Python alive.
    """

    def __init__(self):
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="exfel_data run cache")
        self.thread.start()

    def _run(self) -> None:
        self.go.wait()
        _save_all(list(_pending))

    def usable(self) -> bool:
        return self.thread.is_alive() and not self.go.is_set()  # (not alive after a fork)


_writer: _ExitWriter | None = None


def _exit_writer() -> _ExitWriter:
    global _writer
    if _writer is None or not _writer.usable():
        _writer = _ExitWriter()
    return _writer


@atexit.register
def _save_pending(budget: float | None = None) -> bool:
    """Write the pending caches, waiting at most *budget* s (``EXIT_BUDGET_S``); return
    whether they were all written in time (else the writing thread is abandoned)."""
    if not _pending:
        return True
    try:
        writer = _exit_writer()
    except RuntimeError:  # no thread can be started at interpreter shutdown (3.12)
        return False
    start = time.monotonic()
    writer.go.set()
    writer.thread.join(EXIT_BUDGET_S if budget is None else budget)
    if writer.thread.is_alive():
        log.debug("run cache writing abandoned after %.1f s", time.monotonic() - start)
        return False
    return True
