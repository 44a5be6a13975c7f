"""Scanning a set of EXDF files for a collection: unreadable ones skipped with a warning,
damage (train ID 0 rows, unknown versions, suspect train IDs) reported once.

Shared by :mod:`exfel_data.opening` and :meth:`DataCollection.from_paths`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import namedtuple

import numpy as np

from . import format as fmt
from .exceptions import ExfelDataError
from .file_access import FileAccess
from .format import KNOWN_VERSIONS
from .run_map import RunMap
from .scan import scan_file

__all__ = ["SuspectTrain", "open_files", "report_bad_trains", "no_readable", "suspect_trains"]

SuspectTrain = namedtuple("SuspectTrain", "file row train_id origin")
SuspectTrain.__doc__ = """A train ID the file marks as suspect (or out of order in format 0.5).

Fields: ``file`` (its path), ``row`` (in the file's INDEX), ``train_id``, and ``origin``,
the source that sent it where INDEX/origin says so.
"""

def open_files(paths: list[str], run_map: RunMap | None) -> tuple[list[FileAccess], list]:
    """Scan files (or take them from the cache); return (files, [(path, error)])."""
    files, skipped, todo = [], [], []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            skipped.append((p, e))
            continue
        info = run_map.get(p, st) if run_map is not None else None
        if info is not None:
            fa = FileAccess(p, info)
            run_map.watch(fa)
            files.append(fa)
        else:
            todo.append((p, st))
    progress = todo
    # Only then is scanning slow enough to show progress, and only then can it be seen:
    # importing tqdm.auto costs ~50 ms, a sixth of scanning 450 files.
    if len(todo) > 50 and (getattr(sys.stderr, "isatty", bool)() or "ipykernel" in sys.modules):
        from tqdm.auto import tqdm

        progress = tqdm(todo, desc="Scanning files", unit="file", disable=None, leave=False)
    for p, st in progress:
        try:
            info = scan_file(p, st)
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped
            skipped.append((p, e))
            continue
        fa = FileAccess(p, info)
        files.append(fa)
        if run_map is not None:
            run_map.put(p, info)
            run_map.watch(fa)
    for p, e in skipped:
        warnings.warn(f"Skipping unreadable file {p}: {type(e).__name__}: {e}", stacklevel=3)
    return files, skipped


def report_bad_trains(files: list[FileAccess], inc_suspect: bool) -> None:
    zero = [(fa, fa.n_zero) for fa in files if fa.n_zero]
    for fa, n in zero:
        warnings.warn(f"{fa.filename}: {n} row(s) with train ID 0 in the middle of "
                      "INDEX/trainId ignored as corrupt.", stacklevel=3)
    for fa in files:
        if fa.format_version not in KNOWN_VERSIONS:
            warnings.warn(f"{fa.filename}: unknown dataFormatVersion {fa.format_version!r}; "
                          "read like version 1.3. Check it with `exfel-data validate`.",
                          stacklevel=3)
        if fa.index_rows and not len(fa.train_ids) and fa.all_sources:
            eg = sorted(fa.all_sources)[0]
            warnings.warn(
                f"{fa.filename}: all {fa.index_rows} rows of INDEX/trainId are 0, so its data "
                f"cannot be placed by train and is not used ({len(fa.all_sources)} source(s), "
                f"e.g. {eg!r}). Check it with `exfel-data validate`.", stacklevel=3)
    suspect = suspect_trains(files)
    if suspect:
        nfiles = len({s.file for s in suspect})
        s0 = suspect[0]
        sent = f", sent by {s0.origin}" if s0.origin else ""
        action = ("included; pass inc_suspect_trains=False to skip them" if inc_suspect
                  else "skipped (inc_suspect_trains=False)")
        warnings.warn(
            f"{len(suspect)} suspect train ID(s) in {nfiles} file(s) {action}. First: "
            f"train {s0.train_id} at row {s0.row} of {os.path.basename(s0.file)}{sent}. "
            "Details: run.suspect_trains", stacklevel=3)


def no_readable(what: str, skipped) -> ExfelDataError:
    lines = "\n".join(f"  {p}: {type(e).__name__}: {e}" for p, e in skipped[:10])
    more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    return ExfelDataError(f"No readable EXDF files in {what} ({len(skipped)} skipped):\n"
                          f"{lines}{more}")


def _origin_name(fa: FileAccess, origin: int) -> str:
    if origin < 0:
        return "time server"
    if origin < len(fa.source_ids) and fa.source_ids[origin]:
        return fmt.parse_source_id(fa.source_ids[origin])[1]
    return f"source #{origin}"


def suspect_trains(files) -> list[SuspectTrain]:
    out = []
    for fa in files:
        if not fa.n_suspect:
            continue
        for row in np.flatnonzero(~fa.valid & ~fa.zero_rows):
            origin = None
            if fa.origin is not None and fa.format_version >= "1.2":
                origin = _origin_name(fa, int(fa.origin[row]))
            out.append(SuspectTrain(fa.filename, int(row), int(fa.train_ids[row]), origin))
    return out
