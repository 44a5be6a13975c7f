"""Opening runs and files: ``RunDirectory``, ``H5File``, ``open_run``.

Finds the files, scans them (or takes their indexes from the run's cache, see
:mod:`run_map`), skips unreadable ones with a warning, reports corrupt and suspect train
IDs, and hands the files to :meth:`DataCollection.from_files`.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import warnings
from collections.abc import Callable, Iterable

from .aliases import DEFAULT_ALIASES_FILE, AliasSpec, default_alias_file
from .collection import DataCollection, _run_identity, _suspect_trains
from .exceptions import ExfelDataError
from .file_access import FileAccess
from .format import KNOWN_VERSIONS
from .run_map import RunMap
from .scan import scan_file

__all__ = ["RunDirectory", "H5File", "open_run", "find_proposal", "from_paths"]


def _open_files(paths: list[str], run_map: RunMap | None) -> tuple[list[FileAccess], list]:
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


def _report_bad_trains(files: list[FileAccess], inc_suspect: bool) -> None:
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
    suspect = _suspect_trains(files)
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


def _no_readable(what: str, skipped) -> ExfelDataError:
    lines = "\n".join(f"  {p}: {type(e).__name__}: {e}" for p, e in skipped[:10])
    more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    return ExfelDataError(f"No readable EXDF files in {what} ({len(skipped)} skipped):\n"
                          f"{lines}{more}")


#: EXtra-data's virtual overview file in a run folder, skipped by RunDirectory.
OVERVIEW_FILE_NAME = "overview.h5"


def RunDirectory(path: str | os.PathLike, include: str = "*",
                 file_filter: Callable[[list[str]], list[str]] | None = None, *,
                 inc_suspect_trains: bool = True, cache: bool = True,
                 aliases: AliasSpec | None = None) -> DataCollection:
    """Open a run folder of EXDF HDF5 files.

    Parameters
    ----------
    path : str or Path
        The run folder (e.g. ``.../raw/r0238``).
    include : str
        Glob on file names, e.g. ``'*DA01*'``.
    file_filter : callable, optional
        Takes and returns a list of paths, to choose files.
    inc_suspect_trains : bool
        Include train IDs the files mark as suspect (default). See ``suspect_trains``.
    cache : bool
        Use and update the per-run cache of file indexes (see :mod:`run_map`).
    aliases : dict, str or path, optional
        Aliases or an alias file, applied with ``DataCollection.with_aliases``.

    Notes
    -----
    An EXtra-data virtual overview file (``overview.h5``) in the folder is skipped: it
    holds the other files' data again. Open it on its own with :func:`H5File`.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Run folder not found: {path}")
    # An EXtra-data "virtual overview" file maps every other file again: reading it too
    # would double each source; the run map (below) gives the fast opening it is for.
    names = sorted(n for n in os.listdir(path)
                   if n.endswith(".h5") and n.lower() != OVERVIEW_FILE_NAME)
    if include != "*":
        names = [n for n in names if fnmatch.fnmatch(n, include)]
    prefix = os.path.join(path, "")
    paths = [prefix + n for n in names]  # absolute and normalised
    if file_filter is not None:
        given = len(paths)
        paths = list(file_filter(paths))
        if given and not paths:
            raise FileNotFoundError(f"file_filter kept none of the {given} .h5 files "
                                    f"matching {include!r} in {path}")
    if not paths:
        raise FileNotFoundError(f"No .h5 files matching {include!r} in {path}")
    run_map = RunMap(path) if cache else None
    files, skipped = _open_files(paths, run_map)
    if not files:
        raise _no_readable(path, skipped)
    if run_map is not None:
        if include == "*" and file_filter is None:
            run_map.drop_missing(set(names))
        run_map.save()
    _report_bad_trains(files, inc_suspect_trains)
    # (a file_filter may return paths elsewhere)
    runs = frozenset([_run_identity(path)]) if file_filter is None else None
    data = DataCollection.from_files(files, inc_suspect_trains=inc_suspect_trains, runs=runs)
    return data if aliases is None else data.with_aliases(aliases)


