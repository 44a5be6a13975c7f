"""``DataCollection``: sources x keys x trains over a set of files.

A run is the union of its files, indexed by train ID: each source's files (sequence
files of one aggregator) are merged; the run's train IDs are the sorted union over all
files. Selections return new collections and never modify this one.
"""

from __future__ import annotations

import os
import warnings
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO, TypeAlias

import numpy as np

from . import format as fmt
from .aliases import AliasMixin, AliasSpec, merge_aliases
from .detectors.identify import detector_modules
from .euxfel_paths import run_identity
from .exceptions import (
    DuplicateTrainError,
    KeyGlobError,
    MultiRunError,
    PropertyNameError,
    SourceNameError,
)
from .file_access import FileAccess, files_with_trains
from .file_set import SuspectTrain, no_readable, open_files, report_bad_trains, suspect_trains
from .keydata import KeyData
from .reading import DatasetReader
from .rowindex import file_rows
from .selection import (
    glob_matcher,
    select_train_ids,
    sorted_unique,
    split_ranges,
    train_position,
)
from .source import SourceData
from .train_id_list import TrainIdList
from .write.single_file import WriteMethods

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from .hints import Roi, TrainSelection

__all__ = ["DataCollection", "SuspectTrain"]

_Source = namedtuple("_Source", "section files keys")

