"""Named consistency checks on the raw HDF5 structure of EXDF run files.

The validator deliberately reads the files with h5py rather than through the
reader: it must see what a reader would repair or hide (padding, suspect train
IDs, index rows pointing past the data).

Each problem names the check, the file, the dataset and what to do about it::

    problems = validate_run("/data/r0238")
    for p in problems:
        print(p)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .format import KNOWN_VERSIONS

#: Check name -> one-line description (shown by ``exfel-data validate --help``).
CHECKS: dict[str, str] = {
    "unreadable": "the file cannot be opened, or lacks INDEX/trainId or METADATA",
    "format-version": "a METADATA/dataFormatVersion the reader does not know",
    "zero-train-ids": "train ID 0 before real train IDs (trailing zeros are padding)",
    "no-train-ids": "INDEX/trainId holds only zeros: no data of the file can be placed",
    "index-flag": "INDEX/flag shorter than INDEX/trainId (readers skip the file)",
    "train-id-order": "train IDs in INDEX/trainId not strictly increasing",
    "index-shape": "INDEX first/count arrays whose length differs from INDEX/trainId",
    "index-bounds": "index rows pointing beyond the end of a data set",
    "index-first": "the first data row of a source is not row 0",
    "index-gaps": "unused rows between the data of consecutive trains",
    "index-overlaps": "consecutive trains sharing data rows",
    "control-timestamps": "CONTROL timestamps going backwards from one train to the next",
    "duplicate-trains": "the same train ID for one source in two files",
    "dataset-mismatch": "a key stored with another dtype or entry shape than in other files",
}

_ADVICE: dict[str, str] = {
    "unreadable": "Readers skip this file, so its trains are missing. Check that it is complete "
                  "and readable (truncated copy? on tape? permissions?) and copy it again.",
    "format-version": "Readers read it like the newest known version (1.3) and may misread "
                      "it; check the file's origin and the exfel-data version.",
    "no-train-ids": "Readers cannot attribute any of this file's data to a train and leave "
                    "it out; copy the file again or report the run.",
    "index-flag": "exfel-data skips this file when opening the run (its trains are missing). "
                  "Copy the file again or report the run.",
    "zero-train-ids": "Rows with train ID 0 amid real trains are corrupt; readers ignore them. "
                      "If many trains are affected, report the run to the DAQ/data team.",
    "train-id-order": "A device sent a wrong train ID. Readers drop the suspect rows "
                      "(INDEX/flag, INDEX/origin names the sender); check the trains you "
                      "analyse are present.",
    "index-shape": "The index does not match the train list; readers may misalign trains. "
                   "Do not trust this source in this file without checking its train IDs.",
    "index-bounds": "Data for some trains is missing (file truncated or writer crashed); "
                    "those trains cannot be read. Exclude them or copy the file again.",
    "index-first": "Rows before the first train are unaccounted for; harmless for reading "
                   "but a sign of a writer problem worth reporting.",
    "index-gaps": "Some rows belong to no train; usually harmless (readers follow the index), "
                  "but report it if you see missing data.",
    "index-overlaps": "Several trains claim the same rows, so data is attributed to the wrong "
                      "train. Treat this source's data in these trains as unreliable.",
    "control-timestamps": "The device clock or DAQ sent older values for newer trains; "
                          "do not rely on the timestamps of this key for ordering.",
    "duplicate-trains": "Readers cannot tell which copy is right. Open the run with only one "
                        "of the files (e.g. exclude the other) or report the run.",
    "dataset-mismatch": "exfel-data refuses to read this key across the files (error naming "
                        "this file); read the other files with file_filter=... or report it.",
}


@dataclass(frozen=True)
class Problem:
    """One problem found by a named check."""

    check: str
    file: str
    message: str
    dataset: str | None = None

    @property
    def advice(self) -> str:
        """What the user can do about this kind of problem."""
        return _ADVICE[self.check]

    def __str__(self) -> str:
        where = f"{self.file}" + (f" :: {self.dataset}" if self.dataset else "")
        return f"[{self.check}] {where}\n    {self.message}\n    -> {self.advice}"


class UnknownCheckError(ValueError):
    """A check name given to ``skip`` that does not exist."""


def _check_names(skip: Iterable[str]) -> frozenset[str]:
    skip = frozenset(skip)
    unknown = sorted(skip - CHECKS.keys())
    if unknown:
        raise UnknownCheckError(
            f"Unknown check(s) {', '.join(map(repr, unknown))}. "
            f"Available checks: {', '.join(CHECKS)}"
        )
    return skip


# --- reading the raw structure -------------------------------------------------------------

def _listed_sources(f: h5py.File) -> list[str] | None:
    """METADATA's dataSourceId list as stored (INDEX/origin counts in it), or None."""
    for path in ("METADATA/dataSources/dataSourceId", "METADATA/dataSourceId"):
        if path in f:
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                    for v in f[path][()]]
    return None


