"""Simulated devices: the sources, keys and deterministic values of a generated run.

Every value is a cheap, broadcast function of (train ID, frame index within the train,
position in the entry), never random, and never all zero, so tests compute expected data with
``device.values(key, train_ids)`` instead of reading the files back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from ..write.exdf_writer import STRING_DTYPE, train_timestamps

__all__ = ['KeySpec', 'SourceSpec', 'Device', 'XGM', 'Motor', 'Camera', 'Digitizer',
           'RunOnlySource', 'LitFrameFinder']

# fill(tids, frames) -> array of shape (len(tids),) + entry_shape; tids and frames are the
# train ID and frame index of each row.
Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class KeySpec:
    """One key of a source: dtype, shape of one entry, how to fill rows, storage hints.

    Parameters
    ----------
    name : str
        The key, e.g. ``'data.image.pixels'`` (control keys without ``.value``).
    dtype : numpy dtype
        Its dtype.
    entry_shape : tuple
        Shape of one row.
    fill : callable
        ``fill(train_ids, frames)`` -> the rows (deterministic values).
    chunks : tuple, optional
        HDF5 chunk shape (e.g. one frame per chunk).
    attrs : mapping, optional
        Karabo metadata attributes (format 1.3).
    compression : str, optional
        HDF5 filter, e.g. ``'gzip'``.
    """

    name: str
    dtype: object
    entry_shape: tuple
    fill: Fill
    chunks: tuple | None = None       # HDF5 chunk shape (e.g. one frame per chunk)
    attrs: Mapping | None = None      # Karabo metadata (format 1.3)
    compression: str | None = None   # HDF5 filter, e.g. 'gzip'

    @property
    def group(self) -> str:
        """The key's first name part, its index group in instrument sources (``'data'``)."""
        return self.name.partition('.')[0]


@dataclass
class SourceSpec:
    """One data source of a device.

    Parameters
    ----------
    name : str
        The source name.
    section : str
        ``'CONTROL'``, ``'INSTRUMENT'``, ``'REDUCTION'``...
    keys : dict of str to KeySpec
        Its keys.
    frame_groups : frozenset of str
        Index groups with one row per frame (the others have one row per train).
    run_values : dict
        Run-level values (``RUN`` section).
    legacy_name : str, optional
        Old source name (e.g. ``AGIPD/DET/0CH0:xtdf``) written as HDF5 soft links in INDEX
        and INSTRUMENT, as newer corrected files do.
    """

    name: str
    section: str
    keys: dict[str, KeySpec]
    frame_groups: frozenset = frozenset()    # index groups with one row per frame
    run_values: dict = field(default_factory=dict)
    legacy_name: str | None = None

    @property
    def index_groups(self) -> list[str]:
        """The source's INDEX groups: ``['']`` for control sources, else its key groups."""
        if self.section == 'CONTROL':
            return ['']
        return sorted({k.group for k in self.keys.values()})


# -- value patterns -----------------------------------------------------------------------
@lru_cache(maxsize=64)
def _pattern(shape: tuple, dtype: str) -> np.ndarray:
    """Fixed position pattern in 1..251 over an entry (read-only, cached)."""
    out = np.zeros(shape, dtype=np.int64)
    for axis, n in enumerate(shape):
        idx = np.arange(n).reshape((-1,) + (1,) * (len(shape) - axis - 1))
        out = out + idx * (7 * axis + 3)
    pat = (out % 251 + 1).astype(dtype)
    if dtype.startswith('float'):
        pat *= 0.25
    pat.flags.writeable = False
    return pat


def _row_offset(tids, frames, modulus: int, module: int = 0) -> np.ndarray:
    tids = np.asarray(tids, dtype=np.int64)
    return (tids * 31 + np.asarray(frames, dtype=np.int64) * 7 + 1 + 101 * module) % modulus