class DataCollection(AliasMixin, WriteMethods):
    """Data from a set of EXDF files: sources x keys x trains.

    Get one from :func:`RunDirectory`, :func:`H5File` or :func:`open_run`; the
    constructor is internal (see :meth:`from_files`).

    Parameters
    ----------
    files : list of FileAccess
        The scanned files.
    sources : dict
        Source name -> its section, files and selected keys.
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

    def __init__(self, files: list[FileAccess], sources: dict[str, _Source],
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
        src_files: dict[str, list[FileAccess]] = {}
        sections: dict[str, str] = {}
        legacy: dict[str, str] = {}
        for fa in files:
            for s in fa.control_sources:
                src_files.setdefault(s, []).append(fa)
                sections[s] = "CONTROL"
            for s in fa.instrument_sources:
                src_files.setdefault(s, []).append(fa)
                sections[s] = "INSTRUMENT"
            if fa.legacy_sources:
                legacy.update(fa.legacy_sources)
        used = [fa.used_train_ids(inc_suspect_trains) for fa in files]
        train_ids = sorted_unique(np.concatenate(used)) if used else np.zeros(0, np.uint64)
        sources = {s: _Source(sections[s], _in_train_order(fs, inc_suspect_trains), None)
                   for s, fs in src_files.items()}
        _check_duplicates(sources, inc_suspect_trains)
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

    # -- selections -----------------------------------------------------------------
    def _parse_selection(self, seln, key_glob: str) -> dict[str, frozenset | None]:
        """Turn a selection spec into {source: keys or None (all)}."""
        explicit = isinstance(seln, dict)  # names, not globs: a missing one is a KeyError
        if isinstance(seln, str):
            items = [(seln, key_glob)]
        elif isinstance(seln, dict):
            items = []
            for s, keys in seln.items():
                if not keys or keys == "*":  # None or an empty set: all keys
                    items.append((s, "*"))
                else:
                    items.extend((s, k) for k in ([keys] if isinstance(keys, str) else keys))
        elif isinstance(seln, DataCollection):
            return {s: v.keys for s, v in seln._sources.items()}
        elif isinstance(seln, SourceData):
            return {seln.canonical_name: seln.sel_keys}
        elif isinstance(seln, KeyData):
            return {self._canonical(seln.source): frozenset([seln.key])}
        else:
            items = []
            for x in seln:
                if isinstance(x, KeyData):
                    items.append((x.source, x.key))
                elif isinstance(x, SourceData):
                    items.append((x.source, "*"))
                else:
                    items.append((x, "*") if isinstance(x, str) else tuple(x))
        result: dict[str, frozenset | None] = {}
        for src_pat, key_pat in items:
            if src_pat in self._sources or src_pat in self._legacy:
                matched = [self._canonical(src_pat)]
            else:
                match = glob_matcher(src_pat)
                matched = [s for s in self._sources if match(s)]
                if not matched:
                    raise SourceNameError(src_pat, self._sources)
            found_any = False
            for s in matched:
                if key_pat == "*":
                    result[s] = None
                    found_any = True
                    continue
                try:
                    keys = self._source_data(s).select_keys(key_pat).sel_keys
                except PropertyNameError:
                    continue
                found_any = True
                if s in result and result[s] is None:
                    continue
                result[s] = (result.get(s) or frozenset()) | keys
            if not found_any:
                error = PropertyNameError if explicit else KeyGlobError
                if len(matched) == 1:
                    raise error(matched[0], key_pat, self._source_data(matched[0]).keys())
                raise error(src_pat, key_pat, hint=f"(no source matching {src_pat!r} has it)")
        return result

    def select(self, seln: SourceSelection, key_glob: str = "*", require_all: bool = False,
               require_any: bool = False) -> DataCollection:
        """New collection with only the matching sources / keys.

        Parameters
        ----------
        seln : str, list, dict or DataCollection
            A source glob (with *key_glob*), a list of source globs or
            ``(source_glob, key_glob)`` tuples, a dict ``{source: {keys} or None}``, or
            another collection to copy its selection.
        key_glob : str
            Key glob used with a string *seln*; control keys match with or without
            ``.value``.
        require_all : bool
            Keep only trains where every selected source/key has data.
        require_any : bool
            Keep only trains where at least one selected source/key has data.
        """
        if require_all and require_any:
            raise ValueError("select(): give require_all or require_any, not both")
        spec = self._parse_selection(seln, key_glob)
        sources = {}
        for s, keys in spec.items():
            cur = self._sources[s]
            if keys is None:
                keys = cur.keys
            sources[s] = cur._replace(keys=keys)
        new = self._replace(sources=sources)
        if require_all or require_any:
            before = new
            new = new._replace(train_ids=new._train_ids[new._has_all_mask(any_=require_any)])
            n = len(self._train_ids)
            if require_all and n and not len(new._train_ids):
                empty = sorted(s for s in before._sources if not before._has_data(s))
                warnings.warn(f"{n}/{n} (100%) trains dropped by require_all: no train has "
                              f"data from all selected sources"
                              + (f"; without data: {', '.join(empty)}" if empty else ""),
                              stacklevel=2)
        return new

    def _has_data(self, source: str) -> bool:
        return bool(self._source_data(source).data_counts(labelled=False).any())

    def _has_all_mask(self, any_: bool = False) -> np.ndarray:
        """Trains where every (any_: some) selected source and key group has data."""
        mask = np.full(len(self._train_ids), not any_, dtype=bool)
        for s in self._sources:
            sd = self._source_data(s)
            if sd.is_control:
                groups = [""]
            else:
                groups = sorted({fmt.index_group_of(sd.section, k) for k in sd.keys()})
            for g in groups:
                has = sd.data_counts(labelled=False, index_group=g) > 0
                mask = (mask | has) if any_ else (mask & has)
        return mask

    def deselect(self, seln: SourceSelection, key_glob: str = "*") -> DataCollection:
        """New collection without the matching sources / keys (same spec as select).

        Parameters
        ----------
        seln, key_glob
            As for :meth:`select`.

        Returns
        -------
        DataCollection
        """
        spec = self._parse_selection(seln, key_glob)
        sources = dict(self._sources)
        for s, keys in spec.items():
            if keys is None:
                del sources[s]
                continue
            remaining = frozenset(self._source_data(s).keys()) - keys
            if remaining:
                sources[s] = sources[s]._replace(keys=remaining)
            else:
                del sources[s]
        return self._replace(sources=sources)

    def select_trains(self, trains: TrainSelection) -> DataCollection:
        """New collection with a subset of trains.

        Parameters
        ----------
        trains : slice, int, list, array, bool array, xarray, by_id[...] or by_index[...]
            A slice or indices select by position, a boolean array must match the number
            of trains; ``by_id`` selects by train ID; a boolean ``xarray.DataArray`` with
            a ``trainId`` coordinate selects the trains where it is true.

        Returns
        -------
        DataCollection

        Raises
        ------
        TrainIDError
            A ``by_id`` list holds a train ID that is not selected.
        IndexError
            An index out of range.
        """
        return self._replace(train_ids=select_train_ids(self._train_ids, trains))

    def split_trains(self, parts: int | None = None, trains_per_part: int | None = None):
        """Yield collections each covering a similar share of the trains.

        Parameters
        ----------
        parts : int, optional
            At least this many parts (fewer if there are fewer trains).
        trains_per_part : int, optional
            At most this many trains in each part.

        Yields
        ------
        DataCollection
        """
        for sl in split_ranges(len(self._train_ids), parts, trains_per_part):
            yield self._replace(train_ids=self._train_ids[sl])

    def union(self, *others: DataCollection) -> DataCollection:
        """Combine collections: union of files, sources, keys and trains.

        Parameters
        ----------
        *others : DataCollection
            The collections to combine with this one.

        Returns
        -------
        DataCollection

        Raises
        ------
        DuplicateTrainError
            A source has the same train ID in two of the files.
        """
        files = {f.filename: f for c in (self, *others) for f in c.files}
        sources: dict[str, _Source] = {}
        for c in (self, *others):
            for s, src in c._sources.items():
                if s not in sources:
                    sources[s] = src
                    continue
                old = sources[s]
                fs = {f.filename: f for f in (*old.files, *src.files)}
                keys = None if old.keys is None or src.keys is None else old.keys | src.keys
                sources[s] = _Source(old.section,
                                     _in_train_order(fs.values(), self.inc_suspect_trains),
                                     keys)
        _check_duplicates(sources, self.inc_suspect_trains)
        train_ids = sorted_unique(np.concatenate([c._train_ids for c in (self, *others)]))
        legacy, aliases, alias_files = {}, {}, []
        for c in (self, *others):
            legacy.update(c._legacy)
            aliases = merge_aliases(aliases, c._aliases)
            alias_files += [f for f in c._alias_files if f not in alias_files]
        return DataCollection(sorted(files.values(), key=lambda f: f.filename), sources,
                              train_ids, inc_suspect_trains=self.inc_suspect_trains,
                              runs=_union_runs((self, *others)),
                              legacy_sources=legacy, aliases=aliases, alias_files=alias_files)

    __or__ = union

    # -- reading --------------------------------------------------------------------
    def get_array(self, source: str, key: str, extra_dims: Sequence[str] | None = None,
                  roi: Roi = (), name: str | None = None) -> xr.DataArray:
        """Read one key as an ``xarray.DataArray`` with a ``trainId`` coordinate.

        Parameters
        ----------
        source : str
            A selected source name.
        key : str
            One of its keys (control keys may omit ``.value``).
        extra_dims, roi, name
            As for :meth:`KeyData.xarray`.

        Returns
        -------
        xarray.DataArray

        Raises
        ------
        SourceNameError, PropertyNameError
            No such source or key in the selection.
        """
        return self[source, key].xarray(extra_dims=extra_dims, roi=roi, name=name)

    def get_dask_array(self, source: str, key: str, labelled: bool = False):
        """One key as a lazy dask array (labelled: an xarray wrapping it).

        Parameters
        ----------
        source : str
            A selected source name.
        key : str
            One of its keys (control keys may omit ``.value``).
        labelled : bool
            Wrap it in an ``xarray.DataArray`` with a ``trainId`` coordinate.

        Returns
        -------
        dask.array.Array or xarray.DataArray

        Raises
        ------
        SourceNameError, PropertyNameError
            No such source or key in the selection.
        """
        return self[source, key].dask_array(labelled=labelled)

    def get_data_counts(self, source: str, key: str):
        """Entries per train of one key: a pandas Series indexed by train ID.

        Parameters
        ----------
        source, key : str
            The source and key names.
        """
        return self[source, key].data_counts()

    def get_series(self, source: str, key: str):
        """One key with scalar entries as a pandas Series indexed by trainId.

        Parameters
        ----------
        source : str
            A selected source name.
        key : str
            One of its keys (control keys may omit ``.value``).

        Returns
        -------
        pandas.Series

        Raises
        ------
        SourceNameError, PropertyNameError
            No such source or key in the selection.
        TypeError
            The key's entries are not scalars.
        """
        return self[source, key].series()

    def get_dataframe(self, fields: SourceSelection | None = None, *,
                      timestamps: bool = False) -> pd.DataFrame:
        """A pandas DataFrame of scalar keys (one column per key), indexed by trainId.

        Parameters
        ----------
        fields : selection spec, optional
            As for :meth:`select`; default all sources.
        timestamps : bool
            Include control ``.timestamp`` columns.
        """
        import pandas as pd

        coll = self if fields is None else self.select(fields)
        columns = []
        for s in sorted(coll._sources):
            sd = coll._source_data(s)
            for k in sorted(sd.keys()):
                if k.endswith(".timestamp") and sd.is_control and not timestamps:
                    continue
                kd = sd[k]
                if kd.entry_shape != () or kd.dtype.names is not None:
                    continue
                if sd.is_instrument and kd.data_counts(labelled=False).max(initial=0) > 1:
                    continue
                columns.append(kd.series())
        if not columns:
            return pd.DataFrame(index=pd.Index([], name="trainId"))
        return pd.concat(columns, axis=1, join="outer")

    def get_run_value(self, source: str, key: str):
        """The RUN-section value of a control key (name with or without ``.value``).

        Parameters
        ----------
        source : str
            A control source.
        key : str
            One of its RUN keys.

        Returns
        -------
        object
            A number, string or array.

        Raises
        ------
        MultiRunError
            The data combines several runs.
        PropertyNameError
            The source has no such RUN key.
        """
        return self._source_data(source).run_value(key)

    def get_run_values(self, source: str, inc_timestamps: bool = True) -> dict:
        """All RUN values of a control source as a dict (see SourceData.run_values).

        Parameters
        ----------
        source : str
            A control source.
        inc_timestamps : bool
            Include the ``.timestamp`` keys; False: property names without ``.value``.
        """
        return self._source_data(source).run_values(inc_timestamps=inc_timestamps)

    def run_metadata(self) -> dict:
        """METADATA of the run (from its first file): proposal, run, dates, format..."""
        if not self.is_single_run:
            raise MultiRunError("run_metadata()", sorted(map(str, self._runs)))
        if not self.files:
            return {}
        # plain Python values (int, str), as the docs show them and json.dumps takes them
        md = {k: v.item() if isinstance(v, np.generic) else v
              for k, v in self.files[0].metadata().items()}
        md.setdefault("dataFormatVersion", self.files[0].format_version)
        return md

    def train_timestamps(self, labelled: bool = False, *, pydatetime: bool = False,
                         euxfel_local_time: bool = False):
        """Time of each selected train (``datetime64[ns]``, UTC; NaT where unknown).

        Uses INDEX/timestamp (format 1.0 and later).

        Parameters
        ----------
        labelled : bool
            A pandas Series indexed by train ID, timezone-aware (UTC).
        pydatetime : bool
            A list of timezone-aware ``datetime`` objects (None where unknown),
            truncated to milliseconds as EXtra-data does.
        euxfel_local_time : bool
            With *labelled* or *pydatetime*: in the facility's time zone
            (Europe/Berlin) instead of UTC.
        """
        if euxfel_local_time and not (labelled or pydatetime):
            raise ValueError("train_timestamps(euxfel_local_time=True) needs labelled=True "
                             "or pydatetime=True: plain datetime64 arrays have no time zone")
        out = self._utc_train_timestamps()
        if labelled:
            import pandas as pd

            series = pd.Series(out, index=pd.Index(self._train_ids, name="trainId"))
            series = series.dt.tz_localize("UTC")
            return series.dt.tz_convert("Europe/Berlin") if euxfel_local_time else series
        if pydatetime:
            from datetime import timezone
            from zoneinfo import ZoneInfo

            zone = ZoneInfo("Europe/Berlin") if euxfel_local_time else timezone.utc
            return [None if np.isnat(t) else
                    t.astype("datetime64[ms]").item().replace(tzinfo=timezone.utc)
                    .astimezone(zone) for t in out]
        return out

    def _utc_train_timestamps(self) -> np.ndarray:
        out = np.full(len(self._train_ids), np.datetime64("NaT"), dtype="datetime64[ns]")
        for j, rows, pos in file_rows(self.files, self._train_ids, self.inc_suspect_trains):
            fa = self.files[j]
            if not fa.has_dataset("INDEX/timestamp"):
                continue
            ts = DatasetReader(fa.filename, "INDEX/timestamp", fa.file).read_new(
                0, int(rows.max()) + 1, dtype=np.uint64)
            out[pos] = ts[rows].astype("datetime64[ns]")
        return out

    # -- trains ---------------------------------------------------------------------
    def trains(self, devices: SourceSelection | None = None,
               train_range: TrainSelection | None = None, *, require_all: bool = False,
               flat_keys: bool = False, keep_dims: bool = False):
        """Iterate over ``(train_id, data)`` pairs; see docs/train-dict.md.

        Parameters
        ----------
        devices : selection spec, optional
            Sources/keys to include (as for :meth:`select`).
        train_range : train selection, optional
            As for :meth:`select_trains`.
        require_all : bool
            Skip trains where any selected source/key has no data.
        flat_keys : bool
            Key the dict by ``(source, key)`` instead of nesting.
        keep_dims : bool
            Keep the first axis of keys with one entry per train.
        """
        from .trains import TrainIterator

        coll = self if devices is None else self.select(devices)
        if train_range is not None:
            coll = coll.select_trains(train_range)
        return TrainIterator(coll, require_all=require_all, flat_keys=flat_keys,
                             keep_dims=keep_dims)

    def train_from_id(self, train_id: int, devices: SourceSelection | None = None, *,
                      flat_keys: bool = False, keep_dims: bool = False) -> tuple[int, dict]:
        """``(train_id, data)`` for one train ID.

        Parameters
        ----------
        train_id : int
            A selected train ID.
        devices, flat_keys, keep_dims
            As for :meth:`trains`.

        Returns
        -------
        tuple of (int, dict)

        Raises
        ------
        TrainIDError
            The train ID is not selected.
        """
        pos = train_position(self._train_ids, train_id)
        it = self.trains(devices, train_range=slice(pos, pos + 1), flat_keys=flat_keys,
                         keep_dims=keep_dims)
        return next(iter(it))

    def train_from_index(self, index: int, devices: SourceSelection | None = None, *,
                         flat_keys: bool = False, keep_dims: bool = False) -> tuple[int, dict]:
        """``(train_id, data)`` for the train at a position in ``train_ids``.

        Parameters
        ----------
        index : int
            The position.
        devices, flat_keys, keep_dims
            As for :meth:`trains`.

        Returns
        -------
        tuple of (int, dict)

        Raises
        ------
        IndexError
            No train at that position.
        """
        n = len(self._train_ids)
        if not -n <= index < n:
            raise IndexError(f"Train index {index} out of range for {n} trains")
        return self.train_from_id(int(self._train_ids[index]), devices, flat_keys=flat_keys,
                                  keep_dims=keep_dims)

    # -- reporting ------------------------------------------------------------------
    @property
    def suspect_trains(self) -> list[SuspectTrain]:
        """Train IDs marked suspect in the files (included unless inc_suspect_trains=False)."""
        return suspect_trains(self.files)

    @property
    def selection(self) -> dict[str, frozenset | None]:
        """Selected keys per source (None: all keys), as EXtra-data's attribute."""
        return {s: src.keys for s, src in self._sources.items()}

    @property
    def detector_sources(self) -> set[str]:
        """Instrument sources that are modules of a multi-module detector."""
        return {s for mods in self.detector_modules().values() for s in mods.values()}

    def detector_info(self, source: str) -> dict:
        """Pixel dims and frame counts of one detector module, as EXtra-data gives them.

        Parameters
        ----------
        source : str
            A detector module source with ``image.data``.

        Returns
        -------
        dict
            ``dims`` (pixel shape), ``frames_per_train`` (most in a train) and
            ``total_frames`` (``frames_per_train`` x selected trains, EXtra-data's
            estimate).
        """
        kd = self[source, "image.data"]
        counts = kd.data_counts(labelled=False)
        varying = set(np.unique(counts).tolist()) - {0}
        if len(varying) > 1:
            warnings.warn(f"{source}: varying number of frames per train: {sorted(varying)}",
                          stacklevel=2)
        fpt = int(counts.max(initial=0))
        return {"dims": kd.entry_shape[-2:], "frames_per_train": fpt,
                "total_frames": fpt * len(self._train_ids)}

    def train_info(self, train_id: int, file: TextIO | None = None) -> None:
        """Print the sources that have data in one train.

        Parameters
        ----------
        train_id : int
            A selected train ID (TrainIDError otherwise).
        file : file-like, optional
            Where to print (default stdout).
        """
        pos = train_position(self._train_ids, train_id)
        one = self._replace(train_ids=self._train_ids[pos:pos + 1])
        present = {s for s in one._sources
                   if one._source_data(s).data_counts(labelled=False)[0] > 0}
        lines = [f"Train [{int(train_id)}] information", "Devices", "\tInstruments"]
        lines += [f"\t- {s}" for s in sorted(present & one.instrument_sources)] or ["\t-"]
        lines.append("\tControls")
        lines += [f"\t- {s}" for s in sorted(present & one.control_sources)] or ["\t-"]
        print("\n".join(lines), file=file)

    def detector_modules(self) -> dict[str, dict[int, str]]:
        """Detector module sources grouped by detector: ``{detector: {module: source}}``.

        Sorted by detector name and module number; module numbers as in the source
        names (JUNGFRAU from 1); corrected sources when a detector has both. The same
        rule as the detector classes (:func:`exfel_data.detectors.identify.detector_modules`).
        """
        return detector_modules(self.instrument_sources)

    def plot_missing_data(self, min_saved_pct: float = 95, expand_instrument: bool = False):
        """Plot the sources that miss data in some trains (needs matplotlib).

        Parameters
        ----------
        min_saved_pct : float
            Show sources saved in at most this percentage of the selected trains.
        expand_instrument : bool
            One row per index group of instrument sources (``source image.*``).

        Returns
        -------
        matplotlib.axes.Axes
            One row per source (alias where there is one), red where trains lack data.
        """
        from .missing_data import plot_missing_data

        return plot_missing_data(self, min_saved_pct, expand_instrument)

    def info(self, details_for_sources: str | Iterable[str] = (),
             file: TextIO | None = None, *, with_aggregators: bool = False,
             with_auxiliary: bool = False, counts: bool = False,
             group_sources: bool = True) -> None:
        """Print a summary: trains, duration, train ID range, detectors, sources.

        Parameters
        ----------
        details_for_sources : str or iterable of str
            Source glob patterns whose keys are listed too (entry shape and dtype).
        with_aggregators : bool
            List every source with its aggregator (``[DA01] source``).
        with_auxiliary : bool
            Also list the REDUCTION and ERRATA sources (see :attr:`auxiliary`).
        counts : bool
            For every instrument source (detector modules too) and index group, say for
            how many trains it has data and how many entries per train.
        group_sources : bool
            List the output channels of one device on one line (``DEV:{a, b}``);
            False: one line per source.
        file : file-like, optional
            Where to print (default ``sys.stdout``).
        """
        from .summary import format_info

        text = format_info(self, details_for_sources, with_aggregators, counts,
                           group_sources)
        if with_auxiliary:
            text += "\n\n" + self.auxiliary._text(details_for_sources, with_aggregators)
        print(text, file=file)


