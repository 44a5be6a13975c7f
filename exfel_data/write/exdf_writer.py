"""Low-level writer for one EXDF (European XFEL HDF5) file.

The writer knows the layout of each format version (0.5, 1.0, 1.1, 1.2, 1.3) and nothing
about where the data comes from: callers declare the file's trains, then sources with their
rows per train, then keys with their dtype and entry shape; datasets are created with their
final shape at once and filled in row blocks with :meth:`ExdfWriter.write`, so no key has to
be held in memory whole. ``INDEX`` and ``METADATA`` are written on :meth:`ExdfWriter.close`.

For data arriving train by train (recording a live stream), keys can be declared *growable*
and trains appended with :meth:`ExdfWriter.append_trains`; sources may then be declared at
any time (earlier trains get zero rows).

The file is written under a temporary name in the same folder and renamed when complete; if
writing fails (or the ``with`` block raises), the temporary file is removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .h5output import close_after_error

__all__ = ['ExdfWriter', 'ExdfWriteError', 'FORMAT_VERSIONS', 'KEY_ATTRIBUTES', 'STRING_DTYPE',
           'train_timestamps']

FORMAT_VERSIONS = ('0.5', '1.0', '1.1', '1.2', '1.3')

#: Karabo key metadata stored as attributes on the key (format 1.3).
KEY_ATTRIBUTES = ('alias', 'daqPolicy', 'description', 'displayedName', 'metricPrefixEnum',
                  'metricPrefixName', 'metricPrefixSymbol', 'requiredAccessLevel',
                  'unitEnum', 'unitName', 'unitSymbol')

#: Sections besides CONTROL/RUN/INSTRUMENT that newer files may carry.
AUXILIARY_SECTIONS = ('REDUCTION', 'ERRATA')

#: dtype of variable-length string keys (read back as ``bytes``).
STRING_DTYPE = h5py.string_dtype('ascii')
_VLEN_BYTES = h5py.special_dtype(vlen=bytes)
# Rows at least this big are written as raw chunks when a chunk is one row (see write()).
_DIRECT_CHUNK_BYTES = 64 * 1024


class ExdfWriteError(ValueError):
    """A request the EXDF writer cannot honour (unknown source, bad shape, ...)."""


@dataclass
class _Source:
    name: str
    section: str                      # 'CONTROL', 'INSTRUMENT' or an auxiliary section
    counts: dict[str, np.ndarray]     # index group ('' for control) -> rows per train
    legacy_name: str | None = None
    keys: dict[str, h5py.Dataset] = field(default_factory=dict)

    def rows(self, group: str) -> int:
        return int(self.counts[group].sum())


def _layout(shape: tuple, dtype, chunks, growable: bool) -> dict:
    """h5py storage options: a growable dataset is chunked (about 1 MiB) with no size limit."""
    if not growable:
        return {'chunks': chunks}
    if chunks is None or chunks is True:
        row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize)
        chunks = (max(1, min(1024, 2**20 // row)),) + tuple(max(1, s) for s in shape[1:])
    return {'chunks': chunks, 'maxshape': (None,) + tuple(shape[1:])}


def _whole_row_chunks(ds: h5py.Dataset, data: np.ndarray) -> bool:
    """Whether each row of ``data`` can be written as one raw chunk of ``ds``."""
    return (ds.chunks is not None and ds.chunks == (1,) + ds.shape[1:] and ds.ndim > 1
            and data.dtype == ds.dtype and ds.dtype.kind in 'biufc'
            and ds.compression is None and not ds.shuffle and not ds.fletcher32
            and ds.scaleoffset is None and data[0].nbytes >= _DIRECT_CHUNK_BYTES)


def _as_counts(counts, n_trains: int, what: str) -> np.ndarray:
    if counts is None:
        return np.ones(n_trains, dtype=np.uint64)
    if np.isscalar(counts):
        return np.full(n_trains, counts, dtype=np.uint64)
    arr = np.asarray(counts)
    if arr.shape != (n_trains,):
        raise ExdfWriteError(
            f"{what}: counts must have one entry per train ({n_trains}), got shape {arr.shape}"
        )
    if arr.size and arr.min() < 0:
        raise ExdfWriteError(f"{what}: counts must not be negative")
    return arr.astype(np.uint64)


def _encoded(data) -> np.ndarray:
    """An object array of bytes (str encoded as UTF-8) for vlen string datasets."""
    arr = np.asarray(data, dtype=object)
    flat = [v.encode() if isinstance(v, str) else v for v in arr.ravel().tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def _vlen_list(strings: Sequence[str], length: int | None = None) -> np.ndarray:
    items = [s.encode() if isinstance(s, str) else bytes(s) for s in strings]
    if length is not None:
        items += [b''] * (length - len(items))
    return np.array(items, dtype=object)


class ExdfWriter:
    """Write one EXDF HDF5 file, declaring sources and keys first and rows in blocks.

    Parameters
    ----------
    path : str or Path
        Final file name (``RAW-R0001-DA01-S00000.h5``). The data goes to a temporary name in
        the same folder and is renamed on :meth:`close`.
    train_ids : array of uint64
        ``INDEX/trainId`` in file order (may be out of order or repeat, as real files do;
        a 0, a corrupt row, only with its flag False).
    format_version : {'0.5', '1.0', '1.1', '1.2', '1.3'}
        Layout to write. ``0.5`` has no ``dataFormatVersion``, keeps the source lists directly
        in ``METADATA/`` and has no ``INDEX/timestamp``, ``flag`` or ``origin``.
    timestamps : array of uint64, optional
        ``INDEX/timestamp`` (ns since the epoch) per train, and the default timestamp of
        control values. Defaults to :func:`train_timestamps` of the train IDs.
    flags : array of bool, optional
        True for trains whose ID came from the time server (default all True). Written as
        ``INDEX/flag``: 1/0 in 1.0, 1.2, 1.3; inverted (0 = good) in 1.1; absent in 0.5.
    origins : array of int32, optional
        ``INDEX/origin`` (1.2+): -1 for trains from the time server. Defaults to -1 for
        flagged-good trains and 0 (the first source) for the others.
    index_padding : int
        Zero rows appended to every ``INDEX`` dataset, as the DAQ preallocates them.
    legacy_index : bool
        Write ``first``/``last``/``status`` instead of ``first``/``count`` (oldest 0.5 files).
    run_number, proposal, sequence : int
        Written to ``METADATA`` (1.0+).
    metadata : mapping, optional
        Extra or replacement ``METADATA`` string entries (``sample``, ``runType``,
        ``daqLibrary``, ``karaboFramework``, ``creationDate``, ...).
    source_list_padding : int
        Empty (``b''``) entries appended to the ``dataSourceId`` lists, as some files have.
    """

    def __init__(self, path, train_ids, *, format_version: str = '1.3', timestamps=None,
                 flags=None, origins=None, index_padding: int = 0, legacy_index: bool = False,
                 run_number: int = 1, proposal: int = 0, sequence: int = 0,
                 metadata: Mapping[str, str] | None = None, source_list_padding: int = 0):
        if format_version not in FORMAT_VERSIONS:
            raise ExdfWriteError(
                f"Unknown EXDF format version {format_version!r}; choose from {FORMAT_VERSIONS}"
            )
        if legacy_index and format_version != '0.5':
            raise ExdfWriteError("first/last/status index datasets only exist in format 0.5")
        self.path = Path(path)
        self.format_version = format_version
        self.train_ids = np.asarray(train_ids, dtype=np.uint64)
        n = len(self.train_ids)
        if self.train_ids.ndim != 1:
            raise ExdfWriteError(f"{self.path.name}: train IDs must be a 1-D array")
        self.timestamps = (train_timestamps(self.train_ids) if timestamps is None
                           else np.asarray(timestamps, dtype=np.uint64))
        self.flags = (np.ones(n, dtype=bool) if flags is None
                      else np.asarray(flags, dtype=bool))
        if self.flags.shape == (n,) and (self.flags & (self.train_ids == 0)).any():
            raise ExdfWriteError(
                f"{self.path.name}: train ID 0 at INDEX rows "
                f"{np.nonzero(self.flags & (self.train_ids == 0))[0].tolist()} must be flagged "
                "as suspect (flags=False); trailing padding is added with index_padding"
            )
        if origins is None:
            origins = np.where(self.flags, -1, 0)
        self.origins = np.asarray(origins, dtype=np.int32)
        for name, arr in [('timestamps', self.timestamps), ('flags', self.flags),
                          ('origins', self.origins)]:
            if arr.shape != (n,):
                raise ExdfWriteError(f"{self.path.name}: {name} must have one entry per train "
                                     f"({n}), got shape {arr.shape}")
        self.index_padding = int(index_padding)
        self.legacy_index = legacy_index
        self.meta = {'run_number': run_number, 'proposal': proposal, 'sequence': sequence}
        self.extra_metadata = dict(metadata or {})
        self.source_list_padding = int(source_list_padding)
        self.sources: dict[str, _Source] = {}
        self._run_sources: set[str] = set()

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name(f'.{self.path.name}.{os.getpid()}.tmp')
        self.file = h5py.File(self.tmp_path, 'w', libver=('earliest', 'v110'))
        self._groups: dict[str, h5py.Group] = {}
        for section in ('METADATA', 'INDEX', 'CONTROL', 'RUN', 'INSTRUMENT'):
            self.file.create_group(section)

    # -- HDF5 objects (parent groups cached: h5py's nested-path lookups dominate otherwise) --
    def _group(self, path: str) -> h5py.Group:
        grp = self._groups.get(path)
        if grp is None:
            try:
                grp = self.file.create_group(path)
            except ValueError:      # made earlier as an intermediate group
                grp = self.file[path]
            self._groups[path] = grp
        return grp

    def _dataset(self, path: str, *args, **kwargs) -> h5py.Dataset:
        parent, _, name = path.rpartition('/')
        return self._group(parent).create_dataset(name, *args, **kwargs)

    # -- declaring sources -------------------------------------------------------------
    @property
    def n_trains(self) -> int:
        return len(self.train_ids)

    def add_control_source(self, source: str, counts=None) -> None:
        """Declare a control (slow data) source; *counts* rows per train (default 1)."""
        self._check_new_source(source)
        self.sources[source] = _Source(
            source, 'CONTROL', {'': _as_counts(counts, self.n_trains, source)})
        self._group(f'CONTROL/{source}')

    def add_instrument_source(self, source: str, group_counts: Mapping[str, object],
                              legacy_name: str | None = None,
                              section: str = 'INSTRUMENT') -> None:
        """Declare an instrument (fast data) source ``device:channel``.

        Parameters
        ----------
        group_counts : mapping
            Index group (first key component: ``'data'``, ``'image'``, ``'header'``...) to
            rows per train (scalar or one value per train).
        legacy_name : str, optional
            Old source name (``AGIPD/DET/0CH0:xtdf``) to add as HDF5 soft links in INDEX and
            INSTRUMENT, as newer corrected files do.
        section : {'INSTRUMENT', 'REDUCTION', 'ERRATA'}
            Auxiliary sections (newer files) hold the source's data under ``/<section>/``,
            list it in ``METADATA/auxiliarySources/<section>`` instead of ``dataSources``,
            have no redundant ``trainId`` datasets and may omit the ``:channel`` part.
        """
        self._check_new_source(source)
        if section not in ('INSTRUMENT',) + AUXILIARY_SECTIONS:
            raise ExdfWriteError(f"{source}: unknown section {section!r}; choose INSTRUMENT or "
                                 f"one of {AUXILIARY_SECTIONS}")
        if ':' not in source and section == 'INSTRUMENT':
            raise ExdfWriteError(f"Instrument source {source!r} must look like 'device:channel'")
        if legacy_name and section != 'INSTRUMENT':
            raise ExdfWriteError(f"{source}: legacy names only exist for INSTRUMENT sources")
        if not group_counts:
            raise ExdfWriteError(f"{source}: declare at least one index group")
        counts = {g: _as_counts(c, self.n_trains, f'{source}/{g}')
                  for g, c in group_counts.items()}
        self.sources[source] = _Source(source, section, counts, legacy_name)
        self._group(f'{section}/{source}')

    def _check_new_source(self, source: str) -> None:
        self._run_sources.discard(source)    # RUN keys came first: fine
        if source in self.sources:
            raise ExdfWriteError(f"Source {source!r} is already declared in {self.path.name}")

    def _source(self, source: str) -> _Source:
        try:
            return self.sources[source]
        except KeyError:
            raise ExdfWriteError(
                f"Source {source!r} was not declared in {self.path.name}; declared: "
                f"{sorted(self.sources)}"
            ) from None

    # -- declaring keys ----------------------------------------------------------------
    def add_control_key(self, source: str, key: str, dtype, entry_shape=(), *,
                        attrs: Mapping | None = None, timestamps=None, chunks=None,
                        growable: bool = False) -> None:
        """Create ``value`` and ``timestamp`` datasets of a control key (dotted *key*).

        The timestamps default to the train timestamps; rows go in with :meth:`write`.
        ``growable`` datasets get longer as :meth:`write` needs (for appended trains; their
        timestamps are then written as ``key.timestamp`` like the values).
        """
        src = self._source(source)
        if src.section != 'CONTROL':
            raise ExdfWriteError(f"{source!r} is an instrument source; use add_instrument_key")
        if key in src.keys:
            raise ExdfWriteError(f"Key {key!r} of {source!r} is already declared")
        rows = src.rows('')
        grp = self._group(f"CONTROL/{source}/{key.replace('.', '/')}")
        shape = (rows,) + tuple(entry_shape)
        src.keys[key] = grp.create_dataset('value', shape, dtype=dtype,
                                           **_layout(shape, dtype, chunks, growable))
        ts = grp.create_dataset('timestamp', (rows,), dtype=np.uint64,
                                **_layout((rows,), np.uint64, None, growable))
        if timestamps is None:
            timestamps = np.repeat(self.timestamps, src.counts[''].astype(np.intp))
        if rows:
            ts[:] = timestamps
        self._set_attrs(grp, attrs)

    def add_run_key(self, source: str, key: str, value, *, timestamp: int | None = None,
                    attrs: Mapping | None = None) -> None:
        """Write one run-level snapshot ``RUN/<source>/<key>/value`` (shape ``(1,) + entry``).

        A source only written here (RUN-only) is declared as a control source without data:
        listed in METADATA, with ``INDEX`` counts of 0 and an empty ``CONTROL`` group.
        """
        arr = np.asarray(value)
        if arr.dtype.kind in 'SUO':
            data = _encoded(arr)[np.newaxis]
            dtype = STRING_DTYPE
        else:
            data, dtype = arr[np.newaxis], arr.dtype
        grp = self._group(f"RUN/{source}/{key.replace('.', '/')}")
        if 'value' in grp:
            raise ExdfWriteError(f"RUN key {key!r} of {source!r} is already written")
        grp.create_dataset('value', data=data, dtype=dtype)
        ts = self.timestamps[0] if (timestamp is None and self.n_trains) else (timestamp or 0)
        grp.create_dataset('timestamp', data=np.array([ts], dtype=np.uint64))
        self._set_attrs(grp, attrs)
        if source not in self.sources:
            self._run_sources.add(source)

    def add_instrument_key(self, source: str, key: str, dtype, entry_shape=(), *,
                           rows: int | None = None, chunks=None, compression=None,
                           compression_opts=None, attrs: Mapping | None = None,
                           growable: bool = False) -> None:
        """Create the dataset of an instrument key ``group.name`` with its final shape.

        Parameters
        ----------
        rows : int, optional
            Allocated length; at least the rows the index uses (default), more to mimic
            preallocated DAQ datasets (chunked datasets do not store unwritten chunks).
        chunks : tuple or True, optional
            HDF5 chunk shape, e.g. ``(1,) + entry_shape`` for one frame per chunk.
        growable : bool
            The dataset gets longer as :meth:`write` needs (for appended trains); chunked
            (default: about 1 MiB per chunk).
        """
        src = self._source(source)
        if src.section == 'CONTROL':
            raise ExdfWriteError(f"{source!r} is a control source; use add_control_key")
        group = key.partition('.')[0]
        if group not in src.counts or '.' not in key:
            raise ExdfWriteError(
                f"Key {key!r} of {source!r} must start with one of its index groups "
                f"{sorted(src.counts)} followed by '.'"
            )
        if key in src.keys:
            raise ExdfWriteError(f"Key {key!r} of {source!r} is already declared")
        used = src.rows(group)
        rows = used if rows is None else int(rows)
        if rows < used:
            raise ExdfWriteError(f"{source} {key}: rows={rows} is less than the {used} rows "
                                 "the index refers to")
        if chunks is not None and chunks is not True:
            full = (rows,) + tuple(entry_shape)
            if len(chunks) != len(full):
                raise ExdfWriteError(f"{source} {key}: chunks {chunks} do not match {full}")
            chunks = tuple(min(c, max(s, 1)) for c, s in zip(chunks, full, strict=True))
        shape = (rows,) + tuple(entry_shape)
        ds = self._dataset(
            f"{src.section}/{source}/{key.replace('.', '/')}", shape, dtype=dtype,
            compression=compression, compression_opts=compression_opts,
            **_layout(shape, dtype, chunks, growable))
        src.keys[key] = ds
        self._set_attrs(ds, attrs)

    def add_virtual_key(self, source: str, key: str, layout, *, fillvalue=None,
                        attrs: Mapping | None = None) -> h5py.Dataset:
        """Add a key as an HDF5 virtual dataset mapping rows of other files.

        For a control source *key* is ``path.value`` or ``path.timestamp``; for an instrument
        source a key of a declared index group. *layout* (an ``h5py.VirtualLayout``) must
        have one row per row the index declares for the key.
        """
        src = self._source(source)
        group = '' if src.section == 'CONTROL' else key.partition('.')[0]
        if group not in src.counts:
            raise ExdfWriteError(f"Key {key!r} of {source!r} must start with one of its "
                                 f"index groups {sorted(src.counts)} followed by '.'")
        if layout.shape[0] != src.rows(group):
            raise ExdfWriteError(f"{source} {key}: {layout.shape[0]} virtual rows, but the "
                                 f"index declares {src.rows(group)}")
        path = f"{src.section}/{source}/{key.replace('.', '/')}"
        parent, _, name = path.rpartition('/')
        ds = self._group(parent).create_virtual_dataset(name, layout, fillvalue=fillvalue)
        if src.section == 'CONTROL':
            base, _, leaf = key.rpartition('.')
            if leaf == 'value':
                src.keys[base] = ds
                self._set_attrs(ds.parent, attrs)
        else:
            src.keys[key] = ds
            self._set_attrs(ds, attrs)
        return ds

    def _set_attrs(self, obj, attrs: Mapping | None) -> None:
        if attrs and self.format_version == '1.3':
            for name, value in attrs.items():
                obj.attrs[name] = value

    # -- data --------------------------------------------------------------------------
    def dataset(self, source: str, key: str) -> h5py.Dataset:
        """The h5py dataset of a declared key (control: its ``value``)."""
        src = self._source(source)
        if src.section == 'CONTROL' and key.endswith('.timestamp'):
            base = key[:-len('.timestamp')]
            if base in src.keys:
                return src.keys[base].parent['timestamp']
        if src.section == 'CONTROL' and key.endswith('.value'):
            key = key[:-len('.value')]
        try:
            return src.keys[key]
        except KeyError:
            raise ExdfWriteError(
                f"Key {key!r} of {source!r} was not declared; declared: {sorted(src.keys)}"
            ) from None

    def write(self, source: str, key: str, data, start: int = 0) -> None:
        """Write rows ``start : start + len(data)`` of a key (``key.timestamp`` for control
        timestamps)."""
        ds = self.dataset(source, key)
        data = np.asarray(data) if ds.dtype.kind != 'O' else _encoded(data)
        stop = start + len(data)
        if stop > ds.shape[0] and ds.maxshape[0] is None and data.shape[1:] == ds.shape[1:]:
            ds.resize(stop, axis=0)
        if start < 0 or stop > ds.shape[0] or data.shape[1:] != ds.shape[1:]:
            raise ExdfWriteError(
                f"{source} {key}: cannot write rows {start}:{stop} of shape {data.shape[1:]} "
                f"into a dataset of shape {ds.shape}"
            )
        if len(data) and _whole_row_chunks(ds, data):
            # One chunk per row, no filters: hand each row to HDF5 as the chunk itself, which
            # skips the chunked write path's copies (~1.5x faster for big rows).
            origin = (0,) * (ds.ndim - 1)
            for i, row in enumerate(data):
                ds.id.write_direct_chunk((start + i,) + origin, np.ascontiguousarray(row))
        elif len(data):
            ds[start:stop] = data

    def append_trains(self, train_ids, timestamps=None,
                      counts: Mapping[str, object] | None = None) -> None:
        """Add trains at the end of the file (for data written as it arrives).

        Parameters
        ----------
        train_ids : array of uint64
            The new trains, flagged good (from the time server).
        timestamps : array of uint64, optional
            Their ``INDEX/timestamp`` (ns since the epoch); default :func:`train_timestamps`.
        counts : mapping, optional
            Rows per new train of each source: ``{control source: counts}`` or
            ``{instrument source: {index group: counts}}`` (a scalar or one value per
            train). Sources not named, and groups not named, get 0 rows.
        """
        new = np.asarray(train_ids, dtype=np.uint64).reshape(-1)
        n = len(new)
        stamps = (train_timestamps(new) if timestamps is None
                  else np.asarray(timestamps, dtype=np.uint64).reshape(-1))
        if stamps.shape != (n,):
            raise ExdfWriteError(f"{self.path.name}: {n} train IDs but {len(stamps)} timestamps")
        counts = dict(counts or {})
        unknown = sorted(set(counts) - set(self.sources))
        if unknown:
            raise ExdfWriteError(f"Sources {unknown} were not declared in {self.path.name}; "
                                 f"declared: {sorted(self.sources)}")
        for src in self.sources.values():
            given = counts.get(src.name, 0)
            for group in src.counts:
                c = given.get(group, 0) if isinstance(given, Mapping) else given
                src.counts[group] = np.concatenate(
                    [src.counts[group], _as_counts(c, n, f'{src.name}/{group}')])
        self.train_ids = np.concatenate([self.train_ids, new])
        self.timestamps = np.concatenate([self.timestamps, stamps])
        self.flags = np.concatenate([self.flags, np.ones(n, dtype=bool)])
        self.origins = np.concatenate([self.origins, np.full(n, -1, dtype=np.int32)])

    # -- finishing ---------------------------------------------------------------------
    def _write_index(self) -> None:
        pad = self.index_padding

        def padded(arr, dtype):
            out = np.zeros(len(arr) + pad, dtype=dtype)
            out[:len(arr)] = arr
            return out

        self._dataset('INDEX/trainId', data=padded(self.train_ids, np.uint64))
        if self.format_version != '0.5':
            self._dataset('INDEX/timestamp', data=padded(self.timestamps, np.uint64))
            if self.format_version == '1.1':
                flag = np.where(self.flags, 0, np.maximum(self.origins, 1))
            else:
                flag = self.flags.astype(np.int32)
            self._dataset('INDEX/flag', data=padded(flag, np.int32))
        if self.format_version in ('1.2', '1.3'):
            self._dataset('INDEX/origin', data=padded(self.origins, np.int32))

        for src in self.sources.values():
            for group, counts in src.counts.items():
                path = f'INDEX/{src.name}' + (f'/{group}' if group else '')
                first = np.cumsum(counts) - counts
                self._dataset(f'{path}/first', data=padded(first, np.uint64))
                if self.legacy_index:
                    self._dataset(f'{path}/last',
                                  data=padded(first + np.maximum(counts, 1) - 1, np.uint64))
                    self._dataset(f'{path}/status', data=padded(counts > 0, np.uint64))
                else:
                    self._dataset(f'{path}/count', data=padded(counts, np.uint64))

    def _fit_growable(self) -> None:
        # Rows never written (a caller's gap) read as zeros instead of breaking the index.
        for src in self.sources.values():
            for key, ds in src.keys.items():
                if ds.maxshape[0] is None:
                    rows = src.rows('' if src.section == 'CONTROL' else key.partition('.')[0])
                    ds.resize(rows, axis=0)
                    if src.section == 'CONTROL':
                        ds.parent['timestamp'].resize(rows, axis=0)

    def _write_group_train_ids(self) -> None:
        # Every index group carries a redundant trainId dataset, unless the caller wrote one.
        for src in self.sources.values():
            if src.section != 'INSTRUMENT':   # auxiliary sections have none
                continue
            for group, counts in src.counts.items():
                if f'{group}.trainId' not in src.keys:
                    tids = np.repeat(self.train_ids, counts.astype(np.intp))
                    self._dataset(f'INSTRUMENT/{src.name}/{group}/trainId', data=tids)

    def _write_links(self) -> None:
        for src in self.sources.values():
            if src.legacy_name:
                for section in ('INDEX', 'INSTRUMENT'):
                    self.file[f'{section}/{src.legacy_name}'] = h5py.SoftLink(
                        f'/{section}/{src.name}')

    def _data_source_ids(self) -> list[tuple[str, str]]:
        ids = []
        if self.format_version == '1.1':
            ids.append(('', 'Karabo_TimerServer'))
        control = {s.name for s in self.sources.values() if s.section == 'CONTROL'}
        for name in sorted(control):
            ids.append(('CONTROL', name))
        for src in sorted(self.sources.values(), key=lambda s: s.name):
            if src.section == 'INSTRUMENT':
                for name in filter(None, (src.name, src.legacy_name)):
                    ids.extend(('INSTRUMENT', f'{name}/{g}') for g in sorted(src.counts))
        return ids

    def _write_metadata(self) -> None:
        ids = self._data_source_ids()
        length = len(ids) + self.source_list_padding
        base = 'METADATA' if self.format_version == '0.5' else 'METADATA/dataSources'
        full = [f'{root}/{dev}' if root else dev for root, dev in ids]
        self._dataset(f'{base}/dataSourceId', data=_vlen_list(full, length), dtype=_VLEN_BYTES)
        self._dataset(f'{base}/root', data=_vlen_list([r for r, _ in ids], length),
                      dtype=_VLEN_BYTES)
        self._dataset(f'{base}/deviceId', data=_vlen_list([d for _, d in ids], length),
                      dtype=_VLEN_BYTES)
        for section in AUXILIARY_SECTIONS:
            aux = [f'{section}/{s.name}/{g}' for s in self.sources.values()
                   if s.section == section for g in sorted(s.counts)]
            if aux:
                self._dataset(f'METADATA/auxiliarySources/{section}', data=_vlen_list(aux),
                              dtype=_VLEN_BYTES)
        if self.format_version == '0.5':
            return
        now = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
        strings = {'dataFormatVersion': self.format_version, 'creationDate': now,
                   'updateDate': now, 'daqLibrary': '1.x', 'karaboFramework': '2.x'}
        if self.format_version in ('1.2', '1.3'):
            strings.update(runType='', sample='')
        strings.update(self.extra_metadata)
        for name, value in strings.items():
            self._dataset(f'METADATA/{name}', data=_vlen_list([value]), dtype=_VLEN_BYTES)
        for name, key in [('proposalNumber', 'proposal'), ('runNumber', 'run_number'),
                          ('sequenceNumber', 'sequence')]:
            self._dataset(f'METADATA/{name}', data=np.array([self.meta[key]], np.uint32))

    def close(self) -> Path:
        """Write INDEX and METADATA, close the file and move it to its final name."""
        if self.file is None:
            return self.path
        try:
            for source in sorted(self._run_sources - set(self.sources)):
                self.add_control_source(source, counts=0)
            self._fit_growable()
            self._write_group_train_ids()
            self._write_index()
            self._write_metadata()
            self._write_links()
            self.file.close()
        except BaseException:
            self.abort()
            raise
        self.file = None
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file without creating the final one.

        Never raises, also after a full disk (see
        :func:`~exfel_data.write.h5output.close_after_error`).
        """
        if self.file is not None:
            close_after_error(self.file)
            self.file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> ExdfWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


#: ``INDEX/timestamp`` of train 0 (ns since the epoch); trains follow at 10 Hz.
TIMESTAMP_ORIGIN_NS = 1_700_000_000 * 10**9


def train_timestamps(train_ids) -> np.ndarray:
    """Deterministic timestamps (ns since the epoch, UTC) for train IDs at 10 Hz."""
    return np.uint64(TIMESTAMP_ORIGIN_NS) + np.asarray(train_ids, np.uint64) * np.uint64(10**8)
