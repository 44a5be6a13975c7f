"""Simulated multi-module detectors (AGIPD, LPD, DSSC: XTDF; JUNGFRAU).

A preset such as ``AGIPD1M(raw=False)`` is a sequence of module devices: pass it to
``make_run(devices=[XGM(), *AGIPD1M()])`` (or ``AGIPD1M().modules``). Each module writes to
its own aggregator (``AGIPD00``.., ``LPD00``.., ``DSSC00``.., ``JNGFR01``..).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import ArrayLike

from .devices import (
    Device,
    KeySpec,
    SourceSpec,
    column_fill,
    constant_fill,
    image_fill,
    modulo_fill,
    train_id_fill,
)

__all__ = ['XTDFModule', 'JungfrauModule', 'MultiModuleDetector',
           'AGIPD1M', 'AGIPD500K', 'LPD1M', 'DSSC1M', 'JUNGFRAU']

CORRECTED_NAMING = ('xtdf', 'output', 'output+links')


def _counts_fill(device: Device):
    return column_fill(np.uint64, (), lambda t, f: device.frame_counts(t))


class XTDFModule(Device):
    """One module of an XTDF detector (AGIPD, LPD, DSSC), raw or corrected.

    Parameters
    ----------
    detector : str
        Detector device domain, e.g. ``'SPB_DET_AGIPD1M-1'``.
    module : int
        Module number (source ``<detector>/DET/<module>CH0:xtdf``).
    raw : bool
        Raw: ``image.data`` (N, gain_planes, H, W) uint16, ``image.cellId``/``pulseId``/
        ``trainId``/``length``/``status`` (N, 1), groups ``header``, ``detector``,
        ``trailer`` (one row per train). Corrected: ``image.data`` (N, H, W) float32,
        ``image.mask`` uint32, ``image.gain`` uint8, ``image.cellId``/``pulseId``/
        ``trainId`` (N,).
    frames_per_train : int
        Frames (rows of the ``image`` group) per train.
    frame_counts : mapping, optional
        ``{train_id: frames}`` overriding *frames_per_train* for some trains.
    corrected_naming : {'xtdf', 'output', 'output+links'}
        Corrected data only: the old name ``<det>/DET/<n>CH0:xtdf``, the newer
        ``<det>/CORR/<n>CH0:output``, or the newer with the old one as HDF5 soft links.
    compression : str, optional
        HDF5 filter for the per-pixel datasets (``'gzip'``, as some raw files use).

    Values: ``cellId`` = frame + 1, ``pulseId`` = 4 * frame + 16, ``trainId`` = train ID,
    images = position pattern + an offset depending on train ID and frame.
    """

    def __init__(self, detector: str, module: int, *, raw: bool = True,
                 frames_per_train: int = 64, module_shape: tuple = (512, 128),
                 gain_planes: int = 2, aggregator: str | None = None,
                 frame_counts: Mapping[int, int] | None = None,
                 corrected_naming: str = 'xtdf', compression: str | None = None):
        if corrected_naming not in CORRECTED_NAMING:
            raise ValueError(f"corrected_naming={corrected_naming!r}; choose from "
                             f"{CORRECTED_NAMING}")
        self.detector = detector
        self.module = module
        self.raw = raw
        self.frames_per_train = int(frames_per_train)
        self.module_shape = tuple(module_shape)
        self.gain_planes = gain_planes
        self.frame_overrides = dict(frame_counts or {})
        self.corrected_naming = corrected_naming
        self.compression = compression
        self.legacy_name = None
        name = f'{detector}/DET/{module}CH0:xtdf'
        if not raw and corrected_naming != 'xtdf':
            if corrected_naming == 'output+links':
                self.legacy_name = name
            name = f'{detector}/CORR/{module}CH0:output'
        # AGIPD1M-1 -> AGIPD00.., LPD1M-1 -> LPD00.., as the DAQ names aggregators
        prefix = re.match(r'[A-Z]*', detector.split('_')[-1]).group() or 'DET'
        super().__init__(name, aggregator or f'{prefix}{module:02d}')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.name!r}, raw={self.raw}, '
                f'frames_per_train={self.frames_per_train}, aggregator={self.aggregator!r})')

    def frame_counts(self, train_ids: ArrayLike) -> np.ndarray:
        out = np.full(len(train_ids), self.frames_per_train, dtype=np.int64)
        if self.frame_overrides:
            known = np.array(sorted(self.frame_overrides), dtype=np.uint64)
            frames = np.array([self.frame_overrides[k] for k in known.tolist()], np.int64)
            tids = np.asarray(train_ids, dtype=np.uint64)
            ix = np.minimum(np.searchsorted(known, tids), len(known) - 1)
            hit = known[ix] == tids
            out[hit] = frames[ix[hit]]
        return out

    def _build(self) -> list[SourceSpec]:
        shape = self.module_shape
        if self.raw:
            raw_shape = (self.gain_planes,) + shape
            frame_bytes = int(np.prod(raw_shape)) * 2
            image = [
                KeySpec('image.data', np.uint16, raw_shape,
                        image_fill(raw_shape, np.uint16, module=self.module),
                        (1,) + raw_shape, compression=self.compression),
                KeySpec('image.cellId', np.uint16, (1,),
                        column_fill(np.uint16, (1,), lambda t, f: f + 1)),
                KeySpec('image.pulseId', np.uint64, (1,),
                        column_fill(np.uint64, (1,), lambda t, f: 4 * f + 16)),
                KeySpec('image.trainId', np.uint64, (1,), train_id_fill((1,))),
                KeySpec('image.length', np.uint32, (1,),
                        constant_fill(np.uint32, (1,), frame_bytes)),
                KeySpec('image.status', np.uint16, (1,), constant_fill(np.uint16, (1,), 1)),
            ]
            per_train = [
                KeySpec('header.trainId', np.uint64, (), train_id_fill()),
                KeySpec('header.pulseCount', np.uint64, (), _counts_fill(self)),
                KeySpec('header.dataId', np.uint64, (), constant_fill(np.uint64, (), 1)),
                KeySpec('header.linkId', np.uint64, (),
                        constant_fill(np.uint64, (), self.module + 1)),
                KeySpec('header.majorTrainFormatVersion', np.uint32, (),
                        constant_fill(np.uint32, (), 2)),
                KeySpec('header.minorTrainFormatVersion', np.uint32, (),
                        constant_fill(np.uint32, (), 1)),
                KeySpec('header.magicNumberBegin', np.int8, (8,),
                        constant_fill(np.int8, (8,), ord('X'))),
                KeySpec('detector.data', np.uint8, (416,), image_fill((416,), np.uint8)),
                KeySpec('trailer.checksum', np.int8, (16,), constant_fill(np.int8, (16,), 7)),
                KeySpec('trailer.magicNumberEnd', np.int8, (8,),
                        constant_fill(np.int8, (8,), ord('F'))),
                KeySpec('trailer.status', np.uint64, (), constant_fill(np.uint64, (), 1)),
                KeySpec('trailer.trainId', np.uint64, (), train_id_fill()),
            ]
        else:
            frame = (1,) + shape
            image = [
                KeySpec('image.data', np.float32, shape,
                        image_fill(shape, np.float32, module=self.module), frame,
                        compression=self.compression),
                KeySpec('image.mask', np.uint32, shape,
                        modulo_fill(shape, np.uint32, 16, 0, module=self.module),
                        frame, compression=self.compression),
                KeySpec('image.gain', np.uint8, shape,
                        modulo_fill(shape, np.uint8, 3, module=self.module), frame,
                        compression=self.compression),
                KeySpec('image.cellId', np.uint16, (),
                        column_fill(np.uint16, (), lambda t, f: f + 1)),
                KeySpec('image.pulseId', np.uint64, (),
                        column_fill(np.uint64, (), lambda t, f: 4 * f + 16)),
                KeySpec('image.trainId', np.uint64, (), train_id_fill()),
            ]
            per_train = []
        keys = {k.name: k for k in image + per_train}
        return [SourceSpec(self.name, 'INSTRUMENT', keys, frame_groups=frozenset({'image'}),
                           legacy_name=self.legacy_name)]


class JungfrauModule(Device):
    """One JUNGFRAU module: ``<detector>/DET/JNGFR<nn>:daqOutput``, one row per train.

    Keys: ``data.adc`` (T, cells, H, W) uint16 raw / float32 corrected, ``data.gain`` uint8,
    ``data.mask`` uint32 (corrected only), ``data.memoryCell`` (T, cells) uint8
    (= cell index), ``data.frameNumber`` (T, cells) uint64, ``data.timestamp`` (T, cells)
    float64, ``data.trainId`` (T,) uint64.

    Parameters
    ----------
    detector : str
        Detector device domain, e.g. ``'SPB_IRDA_JF4M'``.
    module : int
        Module number (``JNGFR<nn>``, from 1).
    raw : bool
        Raw (uint16) instead of corrected (float32, with ``data.mask``) data.
    cells : int
        Memory cells (entries) per train.
    module_shape : tuple of int
        ``(H, W)`` of one module.
    aggregator : str, optional
        The files' aggregator (default ``JNGFR<nn>``).
    """

    def __init__(self, detector: str, module: int, *, raw: bool = True, cells: int = 16,
                 module_shape: tuple = (512, 1024), aggregator: str | None = None):
        self.detector = detector
        self.module = module
        self.raw = raw
        self.cells = cells
        self.module_shape = tuple(module_shape)
        super().__init__(f'{detector}/DET/JNGFR{module:02d}:daqOutput',
                         aggregator or f'JNGFR{module:02d}')

    def _build(self) -> list[SourceSpec]:
        entry = (self.cells,) + self.module_shape
        chunks = (1, 1) + self.module_shape
        cells = (self.cells,)
        adc_dtype = np.uint16 if self.raw else np.float32
        keys = [
            KeySpec('data.adc', adc_dtype, entry, image_fill(entry, adc_dtype, module=self.module),
                    chunks),
            KeySpec('data.gain', np.uint8, entry,
                    modulo_fill(entry, np.uint8, 3, module=self.module), chunks),
            KeySpec('data.memoryCell', np.uint8, cells,
                    lambda t, f: np.tile(np.arange(self.cells, dtype=np.uint8), (len(t), 1))),
            KeySpec('data.frameNumber', np.uint64, cells, lambda t, f: (
                np.asarray(t, np.uint64)[:, None] * np.uint64(self.cells)
                + np.arange(self.cells, dtype=np.uint64))),
            KeySpec('data.timestamp', np.float64, cells, lambda t, f: (
                np.asarray(t, np.float64)[:, None] * 0.1 + np.arange(self.cells) * 1e-6)),
            KeySpec('data.trainId', np.uint64, (), train_id_fill()),
        ]
        if not self.raw:
            keys.append(KeySpec('data.mask', np.uint32, entry,
                                modulo_fill(entry, np.uint32, 16, 0, module=self.module),
                                chunks))
        return [SourceSpec(self.name, 'INSTRUMENT', {k.name: k for k in keys})]


class MultiModuleDetector:
    """A detector preset: a sequence of module devices (iterate, index, or ``.modules``).

    Parameters
    ----------
    name : str, optional
        Detector device domain (default: the preset's, e.g. ``'SPB_DET_AGIPD1M-1'``).
    raw, frames_per_train, corrected_naming, compression
        Passed on to each :class:`XTDFModule`.
    n_modules : int, optional
        Modules of the detector (default: the preset's).
    modules : iterable of int, optional
        Module numbers to write (default: all *n_modules*).
    module_shape : tuple of int, optional
        ``(H, W)`` of one module (default: the preset's).
    frame_counts : mapping, optional
        ``{train_id: frames}`` changing the frame count of some trains in every module
        (as when the pulse pattern changes).
    """

    detector_name = ''
    n_modules_default = 16
    module_shape_default: tuple = ()
    gain_planes = 1
    first_module = 0

    def __init__(self, name: str | None = None, *, raw: bool = True, frames_per_train: int = 64,
                 n_modules: int | None = None, modules: Iterable[int] | None = None,
                 module_shape: tuple | None = None, corrected_naming: str = 'xtdf',
                 compression: str | None = None, frame_counts: Mapping[int, int] | None = None):
        self.name = name or self.detector_name
        self.raw = raw
        n = self.n_modules_default if n_modules is None else n_modules
        numbers = (range(self.first_module, self.first_module + n) if modules is None
                   else list(modules))
        shape = tuple(module_shape or self.module_shape_default)
        self.modules: list[Device] = [
            self._module(m, raw=raw, frames_per_train=frames_per_train, module_shape=shape,
                         corrected_naming=corrected_naming, compression=compression,
                         frame_counts=frame_counts)
            for m in numbers
        ]

    def _module(self, number: int, **kw) -> Device:
        return XTDFModule(self.name, number, gain_planes=self.gain_planes, **kw)

    def __iter__(self):
        return iter(self.modules)

    def __len__(self) -> int:
        return len(self.modules)

    def __getitem__(self, i):
        return self.modules[i]

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r}, raw={self.raw}, modules={len(self)})'


class AGIPD1M(MultiModuleDetector):
    """AGIPD-1M: 16 modules of (512, 128) px, ``SPB_DET_AGIPD1M-1``, aggregators AGIPD00..15.

    Raw ``image.data`` is (N, 2, 512, 128) uint16 (axis 1: data, gain).
    """

    detector_name = 'SPB_DET_AGIPD1M-1'
    module_shape_default = (512, 128)
    gain_planes = 2


class AGIPD500K(AGIPD1M):
    """AGIPD-500K: 8 AGIPD modules, ``HED_DET_AGIPD500K2G``."""

    detector_name = 'HED_DET_AGIPD500K2G'
    n_modules_default = 8


class LPD1M(MultiModuleDetector):
    """LPD-1M: 16 modules of (256, 256) px, raw ``image.data`` (N, 1, 256, 256) uint16."""

    detector_name = 'FXE_DET_LPD1M-1'
    module_shape_default = (256, 256)


class DSSC1M(MultiModuleDetector):
    """DSSC-1M: 16 modules of (128, 512) px, raw ``image.data`` (N, 1, 128, 512) uint16."""

    detector_name = 'SCS_DET_DSSC1M-1'
    module_shape_default = (128, 512)


class JUNGFRAU(MultiModuleDetector):
    """JUNGFRAU: modules numbered from 1 (``JNGFR01``..), (T, cells, 512, 1024) per module.

    Parameters
    ----------
    name, n_modules, modules, module_shape
        As for :class:`MultiModuleDetector` (default 8 modules of (512, 1024)).
    raw, cells
        Passed on to each :class:`JungfrauModule`.
    """

    detector_name = 'SPB_IRDA_JF4M'
    n_modules_default = 8
    module_shape_default = (512, 1024)
    first_module = 1

    def __init__(self, name: str | None = None, *, raw: bool = True, cells: int = 16,
                 n_modules: int | None = None, modules: Iterable[int] | None = None,
                 module_shape: tuple | None = None):
        self.cells = cells
        super().__init__(name, raw=raw, n_modules=n_modules, modules=modules,
                         module_shape=module_shape)

    def _module(self, number: int, *, raw, module_shape, **kw) -> Device:
        return JungfrauModule(self.name, number, raw=raw, cells=self.cells,
                              module_shape=module_shape)
