"""Per-run cache of each file's train IDs, sources and index.

Reopening a run of hundreds of files then needs one small read plus a ``stat`` per file
instead of opening every file. Entries are validated by file modification time and
size; stale or missing entries are rescanned. The cache is written beside the run
(``<run>/.exfel_data_map.npz``) when that folder is writable, otherwise in the user cache
dir (``$EXFEL_DATA_CACHE_DIR`` or ``$XDG_CACHE_HOME/exfel_data/run_maps``). Source files
are never modified. The format is JSON + flat numpy arrays (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

__all__ = ["RunMap"]

CACHE_NAME = ".exfel_data_map.npz"
CACHE_VERSION = 1


def user_cache_dir() -> str:
    base = os.environ.get("EXFEL_DATA_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "exfel_data", "run_maps")


class RunMap:
    """Cached file infos for one run directory.

    Parameters
    ----------
    run_dir : str
        The run folder.
    """

    def __init__(self, run_dir: str):
        self.run_dir = os.path.realpath(run_dir)
        digest = hashlib.sha1(self.run_dir.encode()).hexdigest()[:20]
        self.candidates = [
            os.path.join(self.run_dir, CACHE_NAME),
            os.path.join(user_cache_dir(), f"{digest}.npz"),
        ]
        self.entries: dict[str, dict] = {}
        self.changed = False
        for path in self.candidates:
            if self._load(path):
                break

    def _load(self, path: str) -> bool:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("version") != CACHE_VERSION:
                    return False
                data, origin = z["data"], z["origin"]
        except (OSError, ValueError, KeyError):
            return False
        for name, m in meta["files"].items():
            n = m["n"]
            o = m["off"]
            info = {
                "format_version": m["format_version"],
                "train_ids": data[o:o + n],
                "valid": data[o + n:o + 2 * n].astype(bool),
                "origin": origin[m["origin_off"]:m["origin_off"] + n].astype(np.int32)
                if m["origin_off"] >= 0 else None,
                "source_ids": m["source_ids"],
                "control_sources": m["control"],
                "instrument_sources": m["instrument"],
                "legacy_sources": m["legacy"],
                "index": {
                    (s, g): (data[io:io + n], data[io + n:io + 2 * n])
                    for s, g, io in m["index"]
                },
                "mtime_ns": m["mtime_ns"],
                "size": m["size"],
            }
            self.entries[name] = info
        return True

    def get(self, filename: str, st: os.stat_result) -> dict | None:
        """Cached info for a file if its mtime and size still match, else None."""
        info = self.entries.get(os.path.basename(filename))
        if info is None or info["mtime_ns"] != st.st_mtime_ns or info["size"] != st.st_size:
            return None
        return info

    def put(self, filename: str, info: dict) -> None:
        self.entries[os.path.basename(filename)] = info
        self.changed = True

    def drop_missing(self, names: set[str]) -> None:
        """Forget entries for files no longer present."""
        for gone in set(self.entries) - names:
            del self.entries[gone]
            self.changed = True

    def save(self) -> str | None:
        """Write the cache (atomically) to the first writable location; return its path."""
        if not self.changed:
            return None
        meta_files, chunks, origins = {}, [], []
        off = ooff = 0
        for name, info in self.entries.items():
            tids = np.asarray(info["train_ids"], np.uint64)
            n = len(tids)
            m = {
                "n": n, "off": off, "format_version": info["format_version"],
                "source_ids": list(info["source_ids"]),
                "control": sorted(info["control_sources"]),
                "instrument": sorted(info["instrument_sources"]),
                "legacy": dict(info["legacy_sources"]),
                "mtime_ns": info["mtime_ns"], "size": info["size"], "index": [],
                "origin_off": -1,
            }
            chunks += [tids, np.asarray(info["valid"], np.uint64)]
            off += 2 * n
            for (s, g), (firsts, counts) in info["index"].items():
                m["index"].append((s, g, off))
                chunks += [np.asarray(firsts, np.uint64), np.asarray(counts, np.uint64)]
                off += 2 * n
            if info["origin"] is not None:
                m["origin_off"] = ooff
                origins.append(np.asarray(info["origin"], np.int64))
                ooff += n
            meta_files[name] = m
        meta = json.dumps({"version": CACHE_VERSION, "files": meta_files}).encode()
        data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
        origin = np.concatenate(origins) if origins else np.zeros(0, np.int64)
        for path in self.candidates:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            except OSError:
                continue
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, meta=np.frombuffer(meta, np.uint8), data=data, origin=origin)
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; others may share it
                os.replace(tmp, path)
            except OSError:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                continue
            self.changed = False
            return path
        return None
