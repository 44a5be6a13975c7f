"""``DataCollection``: sources x keys x trains over a set of files.

A run is the union of its files, indexed by train ID: each source's files (sequence
files of one aggregator) are merged; the run's train IDs are the sorted union over all
files. Selections return new collections and never modify this one.

This module holds the collection's state: construction, sources and keys, ``run[...]``.
Its methods come in groups, each from its own module: selections and ``union``
(:mod:`~exfel_data.collection_select`), reads and train iteration
(:mod:`~exfel_data.collection_read`), run metadata, RUN values and train timestamps
(:mod:`~exfel_data.collection_run`), ``info()`` and other reports
(:mod:`~exfel_data.collection_report`), aliases (:mod:`~exfel_data.aliases`) and writing
one file (:mod:`~exfel_data.write.single_file`). Which files hold each source is
:mod:`~exfel_data.source_files`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import numpy as np

from .aliases import AliasMixin, AliasSpec
from .collection_read import ReadMethods
from .collection_report import ReportMethods
from .collection_run import RunValueMethods
from .collection_select import SelectionMethods, SourceSelection
from .euxfel_paths import run_identity
from .exceptions import SourceNameError
from .file_access import FileAccess, files_with_trains
from .file_set import SuspectTrain, no_readable, open_files, report_bad_trains
from .selection import sorted_unique
from .source import SourceData
from .source_files import SourceFiles, group_sources
from .train_id_list import TrainIdList
from .write.single_file import WriteMethods

# SourceSelection: the selection spec, importable from here as before
__all__ = ["DataCollection", "SuspectTrain", "SourceSelection"]


class DataCollection(SelectionMethods, ReadMethods, RunValueMethods, ReportMethods,
                     AliasMixin, WriteMethods):
    """Data from a set of EXDF files: sources x keys x trains.

    Get one from :func:`RunDirectory`, :func:`H5File` or :func:`open_run`; the
    constructor is internal (see :meth:`from_files`).

    Parameters
    ----------
    files : list of FileAccess
        The scanned files.
    sources : dict
        Source name -> its section, files and selected keys (a
        :class:`~exfel_data.source_files.SourceFiles`).
    train_ids : numpy.ndarray
        The selected train IDs (sorted).
    inc_suspect_trains : bool
        Whether train IDs the files mark as suspect are included.
    runs : frozenset
        The runs the files come from.
    legacy_sources : dict, optional
        Old source names -> current ones (HDF5 soft links in newer corrected files).
    aliases : dict, optional
        Alias -> source or ``(source, key)`` (see :meth:`with_aliases`).
    alias_files : list, optional
        The alias files *aliases* came from.
    """

    def __init__(self, files: list[FileAccess], sources: dict[str, SourceFiles],
                 train_ids: np.ndarray, *, inc_suspect_trains: bool = True,
                 runs: frozenset = frozenset(), legacy_sources: dict | None = None,
                 aliases: dict | None = None, alias_files: list | None = None):
        self.files = list(files)
        self._sources = sources
        self._train_ids = np.asarray(train_ids, dtype=np.uint64)
        self.inc_suspect_trains = inc_suspect_trains
        self._runs = runs
        self._legacy = legacy_sources or {}
        self._aliases = dict(aliases or {})
        self._alias_files = list(alias_files or [])
        self._source_cache: dict[str, SourceData] = {}
        self._auxiliary = None

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_files(cls, files: Iterable[FileAccess], *, inc_suspect_trains: bool = True,
                   runs: frozenset | None = None) -> DataCollection:
        """Build a collection from scanned files (merging sources across files).

        Parameters
        ----------
        files : iterable of FileAccess
            The scanned files.
        inc_suspect_trains : bool
            Include train IDs the files mark as suspect.
        runs : frozenset, optional
            The runs the files come from.

        Returns
        -------
        DataCollection

        Raises
        ------
        DuplicateTrainError
            A source has the same train ID in two of the files.
        """
        files = sorted({f.filename: f for f in files}.values(), key=lambda f: f.filename)
        used = [fa.used_train_ids(inc_suspect_trains) for fa in files]
        train_ids = sorted_unique(np.concatenate(used)) if used else np.zeros(0, np.uint64)
        sources, legacy = group_sources(files, inc_suspect_trains)
        if runs is None:
            runs = frozenset(run_identity(d) for d in {os.path.dirname(f.filename)
                                                        for f in files})
        return cls(files, sources, train_ids, inc_suspect_trains=inc_suspect_trains,
                   runs=runs, legacy_sources=legacy)

    @classmethod
    def from_paths(cls, paths: Iterable[str | os.PathLike], *,
                   inc_suspect_trains: bool = True,
                   aliases: AliasSpec | None = None) -> DataCollection:
        """Open EXDF files by path (skipping unreadable ones with a warning).

        Parameters
        ----------
        paths : iterable of str or path-like
            The ``.h5`` files, from any folders.
        inc_suspect_trains : bool
            Include train IDs the files mark as suspect (default).
        aliases : dict or path, optional
            Applied with :meth:`with_aliases`.
        """
        paths = [os.path.abspath(os.fspath(p)) for p in paths]
        if not paths:
            raise FileNotFoundError("from_paths() got no file paths")
        files, skipped = open_files(paths, None)
        if not files:
            raise no_readable(f"the {len(paths)} paths given", skipped)
        report_bad_trains(files, inc_suspect_trains)
        data = cls.from_files(files, inc_suspect_trains=inc_suspect_trains)
        return data if aliases is None else data.with_aliases(aliases)

    @property
    def auxiliary(self):
        """The REDUCTION and ERRATA sources of newer files (an ``AuxiliaryIndexer``).

        ``run.auxiliary.all_sources``, ``run.auxiliary[source]`` (a SourceData),
        ``run.auxiliary.info()``; see docs/reading.md.
        """
        if self._auxiliary is None:
            from .auxiliary import AuxiliaryIndexer

            self._auxiliary = AuxiliaryIndexer(self)
        return self._auxiliary

    @property
    def legacy_sources(self) -> dict[str, str]:
        """Old source names that open a selected source: ``{old: current}``."""
        # An old name that is a source here too (raw DET next to proc CORR) is that source.
        return {old: new for old, new in sorted(self._legacy.items())
                if new in self._sources and old not in self._sources}

    def _replace(self, sources=None, train_ids=None) -> DataCollection:
        sources = self._sources if sources is None else sources
        train_ids = self._train_ids if train_ids is None else train_ids
        if train_ids is not self._train_ids:
            sources = {s: src._replace(files=tuple(files_with_trains(
                src.files, train_ids, self.inc_suspect_trains))) for s, src in sources.items()}
        used = {f.filename for src in sources.values() for f in src.files}
        files = [f for f in self.files if f.filename in used] or self.files[:1]
        return DataCollection(files, sources, train_ids,
                              inc_suspect_trains=self.inc_suspect_trains, runs=self._runs,
                              legacy_sources=self._legacy, aliases=self._aliases,
                              alias_files=self._alias_files)

    @property
    def train_ids(self) -> TrainIdList:
        """Selected train IDs, sorted: a list of ints (``np.asarray`` of it is free)."""
        return TrainIdList(self._train_ids)

    # -- context manager ------------------------------------------------------------
    def close(self) -> None:
        """Close the HDF5 files (they are reopened if data is read again)."""
        for f in self.files:
            f.close()

    def __enter__(self) -> DataCollection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sources and keys -----------------------------------------------------------
    @property
    def all_sources(self) -> frozenset[str]:
        """Names of all selected sources, control and instrument."""
        return frozenset(self._sources)

    @property
    def control_sources(self) -> frozenset[str]:
        """Names of the selected control (slow data) sources."""
        return frozenset(s for s, v in self._sources.items() if v.section == "CONTROL")

    @property
    def instrument_sources(self) -> frozenset[str]:
        """Names of the selected instrument (fast data) sources."""
        return frozenset(s for s, v in self._sources.items() if v.section == "INSTRUMENT")

    @property
    def is_single_run(self) -> bool:
        """True if the data comes from one run (RUN values and run metadata need that)."""
        return len(self._runs) <= 1

    def _canonical(self, source: str) -> str:
        if source in self._sources:
            return source
        new = self._legacy.get(source)
        if new is not None and new in self._sources:
            # DeprecationWarning, as EXtra-data: old names keep working for now
            warnings.warn(f"{source!r} is a legacy name; using {new!r}.", DeprecationWarning,
                          stacklevel=3)
            return new
        raise SourceNameError(source, self._sources)

    def _source_data(self, source: str) -> SourceData:
        # One object per name: the collection is immutable, and run.alias['x'] is run[src]
        if source in self._source_cache:
            return self._source_cache[source]
        canonical = self._canonical(source)
        src = self._sources[canonical]
        sd = SourceData(canonical, section=src.section, files=list(src.files),
                        train_ids=self._train_ids, sel_keys=src.keys,
                        inc_suspect_trains=self.inc_suspect_trains,
                        is_single_run=self.is_single_run,
                        legacy_name=None if canonical == source else source)
        if canonical == source:  # legacy names warn on every use
            self._source_cache[source] = sd
        return sd

    def keys_for_source(self, source: str) -> set[str]:
        """Key names of a source (control keys as ``path.value`` / ``path.timestamp``).

        Parameters
        ----------
        source : str
            A selected source name.

        Returns
        -------
        set of str

        Raises
        ------
        SourceNameError
            The source is not in the selection.
        """
        return self._source_data(source).keys()

    def __getitem__(self, item):
        if isinstance(item, str):
            return self._source_data(item)
        if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
            return self._source_data(item[0])[item[1]]
        return self.select_trains(item)

    def __contains__(self, item) -> bool:
        if isinstance(item, str):
            return item in self._sources
        if isinstance(item, tuple) and len(item) == 2:
            return item[0] in self._sources and item[1] in self._source_data(item[0])
        return False

    def __repr__(self) -> str:
        return (f"<exfel_data.DataCollection for {len(self._sources)} sources and "
                f"{len(self._train_ids)} trains>")
