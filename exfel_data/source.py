"""``SourceData``: one source (a device or an output channel) over the selected trains."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import format as fmt
from .exceptions import MultiRunError, NoDataError, PropertyNameError
from .file_access import FileAccess
from .keydata import KeyData
from .rowindex import train_rows
from .selection import glob_matcher, select_train_ids, split_ranges

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
                 inc_suspect_trains: bool = True, is_single_run: bool = True):
        self.source = source
        self.section = section
        self.files = list(files)
        self.train_ids = np.asarray(train_ids, dtype=np.uint64)
        self.sel_keys = sel_keys
        self.inc_suspect_trains = inc_suspect_trains
        self.is_single_run = is_single_run

    def __repr__(self) -> str:
        return (f"<exfel_data.SourceData source={self.source!r} "
                f"for {len(self.train_ids)} trains>")

    @property
    def index_groups(self) -> set[str]:
        """The source's INDEX groups in its files (e.g. ``{'data', 'image'}``)."""
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
            return {k for k in keys if not k.endswith(".timestamp")}
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
                       train_ids=self.train_ids, dtype=dtype, entry_shape=shape[1:],
                       inc_suspect_trains=self.inc_suspect_trains)

    def one_key(self, index_group: str | None = None) -> str:
        """Some key of this source (in the given index group), found cheaply.

        Parameters
        ----------
        index_group : str, optional
            Only a key of this index group.

        Returns
        -------
        str

        Raises
        ------
        PropertyNameError
            No key in that index group.
        """
        for k in sorted(self.keys()):
            if index_group is None or fmt.index_group_of(self.section, k) == index_group:
                return k
        raise PropertyNameError(self.source, f"{index_group}.*", self.keys())

    # -- selections -----------------------------------------------------------------
    def _replace(self, **kw) -> SourceData:
        args = dict(section=self.section, files=self.files, train_ids=self.train_ids,
                    sel_keys=self.sel_keys, inc_suspect_trains=self.inc_suspect_trains,
                    is_single_run=self.is_single_run)
        args.update(kw)
        return SourceData(self.source, **args)

    def select_keys(self, keys) -> SourceData:
        """New SourceData with only the keys matching glob(s) or names.

        Parameters
        ----------
        keys : str or iterable of str
            Key names (control keys may omit ``.value``) or glob patterns.

        Returns
        -------
        SourceData

        Raises
        ------
        PropertyNameError
            A name or pattern matches no key.
        """
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
                if not found:
                    raise PropertyNameError(self.source, pat, all_keys)
                chosen |= found
        return self._replace(sel_keys=frozenset(chosen))

    def select_trains(self, trains) -> SourceData:
        """A new SourceData for a subset of trains.

        Parameters
        ----------
        trains : slice, int, list, array, bool array, by_id[...] or by_index[...]
            As for :meth:`DataCollection.select_trains`.

        Returns
        -------
        SourceData
        """
        return self._replace(train_ids=select_train_ids(self.train_ids, trains))

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
        for sl in split_ranges(len(self.train_ids), parts, trains_per_part):
            yield self._replace(train_ids=self.train_ids[sl])

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
        groups = [index_group] if index_group is not None else sorted(self.index_groups)
        counts = np.zeros(len(self.train_ids), dtype=np.uint64)
        for g in groups:
            rows = train_rows(self.files, self.source, g, self.train_ids,
                              self.inc_suspect_trains)
            counts = np.maximum(counts, rows.count.astype(np.uint64))
        if labelled:
            import pandas as pd

            return pd.Series(counts, index=pd.Index(self.train_ids, name="trainId"))
        return counts

    def drop_empty_trains(self) -> SourceData:
        """A new SourceData without the trains in which this source has no data."""
        return self._replace(train_ids=self.train_ids[self.data_counts(labelled=False) > 0])

    # -- RUN values -----------------------------------------------------------------
    def run_value(self, key: str):
        """The RUN-section snapshot of a control key (accepts the name without .value).

        Parameters
        ----------
        key : str
            A RUN key of this source.

        Returns
        -------
        object
            A number, string or array.

        Raises
        ------
        MultiRunError
            The data combines several runs.
        ValueError
            This is an instrument source.
        PropertyNameError
            No such RUN key.
        NoDataError
            The RUN dataset is empty.
        """
        if not self.is_single_run:
            raise MultiRunError("run_value()")
        if not self.is_control:
            raise ValueError(f"{self.source} is an instrument source; only control "
                             "sources have RUN values")
        run_keys = self.files[0].run_keys(self.source)
        if key not in run_keys and key + ".value" in run_keys:
            key = key + ".value"
        if key not in run_keys:
            raise PropertyNameError(self.source, key, run_keys)
        ds = self.files[0].dataset(f"/RUN/{self.source}/{key.replace('.', '/')}")
        if ds.shape and ds.shape[0] == 0:
            raise NoDataError(self.source, key, "The RUN dataset is empty.")
        value = ds[0] if ds.shape else ds[()]
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            return fmt.decode_strings(value)
        return fmt.decode_scalar(value)

    def run_values(self, inc_timestamps: bool = False) -> dict:
        """All RUN values of this control source as {key: value}.

        Parameters
        ----------
        inc_timestamps : bool
            Include the ``.timestamp`` keys.

        Returns
        -------
        dict
        """
        keys = self.files[0].run_keys(self.source)
        if not inc_timestamps:
            keys = {k for k in keys if not k.endswith(".timestamp")}
        return {k: self.run_value(k) for k in sorted(keys)}