def _union_runs(colls) -> frozenset:
    """The runs of combined collections; collections of one run each whose METADATA names
    the same proposal and run (e.g. raw and proc folders of a run) stay a single run."""
    runs = frozenset().union(*(c._runs for c in colls))
    if len(runs) <= 1:
        return runs
    same = set()
    for c in colls:
        if not c.is_single_run or not c.files or c.files[0].format_version == "0.5":
            return runs
        md = c.files[0].metadata()
        ident = (md.get("proposalNumber"), md.get("runNumber"))
        if not all(ident):
            return runs
        same.add(tuple(int(x) for x in ident))
    return frozenset(same) if len(same) == 1 else runs


def _in_train_order(files, inc_suspect: bool) -> tuple:
    """Files sorted by their first train ID in use (then by name)."""
    def start(fa):
        first, last = fa.train_span(inc_suspect)
        return (first if last >= first else 0, fa.filename)

    return tuple(sorted(files, key=start))


def _check_duplicates(sources: dict[str, _Source], inc_suspect: bool) -> None:
    """Raise DuplicateTrainError if a source has the same train in two rows/files."""
    seen_groups = set()
    for s, src in sorted(sources.items()):
        group = tuple(f.filename for f in src.files)
        if group in seen_groups:
            continue
        seen_groups.add(group)
        if _disjoint_increasing(src.files, inc_suspect):
            continue
        tids = [f.used_train_ids(inc_suspect) for f in src.files]
        allt = np.concatenate(tids) if tids else np.zeros(0, np.uint64)
        uniq, counts = np.unique(allt, return_counts=True)
        if len(uniq) == len(allt):
            continue
        dup = uniq[counts > 1][0]
        where, suspect = [], False
        for f in src.files:
            rows = np.flatnonzero((f.train_ids == dup) & f.rows_in_use(inc_suspect))
            where += [f.filename] * len(rows)
            suspect |= bool((~f.valid[rows]).any())
        n_dup = int((counts > 1).sum())
        hint = f"({n_dup} train ID(s) affected.)"
        if suspect:
            hint += (" One copy is a suspect train ID; open with inc_suspect_trains=False"
                     " to skip suspect trains.")
        elif len({os.path.dirname(w) for w in where}) > 1:
            # e.g. run_a.union(run_b) of two runs that recorded the same trains
            hint += (" The data combined come from different folders that share train IDs:"
                     " union() joins different trains or different sources, so read them"
                     " separately or deselect this source from all but one.")
        else:
            hint += (" The files overlap; open only some of them (include=... or"
                     " H5File) or deselect this source.")
        raise DuplicateTrainError(s, dup, where, hint)


def _disjoint_increasing(files, inc_suspect: bool) -> bool:
    """True if each file's train IDs increase and the files (in order) don't overlap."""
    prev_last = -1
    for f in files:
        if not f.increasing:
            return False
        first, last = f.train_span(inc_suspect)
        if last < first:
            continue  # no trains in use
        if first <= prev_last:
            return False
        prev_last = last
    return True


#: Sources and keys to select (``select``, ``deselect``, ``trains(devices=)``...): a source
#: glob, a list of source globs or ``(source_glob, key_glob)`` pairs, a dict
#: ``{source: keys or None}``, or a collection / source / key whose selection is copied.
SourceSelection: TypeAlias = (str | Iterable[str | tuple[str, str]]
                              | Mapping[str, Iterable[str] | None]
                              | DataCollection | SourceData | KeyData)
