"""Opening runs and files: ``RunDirectory``, ``H5File``, ``open_run``.

Finds the files, scans them (or takes their indexes from the run's cache, see
:mod:`run_map`), skips unreadable ones with a warning, reports corrupt and suspect train
IDs, and hands the files to :meth:`DataCollection.from_files`.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

from .aliases import DEFAULT_ALIASES_FILE, AliasSpec, default_alias_file
from .collection import DataCollection
from .euxfel_paths import DATA_ROOT_ENV, data_root, run_identity
from .file_set import no_readable as _no_readable
from .file_set import open_files as _open_files
from .file_set import report_bad_trains as _report_bad_trains
from .run_map import RunMap, cache_mode, describe_cache

__all__ = ["RunDirectory", "H5File", "open_run", "find_proposal"]


#: EXtra-data's virtual overview file in a run folder, skipped by RunDirectory.
OVERVIEW_FILE_NAME = "overview.h5"


def RunDirectory(path: str | os.PathLike, include: str = "*",
                 file_filter: Callable[[list[str]], list[str]] | None = None, *,
                 inc_suspect_trains: bool = True,
                 cache: bool | Literal['read'] = True,
                 aliases: AliasSpec | None = None,
                 parallelize: bool = True) -> DataCollection:
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
    cache : bool or 'read'
        Use and update the per-run cache of file indexes (where it is: ``info()``, and
        docs/reading.md "Fast reopening"); ``'read'`` uses it but never writes one;
        ``False`` neither. ``$EXFEL_DATA_RUN_CACHE`` (``0``, ``read``) can restrict this.
    aliases : dict, str or path, optional
        Aliases or an alias file, applied with ``DataCollection.with_aliases``.
    parallelize : bool
        Accepted for EXtra-data code, which uses it to avoid child processes (e.g. in a
        daemon process); exfel_data opens files in the calling process either way.

    Raises
    ------
    FileNotFoundError
        No such folder, or no ``.h5`` file in it matching *include* / *file_filter*.
    ExfelDataError
        No file could be read (each one's error is listed), or *cache* or
        ``$EXFEL_DATA_RUN_CACHE`` has a value not understood.

    Notes
    -----
    An EXtra-data virtual overview file (``overview.h5``) in the folder is skipped: it
    holds the other files' data again. Open it on its own with :func:`H5File`.
    """
    path = os.path.abspath(os.fspath(path))
    mode, why = cache_mode(cache)
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
    run_map = RunMap(path, writable=mode == "on") if mode != "off" else None
    files, skipped = _open_files(paths, run_map)
    if not files:
        raise _no_readable(path, skipped)
    status = partial(describe_cache, run_map, why)
    for fa in files:
        fa.cache_status = status
    if run_map is not None:
        if include == "*" and file_filter is None:
            run_map.drop_missing(set(names))
        run_map.save()
    _report_bad_trains(files, inc_suspect_trains)
    # (a file_filter may return paths elsewhere)
    runs = frozenset([run_identity(path)]) if file_filter is None else None
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


def find_proposal(proposal, root: str | None = None) -> str:
    """Folder of a proposal: ``<root>/<INSTRUMENT>/<CYCLE>/p<NNNNNN>``.

    *root* defaults to ``$EXFEL_DATA_ROOT`` (else EXtra-data's ``$EXTRA_DATA_DATA_ROOT``,
    else ``/gpfs/exfel/exp``). A path is returned
    unchanged if it is a folder.
    """
    if isinstance(proposal, (str, os.PathLike)) and os.path.isdir(proposal):
        return os.fspath(proposal)
    root = root or data_root()
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