def _source_entries(f: h5py.File) -> list[str]:
    """``CONTROL/<dev>`` and ``INSTRUMENT/<dev>:<chan>/<group>`` entries in this file."""
    listed = _listed_sources(f)
    if listed is not None:
        # Padding (b'') and pseudo sources (Karabo_TimerServer, no root) are skipped.
        return [s for s in listed if s.partition("/")[0] in ("CONTROL", "INSTRUMENT")]
    # No metadata list: fall back to the groups present.
    entries = [f"CONTROL/{s}" for s in _device_names(f.get("CONTROL"))]
    for src in _device_names(f.get("INSTRUMENT")):
        entries += [f"INSTRUMENT/{src}/{g}" for g in f[f"INSTRUMENT/{src}"]]
    return entries


def _device_names(group: h5py.Group | None) -> list[str]:
    """Source names under CONTROL or INSTRUMENT (three path levels: DOMAIN/TYPE/MEMBER)."""
    if group is None:
        return []
    names = []
    for a in group:
        for b in group[a]:
            names += [f"{a}/{b}/{c}" for c in group[f"{a}/{b}"]]
    return names


def _datasets(group: h5py.Group, prefix: str) -> list[str]:
    """Paths of all datasets below ``group`` (recursively), joined to ``prefix``."""
    found: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(f"{prefix}/{name}")

    group.visititems(visit)
    return sorted(found)


def _index(f: h5py.File, path: str) -> tuple[np.ndarray, np.ndarray]:
    grp = f[path]
    first = grp["first"][()].astype(np.int64)
    if "count" in grp:
        count = grp["count"][()].astype(np.int64)
    else:  # oldest files: first / last / status
        count = (grp["last"][()].astype(np.int64) - first + 1) * grp["status"][()]
    return first, count


