"""``SourceData``: one source (a device or an output channel) over the selected trains."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from . import format as fmt
from .euxfel_paths import file_name_info, storage_class
from .exceptions import IndexGroupError, MultiRunError, PropertyNameError
from .file_access import FileAccess, files_with_trains
from .keydata import KeyData, read_run_value
from .rowindex import train_rows
from .selection import glob_matcher, select_train_ids, sorted_unique, split_ranges
from .train_id_list import TrainIdList

if TYPE_CHECKING:
    from .hints import KeySelection, TrainSelection

__all__ = ["SourceData"]


class SourceData(fmt.SectionMixin):
    """Data for one source. Get it from ``run[source]``.

    ``src[key]`` gives a :class:`KeyData`; control keys may omit ``.value``. The
    constructor is internal: collections build these.

    Parameters
    ----------
    source : str
        The source name.
    section : str
        ``'CONTROL'``, ``'INSTRUMENT'`` or an auxiliary section.
    files : list of FileAccess
        The files holding the source.
    train_ids : numpy.ndarray
        The selected train IDs.
    sel_keys : frozenset, optional
        The selected keys (None: all).
    inc_suspect_trains : bool
        Whether train IDs the files mark as suspect are included.
    is_single_run : bool
        Whether the data comes from one run.
    """

    def __init__(self, source: str, *, section: str, files: list[FileAccess],
                 train_ids: np.ndarray, sel_keys: frozenset[str] | None = None,
                 inc_suspect_trains: bool = True, is_single_run: bool = True,
                 legacy_name: str | None = None):
        self.source = source
        self.legacy_name = legacy_name
        self.section = section
        self.files = list(files)
        self._train_ids = np.asarray(train_ids, dtype=np.uint64)
        self.sel_keys = sel_keys
        self.inc_suspect_trains = inc_suspect_trains
        self.is_single_run = is_single_run

    @property
    def train_ids(self) -> TrainIdList:
        """Selected train IDs (a list of ints, as EXtra-data gives them)."""
        return TrainIdList(self._train_ids)

    def __repr__(self) -> str:
        return (f"<exfel_data.SourceData source={self.source!r} "
                f"for {len(self._train_ids)} trains>")

    @property
    def canonical_name(self) -> str:
        """The source's current name (``source`` is always this name in exfel_data)."""
        return self.source

    @property
    def is_legacy(self) -> bool:
        """True if this was asked for by an old (legacy) name, kept in ``legacy_name``."""
        return self.legacy_name is not None

    @property
    def is_run_only(self) -> bool:
        """True for a control source with RUN values but no CONTROL keys."""
        return self.is_control and not self.keys()

    @property
    def device_class(self) -> str | None:
        """The Karabo class of a control device (its RUN ``classId``), else None."""
        if not self.is_control or not self.files:
            return None
        run_keys = self.files[0].run_keys(self.source)
        if "classId.value" not in run_keys:
            return None
        return self._read_run_value("classId.value")

    def _first_file_name(self) -> str | None:
        return self.files[0].filename if self.files else None

    @property
    def data_category(self) -> str | None:
        """'RAW', 'CORR', ... from the file name (None if not an EuXFEL name)."""
        name = self._first_file_name()
        return file_name_info(name)[0] if name else None

    @property
    def aggregator(self) -> str | None:
        """The aggregator (e.g. 'DA01', 'AGIPD00') from the file name, or None."""
        name = self._first_file_name()
        return file_name_info(name)[1] if name else None

    @property
    def storage_class(self) -> str | None:
        """'raw', 'proc', ... for files in a facility proposal folder, else None."""
        name = self._first_file_name()
        return storage_class(name) if name else None

    @property
    def index_groups(self) -> set[str]:
        """Index groups of the selected keys ('' for control sources)."""
        if self.is_control:
            return {""}
        if self.sel_keys is not None:
            return {fmt.index_group_of(self.section, k) for k in self.sel_keys}
        return set(self.files[0].index_groups(self.source)) if self.files else set()

    def keys(self, inc_timestamps: bool = True) -> set[str]:
        """Key names of this source (control keys as ``path.value``/``path.timestamp``).

        Parameters
        ----------
        inc_timestamps : bool
            Include the control ``.timestamp`` keys.

        Returns
        -------
        set of str
        """
        keys = self.sel_keys if self.sel_keys is not None else self.files[0].keys(self.source)
        if not inc_timestamps and self.is_control:
            # property names as in Karabo (EXtra-data's meaning)
            return {k[:-6] for k in keys if k.endswith(".value")}
        return set(keys)

    def resolve_key(self, key: str) -> str:
        """Canonical key name (adds ``.value`` to control keys given without it).

        Parameters
        ----------
        key : str
            A key name.

        Returns
        -------
        str

        Raises
        ------
        PropertyNameError
            The source has no such key (the message says if it is a RUN value).
        """
        keys = self.sel_keys
        if keys is not None:
            if key in keys:
                return key
            if self.is_control and key + ".value" in keys:
                return key + ".value"
        else:
            fa = self.files[0]
            if fa.has_dataset(fmt.key_to_path(self.section, self.source, key)):
                return key
            if self.is_control and fa.has_dataset(
                    fmt.key_to_path(self.section, self.source, key + ".value")):
                return key + ".value"
        hint = ""
        run_keys = self.files[0].run_keys(self.source) if self.is_control else ()
        if key in run_keys or key + ".value" in run_keys:
            hint = "It is a RUN value: use run.get_run_value()."
        raise PropertyNameError(self.source, key, self.keys(), hint=hint)

    def __contains__(self, key: str) -> bool:
        try:
            self.resolve_key(key)
        except PropertyNameError:
            return False
        return True

    def __getitem__(self, key: str) -> KeyData:
        if not isinstance(key, str):
            return self.select_trains(key)
        key = self.resolve_key(key)
        path = fmt.key_to_path(self.section, self.source, key)
        fa = next((f for f in self.files if f.has_dataset(path)), self.files[0])
        dtype, shape = fa.dataset_meta(path)
        return KeyData(self.source, key, section=self.section, files=self.files,
                       train_ids=self._train_ids, dtype=dtype, entry_shape=shape[1:],
                       inc_suspect_trains=self.inc_suspect_trains)

    def one_key(self, index_group: str | None = None) -> str | None:
        """Some key of this source (in the given index group), found cheaply.

        None for a control source without keys (RUN values only); IndexGroupError
        (a ValueError) for an index group without selected keys.

        Parameters
        ----------
        index_group : str, optional
            Only a key of this index group ('' for control sources).
        """
        for k in sorted(self.keys()):
            if index_group is None or fmt.index_group_of(self.section, k) == index_group:
                return k
        if index_group is None or (self.is_control and index_group == ""):
            return None  # a source with RUN values only (as EXtra-data)
        raise IndexGroupError(self.source, index_group, self.index_groups)

    # -- selections -----------------------------------------------------------------
    def _replace(self, **kw) -> SourceData:
        args = dict(section=self.section, files=self.files, train_ids=self._train_ids,
                    sel_keys=self.sel_keys, inc_suspect_trains=self.inc_suspect_trains,
                    is_single_run=self.is_single_run, legacy_name=self.legacy_name)
        args.update(kw)
        if "train_ids" in kw:  # keep only the files holding some of the trains
            args["files"] = files_with_trains(self.files, args["train_ids"],
                                              self.inc_suspect_trains) or self.files[:1]
        return SourceData(self.source, **args)

    def select_keys(self, keys: KeySelection) -> SourceData:
        """New SourceData with only the keys matching glob(s) or names.

        ``None``, an empty set or ``'*'`` keep all keys (as in EXtra-data).

        Parameters
        ----------
        keys : str, iterable of str or None
            Key names or globs; control keys match with or without ``.value``.
        """
        if not keys:
            return self._replace(sel_keys=self.sel_keys)
        if isinstance(keys, str):
            keys = [keys]
        all_keys = self.keys()
        chosen = set()
        for pat in keys:
            if pat in all_keys:
                chosen.add(pat)
            elif self.is_control and pat + ".value" in all_keys:
                chosen.add(pat + ".value")
            else:
                match = glob_matcher(pat)
                found = {k for k in all_keys if match(k)}
                if self.is_control:  # 'beamPosition.*Pos' matches the values, as EXtra-data
                    found |= {k for k in all_keys if k.endswith(".value") and match(k[:-6])}
                if not found:
                    raise PropertyNameError(self.source, pat, all_keys)
                chosen |= found
        return self._replace(sel_keys=frozenset(chosen))

    def select_trains(self, trains: TrainSelection) -> SourceData:
        """A new SourceData for a subset of trains.

        Parameters
        ----------
        trains : slice, int, list, array, bool array, by_id[...] or by_index[...]
            As for :meth:`DataCollection.select_trains`.

        Returns
        -------
        SourceData
        """
        return self._replace(train_ids=select_train_ids(self._train_ids, trains))

    def split_trains(self, parts: int | None = None, trains_per_part: int | None = None
                     ) -> Iterator[SourceData]:
        """Yield SourceData objects each covering consecutive trains.

        Parameters
        ----------
        parts : int, optional
            At least this many parts (fewer if there are fewer trains).
        trains_per_part : int, optional
            At most this many trains in each part.

        Yields
        ------
        SourceData

        Raises
        ------
        ValueError
            Neither *parts* nor *trains_per_part* given, or *parts* below 1.
        """
        for sl in split_ranges(len(self._train_ids), parts, trains_per_part):
            yield self._replace(train_ids=self._train_ids[sl])

    def data_counts(self, labelled: bool = True, index_group: str | None = None):
        """Entries per train for this source, from the INDEX alone.

        For instrument sources the maximum over index groups unless *index_group* is
        given. A file without that index group counts as 0 entries (see
        docs/reading.md, "Damaged files").

        Parameters
        ----------
        labelled : bool
            A pandas Series indexed by train ID (default), else a numpy array.
        index_group : str, optional
            Count the entries of this index group only.

        Returns
        -------
        pandas.Series or numpy.ndarray
            uint64 counts.
        """
        if index_group is not None:
            self._check_index_group(index_group)
        groups = [index_group] if index_group is not None else sorted(self.index_groups)
        if not self.keys():
            groups = []  # RUN values only: no entries in any train (as EXtra-data)
        counts = np.zeros(len(self._train_ids), dtype=np.uint64)
        for g in groups:
            rows = train_rows(self.files, self.source, g, self._train_ids,
                              self.inc_suspect_trains)
            counts = np.maximum(counts, rows.count.astype(np.uint64))
        if labelled:
            import pandas as pd

            return pd.Series(counts, index=pd.Index(self._train_ids, name="trainId"))
        return counts

    def _check_index_group(self, index_group: str) -> None:
        if index_group not in self.index_groups:
            raise IndexGroupError(self.source, index_group, self.index_groups)

    def drop_empty_trains(self, index_group: str | None = None) -> SourceData:
        """New SourceData with only the trains having data (in *index_group*, or any).

        Parameters
        ----------
        index_group : str, optional
            Count only this index group (IndexGroupError if the source lacks it).
        """
        counts = self.data_counts(labelled=False, index_group=index_group)
        return self._replace(train_ids=self._train_ids[counts > 0])

    def train_id_coordinates(self, index_group: str | None = None) -> np.ndarray:
        """Train ID of each entry of this source's keys (in *index_group*).

        Without *index_group* the source's index groups must all have the same
        counts; ValueError otherwise.

        Parameters
        ----------
        index_group : str, optional
            The index group whose entries to label.
        """
        if index_group is None:
            groups = sorted(self.index_groups)
            counts = [self.data_counts(labelled=False, index_group=g) for g in groups]
            if any(not np.array_equal(c, counts[0]) for c in counts[1:]):
                raise ValueError(f"{self.source}: index groups {groups} have different "
                                 "counts per train; pass index_group=")
            index_group = groups[0] if groups else ""
        counts = self.data_counts(labelled=False, index_group=index_group)
        return np.repeat(self._train_ids, counts.astype(np.intp))

    def union(self, *others: SourceData) -> SourceData:
        """Combine this source's data from several selections or runs (same source).

        Parameters
        ----------
        *others : SourceData
            Data of the same source (ValueError otherwise).
        """
        every = (self, *others)
        if len({sd.source for sd in every}) > 1:
            raise ValueError("SourceData.union() needs the same source, got "
                             f"{sorted({sd.source for sd in every})}")
        files = {f.filename: f for sd in every for f in sd.files}
        keys = [sd.sel_keys for sd in every]
        return SourceData(
            self.source, section=self.section,
            files=sorted(files.values(), key=lambda f: f.filename),
            train_ids=sorted_unique(np.concatenate([sd._train_ids for sd in every])),
            sel_keys=None if None in keys else frozenset().union(*keys),
            inc_suspect_trains=self.inc_suspect_trains,
            is_single_run=all(sd.is_single_run for sd in every) and len(
                {os.path.dirname(f) for f in files}) <= 1,
            legacy_name=self.legacy_name)

    __or__ = union

    # -- RUN values -----------------------------------------------------------------
    def _run_keys(self, what: str) -> frozenset[str]:
        if not self.is_single_run:
            raise MultiRunError(what)
        if not self.is_control:
            raise ValueError(f"{self.source} is an instrument source; only control "
                             "sources have RUN values")
        return self.files[0].run_keys(self.source)

    def run_value(self, key: str):
        """The RUN-section snapshot of a control key (accepts the name without .value).

        Parameters
        ----------
        key : str
            A RUN key of this control source.
        """
        run_keys = self._run_keys("run_value()")
        if key not in run_keys and key + ".value" in run_keys:
            key = key + ".value"
        if key not in run_keys:
            raise PropertyNameError(self.source, key, run_keys)
        return self._read_run_value(key)

    def _read_run_value(self, key: str):
        return read_run_value(self.files[0], self.source, key)

    def run_keys(self, inc_timestamps: bool = True) -> set[str]:
        """Key names in the RUN section (not affected by key selection).

        Parameters
        ----------
        inc_timestamps : bool
            False: property names without ``.value`` (as :meth:`keys` gives them).
        """
        keys = self._run_keys("run_keys() / run_values()")
        if inc_timestamps:
            return set(keys)
        return {k[:-6] for k in keys if k.endswith(".value")}

    def run_values(self, inc_timestamps: bool = True) -> dict:
        """All RUN values of this control source as ``{key: value}``.

        Parameters
        ----------
        inc_timestamps : bool
            Keys as :meth:`run_keys` names them (False: without ``.value`` and the
            timestamps), as in EXtra-data.
        """
        return {k: self.run_value(k) for k in sorted(self.run_keys(inc_timestamps))}

    def run_metadata(self) -> dict:
        """METADATA of the run these files belong to (see DataCollection.run_metadata)."""
        if not self.is_single_run:
            raise MultiRunError("run_metadata()")
        return self.files[0].metadata()