def open_run(proposal: int | str, run: int | str, data: str | Sequence[str] = "default",
             include: str = "*",
             file_filter: Callable[[list[str]], list[str]] | None = None, *,
             inc_suspect_trains: bool = True, root: str | None = None,
             cache: bool | Literal['read'] = True,
             aliases: AliasSpec | None = DEFAULT_ALIASES_FILE,
             parallelize: bool = True) -> DataCollection:
    """Open a run by proposal and run number.

    Parameters
    ----------
    proposal : int, str or path
        Proposal number (``2012``, ``'2012'``, ``'p002012'``) or a proposal folder.
    run : int or str
        Run number.
    data : str or sequence of str
        ``'default'`` (as in EXtra-data: raw plus proc if the run has proc files; a source
        in both is read from raw), ``'raw'``, ``'proc'``, ``'all'`` (raw plus proc; a
        source in both is read from proc), or a list of folder names combined in order (a
        source in several is read from the last). Other folder names (``'usr'``...) are
        used as given. When combining, a folder other than the first that has no files of
        the run is skipped with a warning (``'default'``: proc silently).
    root : str, optional
        Data root; default ``$EXFEL_DATA_ROOT``.
    cache : bool or 'read'
        The per-run index cache, as for :func:`RunDirectory` (each data folder has its
        own).
    aliases : dict, str, path or None
        Aliases or an alias file (see ``DataCollection.with_aliases``); ``{}`` in a
        string stands for the proposal folder. By default the proposal's
        ``usr/extra-data-aliases.yml`` is used if it exists (created from the
        instrument's template in ``$EXTRA_DATA_SW_ROOT`` if there is one, as
        EXtra-data does); None: no aliases.
    parallelize : bool
        Accepted for EXtra-data code; see :func:`RunDirectory`.
    """
    data_ = _open_run_data(proposal, run, data, root, dict(
        include=include, file_filter=file_filter, inc_suspect_trains=inc_suspect_trains,
        cache=cache))
    if isinstance(aliases, str):
        prop_dir = find_proposal(proposal, root)
        if aliases == DEFAULT_ALIASES_FILE:
            aliases = default_alias_file(prop_dir)
        else:
            aliases = aliases.format(prop_dir)
    return data_ if aliases is None else data_.with_aliases(aliases)


def _open_run_data(proposal, run, data, root, kw: dict) -> DataCollection:
    """The run's data from one data folder, or several combined (see ``open_run``)."""
    if isinstance(data, str) and data not in ("all", "default"):
        return RunDirectory(run_folder(proposal, run, data, root), **kw)
    # Later folders win for sources found in several, as in EXtra-data.
    named = {"all": ["raw", "proc"], "default": ["proc", "raw"]}
    folders = named[data] if isinstance(data, str) else list(data)
    if not folders or not all(isinstance(f, str) for f in folders):
        raise ValueError(f"open_run(data=...): a folder name, 'all', 'default' or a list "
                         f"of folder names, not {data!r}")
    absence_ok = {"proc"} if data == "default" else set()  # not corrected (yet)
    combined = None
    for folder in folders:
        try:  # no folder, or a folder without files
            part = RunDirectory(run_folder(proposal, run, folder, root), **kw)
        except FileNotFoundError as exc:
            if folder in absence_ok:
                continue
            if combined is None:
                raise
            warnings.warn(f"No data of this run in {folder!r} ({exc}); using the other "
                          "folders.", stacklevel=3)
            continue
        if combined is not None:
            both = combined.all_sources & part.all_sources
            if both == combined.all_sources:
                combined = None
            elif both:
                combined = combined.deselect([(s, "*") for s in both])
        combined = part if combined is None else combined.union(part)
    return combined


def _run_number(run) -> int:
    return int(str(run).lstrip("r"))


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
    run_dir = os.path.join(prop_dir, data, f"r{_run_number(run):04d}")
    if not os.path.isdir(run_dir):
        have = sorted(os.listdir(os.path.join(prop_dir, data))) \
            if os.path.isdir(os.path.join(prop_dir, data)) else []
        raise FileNotFoundError(f"Run folder {run_dir} not found ({len(have)} runs in "
                                f"{data}: {', '.join(have[:5])}{'...' if len(have) > 5 else ''})")
    return run_dir
