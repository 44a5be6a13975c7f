"""``KeyData``: one key of one source over the selected trains."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import format as fmt
from .exceptions import NoDataError, PropertyNameError
from .file_access import FileAccess, files_with_trains
from .reading import read_chunks_into, read_rows, roi_shape
from .roi_coords import entry_dims_and_coords
from .rowindex import DataChunk, TrainRows, train_rows
from .selection import ByIndex, select_train_ids, split_ranges, train_position
from .train_id_list import TrainIdList

if TYPE_CHECKING:
    import h5py
    import xarray as xr

    from .hints import Roi, TrainSelection

__all__ = ["KeyData", "read_run_value"]

# Largest dask chunk (bytes), for keys and detectors alike: dask's own default
# (array.chunk-size), small enough that a worker holds a few at once.
DASK_CHUNK_BYTES = 128 * 1024**2


class KeyData(fmt.SectionMixin):
    """Data for one key of one source. Get it from ``run[source, key]``.

    The constructor is internal: sources build these. Its parameters are kept as the
    attributes of the same names.

    Parameters
    ----------
    source, key : str
        The source and key names.
    section : str
        'CONTROL' or 'INSTRUMENT' (or an auxiliary section).
    files : list of FileAccess
        The files holding the source.
    train_ids : list of int
        Selected train IDs (including trains where this key has no data).
    dtype : np.dtype
        The key's dtype.
    entry_shape : tuple
        Shape of one entry (one row).
    inc_suspect_trains : bool
        Whether train IDs the files mark as suspect are included.
    """

    def __init__(self, source: str, key: str, *, section: str, files: list[FileAccess],
                 train_ids: np.ndarray, dtype: np.dtype, entry_shape: tuple,
                 inc_suspect_trains: bool = True):
        self.source = source
        self.key = key
        self.section = section
        self.files = list(files)
        self._train_ids = np.asarray(train_ids, dtype=np.uint64)
        self.dtype = np.dtype(dtype)
        self.entry_shape = tuple(entry_shape)
        self.inc_suspect_trains = inc_suspect_trains
        self._rows: TrainRows | None = None
        self._chunks: list[DataChunk] | None = None

    @property
    def train_ids(self) -> TrainIdList:
        """Selected train IDs (a list of ints, as EXtra-data gives them)."""
        return TrainIdList(self._train_ids)

    # -- structure ------------------------------------------------------------------
    @property
    def index_group(self) -> str:
        """The INDEX group counting the key's entries: an instrument key's first part, else ''."""
        return fmt.index_group_of(self.section, self.key)

    @property
    def hdf5_data_path(self) -> str:
        """Path of the key's dataset inside each file, e.g. ``/INSTRUMENT/<source>/data/x``."""
        return fmt.key_to_path(self.section, self.source, self.key)

    def train_rows(self) -> TrainRows:
        """Where each selected train's rows are (file, first row, count), from the INDEX.

        Index only: no dataset is opened (see :mod:`exfel_data.rowindex`).
        """
        if self._rows is None:
            self._rows = train_rows(self.files, self.source, self.index_group,
                                    self._train_ids, self.inc_suspect_trains)
        return self._rows

    def data_chunks(self) -> list[DataChunk]:
        """Contiguous blocks of rows holding the selected trains, ordered by train ID.

        The internal contract for code that plans its own reads (detectors, converters;
        see docs/architecture.md): each :class:`~exfel_data.rowindex.DataChunk` is one
        block of rows in one file, read with :func:`exfel_data.reading.read_chunks_into`.
        Every file's dataset is checked first (present, long enough for the index, same
        dtype and entry shape); a bad one raises FileStructureError naming it.
        """
        if self._chunks is None:
            self._chunks = self.train_rows().chunks(self.hdf5_data_path, self.dtype,
                                                    self.entry_shape)
        return self._chunks

    @property
    def shape(self) -> tuple:
        """Shape of all the selected data: ``(entries,) + entry_shape``."""
        return (sum(c.total_count for c in self.data_chunks()),) + self.entry_shape

    @property
    def ndim(self) -> int:
        """Number of dimensions of :attr:`shape`."""
        return len(self.entry_shape) + 1

    @property
    def nbytes(self) -> int:
        """Bytes of all the selected data in memory."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def size_mb(self) -> float:
        """:attr:`nbytes` in MB (10**6 bytes)."""
        return self.nbytes / 1e6

    @property
    def size_gb(self) -> float:
        """:attr:`nbytes` in GB (10**9 bytes)."""
        return self.nbytes / 1e9

    def __repr__(self) -> str:
        return (f"<exfel_data.KeyData source={self.source!r} key={self.key!r} "
                f"for {len(self._train_ids)} trains>")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def source_file_paths(self) -> list[Path]:
        """Paths of the files holding this key's data for the selected trains."""
        paths = dict.fromkeys(c.file.filename for c in self.data_chunks())
        return [Path(p) for p in paths]

    # -- attributes -----------------------------------------------------------------
    def attributes(self) -> dict:
        """Karabo attributes of this key (format 1.3 stores them on the key group)."""
        ds = self.files[0].dataset(self.hdf5_data_path)
        attrs = dict(ds.attrs)
        if self.is_control and self.key.endswith((".value", ".timestamp")):
            attrs.update(ds.parent.attrs)
        return {k: fmt.decode_scalar(v) for k, v in attrs.items()}

    def _unit(self, unit_attr: str, prefix_attr: str, spell: dict | None = None) -> str | None:
        """A unit attribute with its metric prefix in front, or None if not recorded.

        *spell* replaces stored prefixes (Karabo writes 'u' for micro).
        """
        attrs = self.attributes()
        unit = attrs.get(unit_attr)
        if unit is None:
            return None
        prefix = attrs.get(prefix_attr) or ""
        return (spell or {}).get(prefix, prefix) + unit

    @property
    def units(self) -> str | None:
        """Unit symbol with metric prefix (e.g. 'μJ'), or None if not recorded."""
        return self._unit("unitSymbol", "metricPrefixSymbol", {"u": "μ"})

    @property
    def units_name(self) -> str | None:
        """Unit name with metric prefix (e.g. 'microjoule'), or None."""
        return self._unit("unitName", "metricPrefixName")

    # -- train selection ------------------------------------------------------------
    def _with_train_ids(self, tids: np.ndarray) -> KeyData:
        files = files_with_trains(self.files, tids, self.inc_suspect_trains)
        return KeyData(self.source, self.key, section=self.section, files=files,
                       train_ids=tids, dtype=self.dtype, entry_shape=self.entry_shape,
                       inc_suspect_trains=self.inc_suspect_trains)

    def select_trains(self, trains: TrainSelection) -> KeyData:
        """New KeyData for a subset of trains.

        Parameters
        ----------
        trains : slice, int, list, array, bool array, by_id[...] or by_index[...]
            As for :meth:`DataCollection.select_trains`.

        Returns
        -------
        KeyData
        """
        return self._with_train_ids(select_train_ids(self._train_ids, trains))

    def __getitem__(self, item) -> KeyData:
        return self.select_trains(item)

    __iter__ = None  # a KeyData is not a sequence of rows; use .trains()

    def split_trains(self, parts: int | None = None, trains_per_part: int | None = None):
        """Yield KeyData objects each covering a similar share of the selected trains.

        Parameters
        ----------
        parts : int, optional
            At least this many parts (fewer if there are fewer trains).
        trains_per_part : int, optional
            At most this many trains in each part.

        Yields
        ------
        KeyData
        """
        for sl in split_ranges(len(self._train_ids), parts, trains_per_part):
            yield self._with_train_ids(self._train_ids[sl])

    def data_counts(self, labelled: bool = True):
        """Number of entries per selected train (0 where missing).

        Parameters
        ----------
        labelled : bool
            A pandas Series indexed by train ID (default), else a numpy array aligned with
            ``train_ids``.

        Returns
        -------
        pandas.Series or numpy.ndarray
        """
        counts = self.train_rows().count.astype(np.uint64)
        if labelled:
            import pandas as pd

            return pd.Series(counts, index=pd.Index(self._train_ids, name="trainId"))
        return counts

    def drop_empty_trains(self) -> KeyData:
        """New KeyData with only the trains that have at least one entry."""
        return self._with_train_ids(self._train_ids[self.data_counts(labelled=False) > 0])

    def train_index_bounds(self, labelled: bool = False):
        """Where each train's entries start and stop in ``ndarray()``.

        Parameters
        ----------
        labelled : bool
            Return a DataFrame indexed by train ID instead of two arrays.

        A tuple of two integer arrays aligned with ``train_ids``, or with
        ``labelled=True`` a pandas DataFrame with columns ``start`` and ``stop``.
        """
        counts = self.data_counts(labelled=False).astype(np.int64)
        stop = np.cumsum(counts)
        start = stop - counts
        if labelled:
            import pandas as pd

            return pd.DataFrame({"start": start, "stop": stop},
                                index=pd.Index(self._train_ids, name="trainId"))
        return start, stop

    def run_value(self):
        """The RUN-section value of this control key (see SourceData.run_value)."""
        if not self.is_control:
            raise ValueError(f"{self.source} is an instrument source; only control "
                             "sources have RUN values")
        run_keys = self.files[0].run_keys(self.source)
        if self.key not in run_keys:
            raise PropertyNameError(self.source, self.key, run_keys,
                                    hint="It is not in the RUN section.")
        return read_run_value(self.files[0], self.source, self.key)

    def train_id_coordinates(self) -> np.ndarray:
        """Train ID of each row of ``ndarray()`` (repeated for several entries per train)."""
        chunks = self.data_chunks()
        if not chunks:
            return np.zeros(0, dtype=np.uint64)
        return np.concatenate([np.repeat(c.train_ids, c.counts.astype(np.intp))
                               for c in chunks])

    # -- reading --------------------------------------------------------------------
    def _out_dtype(self) -> np.dtype:
        return np.dtype(object) if self.dtype.kind == "O" else self.dtype

    def ndarray(self, roi: Roi = (), out: np.ndarray | None = None) -> np.ndarray:
        """Read all selected entries into one numpy array (rows ordered by train).

        Parameters
        ----------
        roi : tuple
            Basic indexing applied to each entry, e.g. ``np.s_[100:200, :]`` (or, as in
            EXtra-data, ``by_index[100:200, :]``).
        out : np.ndarray, optional
            Preallocated output of the right shape.
        """
        roi = _roi_value(roi)
        if not isinstance(roi, tuple):
            roi = (roi,)
        shape = self.shape[:1] + roi_shape(self.entry_shape, roi)
        if out is None:
            out = np.empty(shape, dtype=self._out_dtype())
        elif out.shape != shape:
            raise ValueError(f"out has shape {out.shape}; {self!r} needs {shape}")
        return read_chunks_into(self.data_chunks(), out, roi)

    def _default_name(self, sep: str) -> str:
        name = f"{self.source}{sep}{self.key}"
        if self.is_control and name.endswith(".value"):
            name = name[:-6]
        return name

    def xarray(self, extra_dims: Sequence[str] | None = None, roi: Roi = (),
               name: str | None = None, extra_coords: bool | Mapping[str, Any] | None = None
               ) -> xr.DataArray:
        """Read into an ``xarray.DataArray`` with a ``trainId`` coordinate (one per row).

        Structured dtypes give an ``xarray.Dataset`` with one variable per field.

        Parameters
        ----------
        extra_dims : list of str, optional
            Names of the entry dims after ``trainId`` (default ``dim_0``, ``dim_1``...,
            numbered as stored: an integer in *roi* drops its dim and name). Giving them
            also adds coordinates: the entry indices *roi* kept.
        roi : tuple
            Indexing applied to each entry, as for :meth:`ndarray`.
        name : str, optional
            The array's name (default ``'<source>.<key>'`` without ``.value``).
        extra_coords : bool or dict, optional
            True: coordinates for every entry dim (as with *extra_dims*); a dict maps dim
            names to coordinate values (then only those), as in EXtra-data.

        Returns
        -------
        xarray.DataArray or xarray.Dataset

        Raises
        ------
        ValueError
            *extra_dims* has the wrong length.
        """
        import xarray as xr

        dims, coords = entry_dims_and_coords(self.entry_shape, _roi_value(roi), extra_dims,
                                             extra_coords)
        arr = self.ndarray(roi=roi)
        dims = ["trainId", *dims]
        coords = {"trainId": self.train_id_coordinates(), **coords}
        attrs = {}
        units = self.units if self.files else None
        if units:
            attrs["units"] = units
        if arr.dtype.names is not None:
            return xr.Dataset({f: (dims, arr[f]) for f in arr.dtype.names},
                              coords=coords, attrs=attrs)
        return xr.DataArray(arr, dims=dims, coords=coords, attrs=attrs,
                            name=name or self._default_name("."))

    def series(self):
        """Read 1-D data (one scalar per entry) into a pandas Series indexed by trainId."""
        import pandas as pd

        if self.ndim > 1:
            raise TypeError(f"{self.source} {self.key} has entries of shape "
                            f"{self.entry_shape}; a Series needs scalar entries. "
                            "Use .xarray() or .ndarray().")
        index = pd.Index(self.train_id_coordinates(), name="trainId")
        return pd.Series(self.ndarray(), index=index, name=self._default_name("/"))

    def dask_array(self, labelled: bool = False):
        """A lazy dask array of this data (optionally labelled as an xarray DataArray).

        The task graph holds only file paths, dataset names and row ranges, so it is
        picklable and works on dask.distributed workers, which reopen the files.

        Parameters
        ----------
        labelled : bool
            Wrap it in an ``xarray.DataArray`` with a ``trainId`` coordinate.

        Returns
        -------
        dask.array.Array or xarray.DataArray
        """
        import dask
        import dask.array as da

        row_bytes = max(1, int(np.prod(self.entry_shape, dtype=np.int64))
                        * self.dtype.itemsize)
        max_rows = max(1, DASK_CHUNK_BYTES // row_bytes)
        dtype = self._out_dtype()
        pieces = []
        for ch in self.data_chunks():
            for start in range(ch.first, ch.first + ch.total_count, max_rows):
                stop = min(start + max_rows, ch.first + ch.total_count)
                task = dask.delayed(read_rows, pure=True)(
                    ch.file.filename, ch.dataset_path, start, stop, (), dtype,
                    ch.file.identity)
                pieces.append(da.from_delayed(task, (stop - start,) + self.entry_shape,
                                              dtype=dtype))
        if pieces:
            arr = da.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
        else:
            arr = da.from_array(np.empty((0,) + self.entry_shape, dtype=dtype), chunks=-1)
        if labelled:
            import xarray as xr

            dims = ["trainId", *entry_dims_and_coords(self.entry_shape, ())[0]]
            return xr.DataArray(arr, dims=dims,
                                coords={"trainId": self.train_id_coordinates()},
                                name=self._default_name("."))
        return arr

    def get_virtual_dataset(self, filename: str | os.PathLike | None = None
                            ) -> h5py.Dataset:
        """This key's selected rows as an HDF5 virtual dataset (``h5py.Dataset``, read-only).

        The dataset spans all files (rows in train order, as :meth:`ndarray`) but holds
        only a map to them: data is read on access. Other processes can open its file and
        ``ds.name`` (HDF5 >= 1.10, with the run's files at the same paths).

        Parameters
        ----------
        filename : str or path-like, optional
            The file to hold it (overwritten once complete); default a new temporary file.

        Raises
        ------
        TypeError
            Variable-length string keys (HDF5 cannot map them).
        """
        from .write.single_file import virtual_dataset

        return virtual_dataset(self, filename)

    def as_single_value(self, rtol: float = 1e-5, atol: float = 0.0,
                        reduce_by: str | Callable[..., Any] | None = None) -> Any:
        """One value for the whole selection, if all entries agree within tolerance.

        Numbers are compared with ``np.allclose`` against the reduced value; other types
        must all be equal (and take no *reduce_by*).

        Parameters
        ----------
        rtol, atol : float
            Relative and absolute tolerance (as ``np.allclose``).
        reduce_by : str or callable, optional
            How to get the one value: a numpy function name (default, None:
            ``'median'``), ``'first'``, or a callable.

        Returns
        -------
        object
            The value (a numpy scalar, or an array for array entries).

        Raises
        ------
        ValueError
            The entries do not agree within tolerance (the message names the spread), or
            an unknown *reduce_by*.
        NoDataError
            The selection has no entries.
        TypeError
            *reduce_by* given for non-numeric entries.
        """
        data = self.ndarray()
        if len(data) == 0:
            raise NoDataError(self.source, self.key)
        if not np.issubdtype(data.dtype, np.number):
            if reduce_by is not None:
                raise TypeError(f"{self.source} {self.key} holds {data.dtype} values: "
                                "reduce_by only applies to numbers; leave it out")
            first = data[0]
            differing = [x for x in data if not np.array_equal(x, first)]
            if differing:
                raise ValueError(f"{self.source} {self.key}: values differ "
                                 f"(e.g. {first!r} and {differing[0]!r})")
            return first
        if reduce_by is None:
            reduce_by = "median"
        if callable(reduce_by):
            value = reduce_by(data)
        elif reduce_by == "first":
            value = data[0]
        elif isinstance(reduce_by, str) and hasattr(np, reduce_by):
            value = getattr(np, reduce_by)(data, axis=0)
        else:
            raise ValueError(f"reduce_by must be a callable, 'first' or a numpy function "
                             f"name, not {reduce_by!r}")
        if not np.allclose(data, value, rtol=rtol, atol=atol):
            adev = float(np.max(np.abs(data - value)))
            rdev = float(np.max(np.abs(data - value) / np.maximum(np.abs(value), 1e-300)))
            raise ValueError(f"{self.source} {self.key}: values not within tolerance "
                             f"(max absolute deviation {adev:.3g}, relative {rdev:.3g}; "
                             f"rtol={rtol}, atol={atol})")
        return value

    # -- per train ------------------------------------------------------------------
    def train_from_id(self, train_id: int, keep_dims: bool = False):
        """(train_id, array) for one train; a single entry loses its first axis.

        Parameters
        ----------
        train_id : int
            A selected train ID.
        keep_dims : bool
            Keep the entries axis even for a single entry.

        Returns
        -------
        tuple of (int, numpy.ndarray)

        Raises
        ------
        TrainIDError
            The train ID is not selected.
        """
        pos = train_position(self._train_ids, train_id)
        arr = self._with_train_ids(self._train_ids[pos:pos + 1]).ndarray()
        if len(arr) == 1 and not keep_dims:
            arr = arr[0]
        return int(train_id), arr

    def train_from_index(self, i: int, keep_dims: bool = False):
        """(train_id, array) for the train at position *i* of ``train_ids``.

        Parameters
        ----------
        i : int
            The position (negative counts from the end).
        keep_dims : bool
            Keep the entries axis even for a single entry.

        Returns
        -------
        tuple of (int, numpy.ndarray)
        """
        return self.train_from_id(int(self._train_ids[i]), keep_dims=keep_dims)

    def trains(self, keep_dims: bool = False, include_empty: bool = False):
        """Iterate over (train_id, array) for trains with data.

        Parameters
        ----------
        keep_dims : bool
            Keep the entries axis even for a single entry.
        include_empty : bool
            Yield trains without data too: an array of 0 entries with *keep_dims*, else
            None.

        Yields
        ------
        tuple of (int, numpy.ndarray)
        """
        from .trains import iterate_key

        yield from iterate_key(self, keep_dims=keep_dims, include_empty=include_empty)


def _roi_value(roi):
    """An roi as an index (EXtra-data code passes ``by_index[...]``)."""
    return roi.value if isinstance(roi, ByIndex) else roi


def read_run_value(fa: FileAccess, source: str, key: str):
    """The RUN-section value of *key* (a full name, e.g. 'x.value') in one file."""
    ds = fa.dataset(f"/RUN/{source}/{key.replace('.', '/')}")
    if ds.shape and ds.shape[0] == 0:
        raise NoDataError(source, key, "The RUN dataset is empty.")
    value = ds[0] if ds.shape else ds[()]
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return fmt.decode_strings(value)
    return fmt.decode_scalar(value)