@dataclass
class FileReport:
    """Problems of one file, and the trains each source holds data for (for run checks)."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    source_trains: dict[str, np.ndarray] = field(default_factory=dict)
    #: dataset path -> (dtype, entry shape), to compare keys across files
    entries: dict[str, tuple[str, tuple]] = field(default_factory=dict)


def validate_file(path: str | os.PathLike, skip: Iterable[str] = ()) -> FileReport:
    """Run the per-file checks on one HDF5 file (opened read-only).

    Parameters
    ----------
    path : str or path-like
        The ``.h5`` file.
    skip : iterable of str
        Names of checks (keys of :data:`CHECKS`) not to run.

    Returns
    -------
    FileReport
        The problems found and, per source, the train IDs it has data for.
    """
    skip = _check_names(skip)
    report = FileReport(str(path))
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError, but damaged files raise others too
        if "unreadable" not in skip:
            report.problems.append(Problem("unreadable", str(path),
                                           f"cannot open: {type(exc).__name__}: {exc}"))
        return report
    with f:
        try:
            _FileChecker(f, report, skip).run()
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            # Damage inside an otherwise openable file (truncated data, broken links).
            if "unreadable" not in skip:
                report.problems.append(Problem(
                    "unreadable", str(path), f"cannot read: {type(exc).__name__}: {exc}"))
    return report


class _FileChecker:
    def __init__(self, f: h5py.File, report: FileReport, skip: frozenset[str]):
        self.f = f
        self.report = report
        self.skip = skip

    def problem(self, check: str, message: str, dataset: str | None = None) -> None:
        if check not in self.skip:
            self.report.problems.append(Problem(check, self.report.path, message, dataset))

    def run(self) -> None:
        f = self.f
        missing = [p for p in ("INDEX/trainId", "METADATA") if p not in f]
        if missing:
            self.problem("unreadable", f"not a run file: missing {', '.join(missing)}")
            return
        train_ids = f["INDEX/trainId"][()].astype(np.uint64)
        self.check_version_and_flag(train_ids)
        valid = self.check_train_ids(train_ids)
        good = valid & self.good_rows(train_ids)
        for entry in _source_entries(f):
            section, _, rest = entry.partition("/")
            control = section == "CONTROL"
            source = rest if control else rest.rpartition("/")[0]  # drop the index group
            self.check_source(source, f"INDEX/{rest}", entry, train_ids, valid, good, control)

    def good_rows(self, tids: np.ndarray) -> np.ndarray:
        """Rows whose train ID is trustworthy: flagged good and increasing."""
        flagged = self.flag_good(tids)
        good = np.ones(len(tids), dtype=bool) if flagged is None else flagged
        running_max = np.maximum.accumulate(np.r_[np.uint64(0), tids[:-1]]) if len(tids) else tids
        good &= tids > running_max
        return good

    def flag_good(self, tids: np.ndarray) -> np.ndarray | None:
        """INDEX/flag as "train ID is good" (inverted in format 1.1), or None."""
        if "INDEX/flag" not in self.f or self.f["INDEX/flag"].shape != tids.shape:
            return None
        flag = self.f["INDEX/flag"][()]
        return (flag == 0) if self.version() == "1.1" else (flag != 0)

    def version(self) -> str:
        ds = self.f.get("METADATA/dataFormatVersion")
        if ds is None:
            return "0.5"
        v = ds[0]
        return v.decode() if isinstance(v, bytes) else str(v)

    def check_version_and_flag(self, tids: np.ndarray) -> None:
        """What makes readers misread or skip the file: its version and INDEX/flag."""
        version = self.version()
        if version not in KNOWN_VERSIONS:
            self.problem("format-version", f"dataFormatVersion {version!r}; known: "
                         f"{', '.join(KNOWN_VERSIONS[1:])} (or none for 0.5)",
                         "METADATA/dataFormatVersion")
        nonzero = np.flatnonzero(tids)
        if len(tids) and not len(nonzero):
            self.problem("no-train-ids", f"all {len(tids)} rows are 0", "INDEX/trainId")
        n = int(nonzero[-1]) + 1 if len(nonzero) else 0
        flag = self.f.get("INDEX/flag")
        if version != "0.5" and flag is not None and flag.shape[0] < n:
            self.problem("index-flag", f"{flag.shape[0]} flag(s) for {n} trains "
                         "(INDEX/trainId without its trailing zeros)", "INDEX/flag")

    def check_train_ids(self, tids: np.ndarray) -> np.ndarray:
        """Check INDEX/trainId; return a mask of rows holding a real (non-zero) train ID."""
        ds = "INDEX/trainId"
        nonzero = tids != 0
        if not nonzero.all():
            last_real = np.flatnonzero(nonzero)[-1] if nonzero.any() else -1
            inner = np.flatnonzero(~nonzero[: last_real + 1])
            if inner.size:
                self.problem("zero-train-ids",
                             f"{inner.size} row(s) with train ID 0 before the last real train, "
                             f"first at row {inner[0]}", ds)
        real = tids[nonzero]
        bad = np.flatnonzero(real[1:] <= real[:-1])
        if bad.size:
            rows = np.flatnonzero(nonzero)
            i = bad[0]
            msg = (f"{bad.size} place(s) where train IDs do not increase, first between rows "
                   f"{rows[i]} and {rows[i + 1]} ({real[i]} then {real[i + 1]})")
            flagged = self.flag_good(tids)
            if flagged is not None and not flagged[rows[i]:rows[i + 1] + 1].all():
                msg += "; INDEX/flag marks the suspect row(s)"
            origin = self.origin_of(rows[i + 1])
            if origin:
                msg += f"; INDEX/origin says it came from {origin}"
            self.problem("train-id-order", msg, ds)
        return nonzero

    def origin_of(self, row: int) -> str | None:
        if "INDEX/origin" not in self.f:
            return None
        origin = int(self.f["INDEX/origin"][row])
        if origin < 0:  # the time server: not informative about a wrong ID
            return None
        listed = _listed_sources(self.f) or []
        return listed[origin] if origin < len(listed) else f"source number {origin}"

    def check_source(self, source: str, index_path: str, data_path: str, tids: np.ndarray,
                     valid: np.ndarray, good: np.ndarray, control: bool) -> None:
        f = self.f
        if index_path not in f or data_path not in f:
            missing = index_path if index_path not in f else data_path
            self.problem("unreadable", f"source {source} listed in METADATA but {missing} "
                         "does not exist", missing)
            return
        first, count = _index(f, index_path)
        if first.shape != tids.shape or count.shape != tids.shape:
            self.problem("index-shape", f"first has {first.shape[0]} and count "
                         f"{count.shape[0]} entries, INDEX/trainId {tids.shape[0]}",
                         index_path)
            n = min(len(first), len(count), len(tids))
            first, count, tids, valid, good = first[:n], count[:n], tids[:n], valid[:n], good[:n]

        self.report.source_trains.setdefault(source, np.empty(0, np.uint64))
        self.report.source_trains[source] = np.union1d(
            self.report.source_trains[source], tids[valid & (count > 0)])

        # Layout checks look at every row holding data, also rows with a bad train ID
        # (their data still occupies the rows).
        used = count > 0
        datasets = _datasets(f[data_path], data_path)
        for ds in datasets:
            d = f[ds]
            self.report.entries[ds] = (str(d.dtype), tuple(d.shape[1:]))
        self.check_bounds(first[used], count[used], tids[used], datasets)
        self.check_contiguity(first[used], count[used], index_path)
        if control:
            # Suspect trains (already reported) carry timestamps of their wrong ID.
            ok = good & (count > 0)
            self.check_timestamps(source, first[ok], datasets)

    def check_bounds(self, first: np.ndarray, count: np.ndarray, tids: np.ndarray,
                     datasets: list[str]) -> None:
        if first.size == 0:
            return
        end = first + count
        for ds in datasets:
            length = self.f[ds].shape[0] if self.f[ds].shape else 0
            beyond = np.flatnonzero(end > length)
            if beyond.size:
                self.problem("index-bounds",
                             f"index needs rows up to {end.max()} but the data set has "
                             f"{length}; {beyond.size} train(s) affected, first train "
                             f"{tids[beyond[0]]}", ds)
                return  # one report per source: every key usually shares the cause

    def check_contiguity(self, first: np.ndarray, count: np.ndarray, index_path: str) -> None:
        if first.size == 0:
            return
        if first[0] != 0:
            self.problem("index-first", f"data starts at row {first[0]}, not 0", index_path)
        step = first[1:] - (first[:-1] + count[:-1])
        for check, where, word in (("index-gaps", step > 0, "gap"),
                                   ("index-overlaps", step < 0, "overlap")):
            pos = np.flatnonzero(where)
            if pos.size:
                i = pos[0]
                self.problem(check, f"{pos.size} {word}(s) between trains' rows, first after "
                             f"row {first[i]}+{count[i]} comes row {first[i + 1]}", index_path)

    def check_timestamps(self, source: str, rows: np.ndarray, datasets: list[str]) -> None:
        if rows.size < 2:
            return
        bad = []
        for ds in datasets:
            if not ds.endswith("/timestamp"):
                continue
            d = self.f[ds]
            if d.ndim != 1 or d.shape[0] == 0:
                continue
            ts = d[()][np.clip(rows, 0, d.shape[0] - 1)]
            back = np.flatnonzero(ts[1:] < ts[:-1])
            if back.size:
                bad.append((ds, back.size, rows[back[0] + 1], ts[back[0] + 1], ts[back[0]]))
        if bad:
            # One report per source: keys of one device usually share the cause.
            ds, n, row, later, earlier = bad[0]
            others = f" (and {len(bad) - 1} more key(s) of {source})" if len(bad) > 1 else ""
            self.problem("control-timestamps",
                         f"{n} step(s) backwards, first at row {row} ({later} < {earlier})"
                         f"{others}", ds)


def find_run_files(path: str | os.PathLike) -> list[Path]:
    """The ``.h5`` files of a run folder (sorted), or ``[path]`` for a single file."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"No such run folder or file: {p}")
    files = sorted(p.glob("*.h5"))
    if not files:
        raise FileNotFoundError(f"No .h5 files in {p}; is this a run folder?")
    return files