def H5File(path: str | os.PathLike, *, inc_suspect_trains: bool = True,
           aliases: AliasSpec | None = None) -> DataCollection:
    """Open a single EXDF HDF5 file as a collection.

    Parameters
    ----------
    path : str or path-like
        The ``.h5`` file.
    inc_suspect_trains : bool
        Include train IDs the file marks as suspect (default). See ``suspect_trains``.
    aliases : dict, str or path, optional
        Aliases or an alias file, applied with ``DataCollection.with_aliases``.

    Returns
    -------
    DataCollection

    Raises
    ------
    FileNotFoundError
        No such file.
    ExfelDataError
        The file cannot be read as EXDF (the message says why).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"File not found: {path}")
    files, skipped = _open_files([path], None)
    if not files:
        raise _no_readable(path, skipped)
    _report_bad_trains(files, inc_suspect_trains)
    data = DataCollection.from_files(files, inc_suspect_trains=inc_suspect_trains)
    return data if aliases is None else data.with_aliases(aliases)


def from_paths(paths: Iterable[str | os.PathLike], *, inc_suspect_trains: bool = True,
               aliases: AliasSpec | None = None) -> DataCollection:
    """Open a list of EXDF files (any folders) as one collection; see ``H5File``.

    Unreadable files are skipped with a warning naming them and why.

    Raises
    ------
    ExfelDataError
        None of the files can be read (listing each with its reason).
    """
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    if not paths:
        raise FileNotFoundError("from_paths() got no file paths")
    files, skipped = _open_files(paths, None)
    if not files:
        raise _no_readable(f"the {len(paths)} paths given", skipped)
    _report_bad_trains(files, inc_suspect_trains)
    data = DataCollection.from_files(files, inc_suspect_trains=inc_suspect_trains)
    return data if aliases is None else data.with_aliases(aliases)


DATA_ROOT_ENV = "EXFEL_DATA_ROOT"
DEFAULT_DATA_ROOT = "/gpfs/exfel/exp"
EXTRA_DATA_ROOT_ENV = "EXTRA_DATA_DATA_ROOT"  # EXtra-data's name, used if ours is unset


def find_proposal(proposal, root: str | None = None) -> str:
    """Folder of a proposal: ``<root>/<INSTRUMENT>/<CYCLE>/p<NNNNNN>``.

    *root* defaults to ``$EXFEL_DATA_ROOT`` (else EXtra-data's ``$EXTRA_DATA_DATA_ROOT``,
    else ``/gpfs/exfel/exp``). A path is returned
    unchanged if it is a folder.
    """
    if isinstance(proposal, str) and os.path.isdir(proposal):
        return proposal
    root = root or os.environ.get(DATA_ROOT_ENV) or os.environ.get(
        EXTRA_DATA_ROOT_ENV, DEFAULT_DATA_ROOT)
    name = proposal if isinstance(proposal, str) and proposal.startswith("p") \
        else f"p{int(proposal):06d}"
    if os.path.isdir(root):
        for inst in sorted(os.listdir(root)):
            inst_dir = os.path.join(root, inst)
            if not os.path.isdir(inst_dir):
                continue
            for cycle in sorted(os.listdir(inst_dir)):
                cand = os.path.join(inst_dir, cycle, name)
                if os.path.isdir(cand):
                    return cand
    raise FileNotFoundError(
        f"Proposal {name} not found under {root} (looked for {root}/<INSTRUMENT>/<CYCLE>/"
        f"{name}). Set ${DATA_ROOT_ENV} to the folder holding the instrument folders.")


def open_run(proposal: int | str, run: int | str, data: str = "raw", include: str = "*",
             file_filter: Callable[[list[str]], list[str]] | None = None, *,
             inc_suspect_trains: bool = True, root: str | None = None,
             aliases: AliasSpec | None = DEFAULT_ALIASES_FILE) -> DataCollection:
    """Open a run by proposal and run number.

    Parameters
    ----------
    proposal : int or str
        Proposal number (``2012``, ``'p002012'``) or a proposal folder.
    run : int or str
        Run number.
    data : str
        ``'raw'``, ``'proc'`` or ``'all'`` (raw plus proc; a source in both is read from
        proc). Other folder names (``'usr'``...) are used as given.
    root : str, optional
        Data root; default ``$EXFEL_DATA_ROOT``.
    aliases : dict, str, path or None
        Aliases or an alias file (see ``DataCollection.with_aliases``); ``{}`` in a
        string stands for the proposal folder. By default the proposal's
        ``usr/extra-data-aliases.yml`` is used if it exists (created from the
        instrument's template in ``$EXTRA_DATA_SW_ROOT`` if there is one, as
        EXtra-data does); None: no aliases.
    """
    data_ = _open_run_data(proposal, run, data, root, dict(
        include=include, file_filter=file_filter, inc_suspect_trains=inc_suspect_trains))
    if isinstance(aliases, str):
        prop_dir = find_proposal(proposal, root)
        if aliases == DEFAULT_ALIASES_FILE:
            aliases = default_alias_file(prop_dir)
        else:
            aliases = aliases.format(prop_dir)
    return data_ if aliases is None else data_.with_aliases(aliases)


def _open_run_data(proposal, run, data: str, root, kw: dict) -> DataCollection:
    if data != "all":
        return RunDirectory(run_folder(proposal, run, data, root), **kw)
    raw_dir = run_folder(proposal, run, "raw", root)
    raw = RunDirectory(raw_dir, **kw)
    proc_dir = os.path.join(os.path.dirname(os.path.dirname(raw_dir)), "proc",
                            os.path.basename(raw_dir))
    if not os.path.isdir(proc_dir):
        warnings.warn(f"No proc folder {proc_dir}; using raw data only.", stacklevel=3)
        return raw
    proc = RunDirectory(proc_dir, **kw)
    both = raw.all_sources & proc.all_sources
    if both:
        raw = raw.deselect([(s, "*") for s in both]) if both != raw.all_sources else None
    return proc if raw is None else raw.union(proc)


def run_folder(proposal, run, data: str = "raw", root: str | None = None) -> str:
    """The folder of a run: ``<root>/<INSTRUMENT>/<CYCLE>/p<NNNNNN>/<data>/r<NNNN>``.

    Parameters
    ----------
    proposal, run, root
        As for :func:`open_run`.
    data : str
        The data folder: ``'raw'``, ``'proc'``, ``'usr'``...

    Raises
    ------
    FileNotFoundError
        Naming the folder looked for and the runs that exist there.
    """
    prop_dir = find_proposal(proposal, root)
    run_dir = os.path.join(prop_dir, data, f"r{int(str(run).lstrip('r')):04d}")
    if not os.path.isdir(run_dir):
        have = sorted(os.listdir(os.path.join(prop_dir, data))) \
            if os.path.isdir(os.path.join(prop_dir, data)) else []
        raise FileNotFoundError(f"Run folder {run_dir} not found ({len(have)} runs in "
                                f"{data}: {', '.join(have[:5])}{'...' if len(have) > 5 else ''})")
    return run_dir