def image_fill(entry_shape: tuple, dtype, *, scale: int = 0, module: int = 0) -> Fill:
    """Entries = position pattern + per-row offset (train, frame, module); fits any integer
    dtype. *module* makes each detector module's images differ (a module stacked in the wrong
    place must show)."""
    dt = np.dtype(dtype)

    def fill(tids, frames):
        pat = _pattern(tuple(entry_shape), dt.name)
        if dt.kind == 'f':
            offset = (_row_offset(tids, frames, 4000, module) * 0.5 + scale).astype(dt)
        else:
            room = int(np.iinfo(dt).max) - 251     # the pattern takes values 1..251
            modulus = min(2000, room + 1)
            step = max(1, min(32, room // modulus))
            offset = (_row_offset(tids, frames, modulus, module) * step).astype(dt)
        out = np.empty((len(offset),) + tuple(entry_shape), dtype=dt)
        np.add(pat, offset.reshape((-1,) + (1,) * len(entry_shape)), out=out)
        return out

    return fill


def scalar_fill(dtype, a: float, b: float) -> Fill:
    """One number per row: ``b + a * (train ID % 997) + frame``, cast to *dtype*."""
    def fill(tids, frames):
        x = b + a * (np.asarray(tids, dtype=np.int64) % 997) + np.asarray(frames)
        return np.asarray(x).astype(dtype)
    return fill


def column_fill(dtype, entry_shape: tuple, value: Callable) -> Fill:
    """Rows built from ``value(tids, frames)`` broadcast to (rows,) + entry_shape."""
    def fill(tids, frames):
        arr = np.asarray(value(np.asarray(tids, dtype=np.uint64), np.asarray(frames)))
        arr = arr.reshape((-1,) + (1,) * len(entry_shape))
        return np.broadcast_to(arr, (len(tids),) + tuple(entry_shape)).astype(dtype)
    return fill


def train_id_fill(entry_shape: tuple = ()) -> Fill:
    """Each row holds its train ID (the redundant ``trainId`` keys)."""
    return column_fill(np.uint64, entry_shape, lambda tids, frames: tids)


def constant_fill(dtype, entry_shape: tuple, value) -> Fill:
    def fill(tids, frames):
        if np.dtype(dtype).kind == 'O':
            return np.array([value] * len(tids), dtype=object)
        return np.full((len(tids),) + tuple(entry_shape), value, dtype=dtype)
    return fill


def modulo_fill(entry_shape: tuple, dtype, modulus: int, equal: int | None = None, *,
                module: int = 0) -> Fill:
    """(pattern + row offset) % modulus, or (that == equal) as 0/1 when *equal* is given."""
    def fill(tids, frames):
        pat = _pattern(tuple(entry_shape), 'int32')
        off = _row_offset(tids, frames, modulus, module).astype(np.int32)
        x = (pat + off.reshape((-1,) + (1,) * len(entry_shape))) % modulus
        return (x == equal if equal is not None else x).astype(dtype)
    return fill


def string_fill(template: str) -> Fill:
    """A vlen string per row, ``template.format(tid=...)``, as bytes objects."""
    def fill(tids, frames):
        return np.array([template.format(tid=int(t)).encode() for t in tids], dtype=object)
    return fill


def units(symbol: str, name: str, prefix: str = '', prefix_name: str = '',
          description: str = '') -> dict:
    """Karabo key attributes as the DAQ stores them in format 1.3."""
    return {'unitSymbol': symbol, 'unitName': name, 'metricPrefixSymbol': prefix,
            'metricPrefixName': prefix_name, 'description': description,
            'displayedName': description or name, 'alias': '', 'daqPolicy': np.int32(-1)}


# -- devices ------------------------------------------------------------------------------
class Device:
    """Base of simulated devices: one or more sources with deterministic keys.

    Subclasses build their :class:`SourceSpec` list in :meth:`_build`.

    Parameters
    ----------
    name : str
        The (control) source name.
    aggregator : str, optional
        The files' aggregator (default: the class's ``default_aggregator``).
    """

    default_aggregator = 'DA01'

    def __init__(self, name: str, aggregator: str | None = None):
        self.name = name
        self.aggregator = aggregator or self.default_aggregator
        self.extra_keys: dict[str, dict[str, KeySpec]] = {}
        self._specs: list[SourceSpec] | None = None

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r}, aggregator={self.aggregator!r})'

    def _build(self) -> list[SourceSpec]:
        raise NotImplementedError

    @property
    def source_specs(self) -> list[SourceSpec]:
        """The device's sources with their keys (built once, extra keys included)."""
        if self._specs is None:
            specs = self._build()
            for spec in specs:
                spec.keys.update(self.extra_keys.get(spec.name, {}))
            self._specs = specs
        return self._specs

    def derive(self, **attrs) -> Device:
        """A copy with some attributes changed (its sources and keys are rebuilt).

        Parameters
        ----------
        **attrs
            Attribute names and their new values.

        Returns
        -------
        Device
        """
        new = copy.copy(self)
        new.extra_keys = {s: dict(k) for s, k in self.extra_keys.items()}
        for name, value in attrs.items():
            setattr(new, name, value)
        new._specs = None
        return new

    def with_key(self, source: str, kspec: KeySpec) -> Device:
        """A copy with one more key in *source*.

        Parameters
        ----------
        source : str
            One of the device's sources.
        kspec : KeySpec
            The key to add.

        Returns
        -------
        Device

        Raises
        ------
        KeyError
            The device has no such source.
        """
        self.spec(source)   # check the source exists
        new = self.derive()
        new.extra_keys.setdefault(source, {})[kspec.name] = kspec
        return new

    @property
    def sources(self) -> list[str]:
        """Names of this device's sources (control and instrument)."""
        return [s.name for s in self.source_specs]

    def spec(self, source: str) -> SourceSpec:
        """The :class:`SourceSpec` of one source.

        Parameters
        ----------
        source : str
            One of the device's sources.

        Returns
        -------
        SourceSpec

        Raises
        ------
        KeyError
            The device has no such source (the message lists its sources).
        """
        for s in self.source_specs:
            if s.name == source:
                return s
        raise KeyError(f"{self!r} has no source {source!r}; it has {self.sources}")

    def keys(self, source: str | None = None) -> list[str]:
        """Sorted key names (control keys without ``.value``) of one or all sources.

        Parameters
        ----------
        source : str, optional
            One source (default: all the device's sources).

        Returns
        -------
        list of str
        """
        specs = self.source_specs if source is None else [self.spec(source)]
        return sorted(k for s in specs for k in s.keys)

    def frame_counts(self, train_ids: ArrayLike) -> np.ndarray:
        """Rows per train of frame-resolved index groups (1 for devices without frames).

        Parameters
        ----------
        train_ids : array_like
            The trains.

        Returns
        -------
        numpy.ndarray
            int64, one count per train.
        """
        return np.ones(len(train_ids), dtype=np.int64)

    def counts(self, source: str, group: str, train_ids: ArrayLike) -> np.ndarray:
        """Rows per train for one index group of one source.

        Parameters
        ----------
        source : str
            One of the device's sources.
        group : str
            Its index group (``''`` for control sources).
        train_ids : array_like
            The trains.

        Returns
        -------
        numpy.ndarray
            int64, one count per train.
        """
        if group in self.spec(source).frame_groups:
            return self.frame_counts(train_ids)
        return np.ones(len(train_ids), dtype=np.int64)

    def _find_key(self, key: str, source: str | None) -> tuple[SourceSpec, KeySpec, str]:
        specs = self.source_specs if source is None else [self.spec(source)]
        for s in specs:
            for name, suffix in ((key, ''), (key.rpartition('.')[0], key.rpartition('.')[2])):
                if name in s.keys and (suffix == '' or (s.section == 'CONTROL'
                                                        and suffix in ('value', 'timestamp'))):
                    return s, s.keys[name], suffix
        raise KeyError(f"{self!r} has no key {key!r}; keys: {self.keys(source)}")

    def values(self, key: str, train_ids: ArrayLike, source: str | None = None) -> np.ndarray:
        """The rows written for *key* in these trains, stacked in the given train order.

        Parameters
        ----------
        key : str
            The key; control keys accept ``path``, ``path.value`` and ``path.timestamp``.
        train_ids : array_like
            The trains, in the order wanted.
        source : str, optional
            Needed only if two sources of the device share a key name.

        Returns
        -------
        numpy.ndarray
            The rows, as written to the files.

        Raises
        ------
        KeyError
            No such key (or source) in the device.
        """
        train_ids = np.asarray(train_ids, dtype=np.uint64).ravel()
        spec, kspec, suffix = self._find_key(key, source)
        if suffix == 'timestamp':
            return train_timestamps(train_ids)
        counts = self.counts(spec.name, '' if spec.section == 'CONTROL' else kspec.group,
                             train_ids)
        return self.rows(kspec, train_ids, counts)

    @staticmethod
    def rows(kspec: KeySpec, train_ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Rows of *kspec* for trains with *counts* rows each (frames numbered per train).

        Parameters
        ----------
        kspec : KeySpec
            The key.
        train_ids : numpy.ndarray
            The trains.
        counts : numpy.ndarray
            Rows of each train.

        Returns
        -------
        numpy.ndarray
        """
        counts = np.asarray(counts, dtype=np.int64)
        tids = np.repeat(np.asarray(train_ids, dtype=np.uint64), counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        frames = np.arange(len(tids), dtype=np.int64) - starts
        return kspec.fill(tids, frames)

    def run_values(self) -> dict[str, dict]:
        """``{source: {key: value}}`` of the run-level snapshot (``RUN`` section)."""
        return {s.name: s.run_values for s in self.source_specs if s.run_values}


def _control_keys(specs: Iterable[tuple]) -> dict[str, KeySpec]:
    return {k.name: k for k in (KeySpec(*args) for args in specs)}


class XGM(Device):
    """X-ray gas monitor: control source + ``<name>:output`` with digitizer traces.

    Control keys: ``beamPosition.ixPos``, ``beamPosition.iyPos``, ``pulseEnergy.photonFlux``,
    ``pulseEnergy.wavelengthUsed`` (float), ``pulseEnergy.numberOfBunchesActual`` (int32),
    ``location`` (vlen string). Instrument keys ``data.intensityTD``,
    ``data.intensitySa1TD``, ``data.intensityAUXTD`` (T, n_samples) float32,
    ``data.trainId``.

    Parameters
    ----------
    name : str
        The (control) source name.
    aggregator : str, optional
        The files' aggregator (default: the class's ``default_aggregator``).
    n_samples : int
        Samples of each trace.
    pulses : int, optional
        Laid out as a real XGM records pulse energies: the first *pulses* entries of each
        ``data.intensity*TD`` row are energies in uJ (``pulse_energies``), the rest is 1.0,
        the XGM's fill value for "no pulse", and ``pulseEnergy.numberOfBunchesActual`` is
        *pulses*. Default (None): position-pattern traces, 64 bunches.
    """

    def __init__(self, name: str = 'SA1_XTD2_XGM/XGM/DOOCS', aggregator: str | None = None,
                 n_samples: int = 1000, pulses: int | None = None):
        super().__init__(name, aggregator)
        self.n_samples = n_samples
        if pulses is not None and not 0 <= pulses <= n_samples:
            raise ValueError(f"pulses={pulses} must be in 0..n_samples ({n_samples})")
        self.pulses = pulses

    @staticmethod
    def pulse_energies(train_ids: ArrayLike, pulses: int, trace: int = 0) -> np.ndarray:
        """Pulse energies (uJ) written with ``pulses=``: (trains, pulses) float32.

        ``500 + 100 * trace + 2 * (train ID % 97) + 0.5 * pulse``, never 0 or 1 (the XGM's
        "no pulse" values). *trace* is 0, 1, 2 for intensityTD, intensitySa1TD, intensityAUXTD.

        Parameters
        ----------
        train_ids : array_like
            The trains.
        pulses : int
            Pulses per train.
        trace : int
            Which trace (see above).

        Returns
        -------
        numpy.ndarray
        """
        tids = np.asarray(train_ids, dtype=np.int64).reshape(-1, 1)
        energy = 500.0 + 100.0 * trace + 2.0 * (tids % 97) + 0.5 * np.arange(pulses)
        return energy.astype(np.float32)

    def _trace_fill(self, trace: int) -> Fill:
        if self.pulses is None:
            return image_fill((self.n_samples,), np.float32, scale=trace)

        def fill(tids, frames):
            out = np.ones((len(tids), self.n_samples), np.float32)
            out[:, :self.pulses] = self.pulse_energies(tids, self.pulses, trace)
            return out
        return fill

    def _build(self) -> list[SourceSpec]:
        trace = (self.n_samples,)
        control = _control_keys([
            ('beamPosition.ixPos', np.float32, (), scalar_fill(np.float32, 0.002, 0.5), None,
             units('m', 'meter', 'm', 'milli', 'Horizontal beam position')),
            ('beamPosition.iyPos', np.float32, (), scalar_fill(np.float32, -0.002, -0.25), None,
             units('m', 'meter', 'm', 'milli', 'Vertical beam position')),
            ('pulseEnergy.photonFlux', np.float32, (), scalar_fill(np.float32, 0.5, 800.0),
             None, units('J', 'joule', 'u', 'micro', 'Pulse energy')),
            ('pulseEnergy.wavelengthUsed', np.float32, (),
             constant_fill(np.float32, (), 0.1333), None,
             units('m', 'meter', 'n', 'nano', 'Wavelength')),
            ('pulseEnergy.numberOfBunchesActual', np.int32, (),
             constant_fill(np.int32, (), 64 if self.pulses is None else self.pulses), None,
             None),
            ('location', STRING_DTYPE, (), constant_fill(object, (), b'SASE1 XTD2'), None,
             None),
        ])
        output = {k.name: k for k in [
            KeySpec(f'data.{name}', np.float32, trace, self._trace_fill(i),
                    attrs=units('J', 'joule', 'u', 'micro', f'Digitizer trace {name}'))
            for i, name in enumerate(['intensityTD', 'intensitySa1TD', 'intensityAUXTD'])
        ] + [KeySpec('data.trainId', np.uint64, (), train_id_fill())]}
        return [
            SourceSpec(self.name, 'CONTROL', control, run_values={
                'classId': 'DoocsXGM', 'location': 'SASE1 XTD2', 'pulseEnergy.wavelengthUsed':
                np.float32(0.1333)}),
            SourceSpec(f'{self.name}:output', 'INSTRUMENT', output),
        ]


class Motor(Device):
    """A motor: control keys and run values of one motor axis.

    Control keys ``actualPosition`` (float64), ``encoderPosition`` (float64), ``isMoving``
    (bool as uint8); run values ``classId``, ``velocity``.

    Parameters
    ----------
    name : str
        The (control) source name.
    aggregator : str, optional
        The files' aggregator (default: the class's ``default_aggregator``).
    offset : float
        Added to the positions (to tell motors apart).
    """

    def __init__(self, name: str = 'SPB_IRU_MOTORS/MOTOR/X', aggregator: str | None = None,
                 offset: float = 1.0):
        super().__init__(name, aggregator)
        self.offset = offset

    def _build(self) -> list[SourceSpec]:
        keys = _control_keys([
            ('actualPosition', np.float64, (), scalar_fill(np.float64, 0.01, self.offset),
             None, units('m', 'meter', 'm', 'milli', 'Actual position')),
            ('encoderPosition', np.float64, (),
             scalar_fill(np.float64, 0.01, self.offset + 0.0005), None,
             units('m', 'meter', 'm', 'milli', 'Encoder position')),
            ('isMoving', np.uint8, (), column_fill(np.uint8, (), lambda t, f: t % 2), None,
             None),
        ])
        return [SourceSpec(self.name, 'CONTROL', keys,
                           run_values={'classId': 'SimulatedMotor', 'velocity': 2.5})]


class Camera(Device):
    """A camera: control source and ``<name>:daqOutput`` with one image per train.

    Control keys ``exposureTime``, ``frameRate``; instrument keys ``data.image.pixels``
    (T, H, W) uint16 and ``data.image.dims`` (T, 2) uint64.

    Parameters
    ----------
    name : str
        The control source name.
    shape : tuple of int
        ``(H, W)`` of the image.
    aggregator : str, optional
        The files' aggregator (default ``'DA02'``).
    """

    default_aggregator = 'DA02'

    def __init__(self, name: str = 'SPB_XTD9_CAM/CAM/SIDEMIC', shape: tuple = (256, 256),
                 aggregator: str | None = None):
        super().__init__(name, aggregator)
        self.shape = tuple(shape)

    def _build(self) -> list[SourceSpec]:
        h, w = self.shape
        control = _control_keys([
            ('exposureTime', np.float64, (), constant_fill(np.float64, (), 0.02), None,
             units('s', 'second', 'm', 'milli', 'Exposure time')),
            ('frameRate', np.float64, (), constant_fill(np.float64, (), 10.0), None,
             units('Hz', 'hertz', '', '', 'Frame rate')),
        ])
        output = {k.name: k for k in [
            KeySpec('data.image.pixels', np.uint16, self.shape,
                    image_fill(self.shape, np.uint16), (1,) + self.shape,
                    units('#', 'count', description='Camera image')),
            KeySpec('data.image.dims', np.uint64, (2,),
                    lambda t, f: np.tile(np.array([w, h], np.uint64), (len(t), 1))),
            KeySpec('data.trainId', np.uint64, (), train_id_fill()),
        ]}
        return [SourceSpec(self.name, 'CONTROL', control, run_values={'classId': 'Camera'}),
                SourceSpec(f'{self.name}:daqOutput', 'INSTRUMENT', output)]


class Digitizer(Device):
    """A digitizer: control source and ``<name>:output`` with one trace per train.

    Control keys ``sampleRate``, ``delay``; instrument keys ``data.rawData``
    (T, n_samples) int16 and ``data.trainId``.

    Parameters
    ----------
    name : str
        The control source name.
    n_samples : int
        Samples of each trace.
    aggregator : str, optional
        The files' aggregator (default ``'DA01'``).
    """

    def __init__(self, name: str = 'SQS_DIGITIZER_UTC1/ADC/1', n_samples: int = 2000,
                 aggregator: str | None = None):
        super().__init__(name, aggregator)
        self.n_samples = n_samples

    def _build(self) -> list[SourceSpec]:
        trace = (self.n_samples,)
        control = _control_keys([
            ('sampleRate', np.float64, (), constant_fill(np.float64, (), 4e9), None,
             units('Hz', 'hertz', 'G', 'giga', 'Sample rate')),
            ('delay', np.uint32, (), constant_fill(np.uint32, (), 12), None, None),
        ])
        output = {k.name: k for k in [
            KeySpec('data.rawData', np.int16, trace, image_fill(trace, np.int16)),
            KeySpec('data.trainId', np.uint64, (), train_id_fill()),
        ]}
        return [SourceSpec(self.name, 'CONTROL', control, run_values={'classId': 'AdqDigitizer'}),
                SourceSpec(f'{self.name}:output', 'INSTRUMENT', output)]


class RunOnlySource(Device):
    """A source with only run-level values (``RUN`` section), no per-train data.

    Listed as a control source with ``INDEX`` counts of 0 and an empty ``CONTROL`` group,
    e.g. ``RunOnlySource('SPB_RR_SYS/MDL/RUN_INFO', {'sample': 'lysozyme', 'energy': 9.3})``.

    Parameters
    ----------
    name : str
        The source name.
    run_values : mapping, optional
        Key names -> values (str, number or array); default a few run-info values.
    aggregator : str, optional
        The files' aggregator (default ``'DA01'``).
    """

    def __init__(self, name: str = 'SPB_RR_SYS/MDL/RUN_INFO',
                 run_values: Mapping | None = None, aggregator: str | None = None):
        super().__init__(name, aggregator)
        self.run_only_values = dict(run_values if run_values is not None else
                                    {'classId': 'RunInfo', 'sample': 'lysozyme',
                                     'photonEnergy': 9.3})

    def counts(self, source: str, group: str, train_ids: ArrayLike) -> np.ndarray:
        """Rows per train: 0 for every train (see :meth:`Device.counts`).

        Parameters
        ----------
        source, group, train_ids
            As for :meth:`Device.counts`.
        """
        return np.zeros(len(train_ids), dtype=np.int64)

    def _build(self) -> list[SourceSpec]:
        return [SourceSpec(self.name, 'CONTROL', {}, run_values=self.run_only_values)]


class LitFrameFinder(Device):
    """A data-reduction source in the auxiliary ``REDUCTION`` section (newer files).

    Source ``<name>:daqFilter`` with ``data.dataFramePattern`` (T, n_cells) uint8: 1 for the
    memory cells with a lit frame, ``(cell + train ID) % 4 == 0``. It is listed in
    ``METADATA/auxiliarySources/REDUCTION``, not among the data sources.

    Parameters
    ----------
    name : str
        The (control) source name.
    aggregator : str, optional
        The files' aggregator (default: the class's ``default_aggregator``).
    n_cells : int
        Memory cells per train (entries of the pattern).
    """

    def __init__(self, name: str = 'SPB_DET_AGIPD1M-1/REDU/LITFRM',
                 aggregator: str | None = None, n_cells: int = 352):
        super().__init__(name, aggregator)
        self.n_cells = n_cells

    def _build(self) -> list[SourceSpec]:
        cells = np.arange(self.n_cells)

        def pattern(tids, frames):
            t = np.asarray(tids, dtype=np.int64)[:, None]
            return ((cells + t) % 4 == 0).astype(np.uint8)

        key = KeySpec('data.dataFramePattern', np.uint8, (self.n_cells,), pattern)
        return [SourceSpec(f'{self.name}:daqFilter', 'REDUCTION', {key.name: key})]
