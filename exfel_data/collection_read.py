"""Reading data from a collection by source and key name, and iterating over its trains.

:class:`ReadMethods` holds EXtra-data's collection-level reading calls (``get_array``,
``get_dask_array``, ``get_series``, ``get_dataframe``, ``get_data_counts``) and train
iteration (``trains``, ``train_from_id``, ``train_from_index``) of
:class:`~exfel_data.DataCollection`, which inherits them: each one delegates to the
:class:`~exfel_data.keydata.KeyData` of the key or to :mod:`exfel_data.trains`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .selection import train_position

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from .collection_select import SourceSelection
    from .hints import Roi, TrainSelection

__all__ = ["ReadMethods"]


class ReadMethods:
    """The reading and train-iteration methods of :class:`~exfel_data.DataCollection`."""

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