def duplicate_train_problems(reports: list[FileReport]) -> Iterator[Problem]:
    """The run-level check: one source holding the same train in two files."""
    seen: dict[str, list[tuple[str, np.ndarray]]] = {}
    for rep in reports:
        for source, trains in rep.source_trains.items():
            for other_path, other_trains in seen.get(source, []):
                common = np.intersect1d(trains, other_trains)
                if common.size:
                    yield Problem(
                        "duplicate-trains", rep.path,
                        f"source {source}: {common.size} train(s) also in "
                        f"{os.path.basename(other_path)} (e.g. train {common[0]})")
            seen.setdefault(source, []).append((rep.path, trains))


def dataset_mismatch_problems(reports: list[FileReport]) -> Iterator[Problem]:
    """The run-level check: a key with another dtype or entry shape than in other files."""
    seen: dict[str, tuple[str, tuple[str, tuple]]] = {}  # dataset -> (first file, meta)
    for rep in reports:
        for ds, meta in rep.entries.items():
            first = seen.setdefault(ds, (rep.path, meta))
            if first[1] != meta:
                yield Problem(
                    "dataset-mismatch", rep.path,
                    f"{meta[0]} entries of shape {meta[1]} here, {first[1][0]} of shape "
                    f"{first[1][1]} in {os.path.basename(first[0])}", ds)


def validate_run(path: str | os.PathLike, skip: Iterable[str] = (),
                 progress: Callable[[Iterable], Iterable] | None = None) -> list[Problem]:
    """Run all checks (except ``skip``) on a run folder or a single file.

    Parameters
    ----------
    path : str or path-like
        A run folder or one ``.h5`` file.
    skip : iterable of str
        Names of checks (keys of :data:`CHECKS`) not to run.
    progress : callable, optional
        Wraps the iterable of files, e.g. ``tqdm.tqdm``, to show progress.

    Returns
    -------
    list of Problem
        Empty when the run is clean.
    """
    skip = _check_names(skip)
    files = find_run_files(path)
    iterable = progress(files) if progress is not None else files
    reports = [validate_file(fp, skip) for fp in iterable]
    problems = [p for rep in reports for p in rep.problems]
    if "duplicate-trains" not in skip:
        problems += duplicate_train_problems(reports)
    if "dataset-mismatch" not in skip:
        problems += dataset_mismatch_problems(reports)
    return problems
