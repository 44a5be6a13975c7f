"""The concrete detectors: AGIPD-1M, AGIPD-500K, LPD-1M, DSSC-1M and JUNGFRAU."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import MultiModuleDetector
from .errors import ModuleMismatchError, NoDetectorError
from .identify import KINDS, find_detectors

if TYPE_CHECKING:
    from collections.abc import Iterable

    from exfel_data.collection import DataCollection

__all__ = ['AGIPD1M', 'AGIPD500K', 'LPD1M', 'DSSC1M', 'JUNGFRAU', 'ALL', 'open_detector',
           'identify_multimod_detectors']


class XtdfDetector(MultiModuleDetector):
    """AGIPD, LPD and DSSC: one row per frame in the ``image`` group of each module."""


class AGIPD1M(XtdfDetector):
    """AGIPD-1M: 16 modules of 512 x 128 pixels; raw frames carry a data/gain axis.

    See :class:`MultiModuleDetector` for the parameters.
    """

    kind = KINDS['AGIPD1M']

    def _looks_raw(self, data, source: str) -> bool:
        # Corrected AGIPD may be stored as integers; raw frames have the data/gain axis.
        return len(data[source, self.kind.main_key].entry_shape) == 3


class AGIPD500K(AGIPD1M):
    """AGIPD-500K: 8 modules of 512 x 128 pixels (names like ``HED_DET_AGIPD500K2G``)."""

    kind = KINDS['AGIPD500K']


class LPD1M(XtdfDetector):
    """LPD-1M: 16 modules of 256 x 256 pixels.

    Parameters
    ----------
    data, detector_name, modules, **kwargs
        As for :class:`~exfel_data.detectors.base.MultiModuleDetector`.
    parallel_gain : bool
        As EXtra-data: the data was recorded in parallel-gain mode, each train holding
        its pulses three times (high, medium, low gain). Frames then get a ``gain`` dim
        (0-2) before the pulse dim, labelled with the pulse (or cell) IDs of the first
        third (the others are not valid in such files); pulse selections apply within
        each gain stage.
    """

    kind = KINDS['LPD1M']

    def __init__(self, data: DataCollection, detector_name: str | None = None,
                 modules: Iterable[int] | None = None, *, parallel_gain: bool = False,
                 **kwargs):
        super().__init__(data, detector_name, modules, **kwargs)
        self.parallel_gain = bool(parallel_gain)
        if self.parallel_gain:
            counts = self.entry_counts
            bad = np.flatnonzero(((counts % 3) != 0).any(axis=1))
            if bad.size:
                raise ModuleMismatchError(
                    f"parallel_gain=True needs the frames in each train to be divisible by 3; "
                    f"train {int(self._train_ids[bad[0]])} has "
                    f"{sorted(set(counts[bad[0]].tolist()))} frames per module")


class DSSC1M(XtdfDetector):
    """DSSC-1M: 16 modules of 128 x 512 pixels."""

    kind = KINDS['DSSC1M']


class JUNGFRAU(MultiModuleDetector):
    """JUNGFRAU: modules ``JNGFR01``.. (also ``MODULE_1``, ``RECEIVER-1``), one entry per train.

    ``data.adc`` entries are (memory cells, 512, 1024); arrays have dims
    ``(module, train, cell, slow_scan, fast_scan)``. Module numbers start at 1,
    as extra-geom expects.

    Parameters
    ----------
    data, detector_name, modules, **kwargs
        As for :class:`~exfel_data.detectors.base.MultiModuleDetector`.
    n_modules : int, optional
        Modules of the full detector (for ``module_gaps=True``); default up to
        the highest module number found.
    first_modno : int
        Number in the source name of the detector's first module (default 1):
        ``FXE_XAD_JF500K/DET/JNGFR03:daqOutput`` with ``first_modno=3`` is module 1.
        *modules=* selects by the numbers in the source names.
    """

    kind = KINDS['JUNGFRAU']

    def __init__(self, data: DataCollection, detector_name: str | None = None,
                 modules: Iterable[int] | None = None, *, n_modules: int | None = None,
                 first_modno: int = 1, **kwargs):
        self.first_modno = int(first_modno)
        super().__init__(data, detector_name, modules, **kwargs)
        if n_modules is not None:
            self._n_modules = int(n_modules)
        else:
            found = self._find(data, self.detector_name)
            self._n_modules = max(found.modules) - self.first_modno + 1

    def _renumber(self, modno_to_source):
        shift = self.kind.modnos_start_at - self.first_modno
        renumbered = {m + shift: s for m, s in sorted(modno_to_source.items())}
        if min(renumbered) < self.kind.modnos_start_at:
            raise NoDetectorError(
                f"first_modno={self.first_modno} but {self.detector_name} has module "
                f"{min(modno_to_source)} ({modno_to_source[min(modno_to_source)]}); pass "
                f"first_modno <= {min(modno_to_source)}")
        return renumbered

    @property
    def n_modules(self) -> int:
        return self._n_modules

    @property
    def frames_per_train(self) -> int:
        """Memory cells per train: each train's entry holds that many frames."""
        return super().frames_per_train * self._cells_per_entry()

    def _cells_per_entry(self) -> int:
        shape = self[self.kind.main_key].entry_shape
        return int(shape[0]) if len(shape) == 3 else 1

    def cell_ids(self) -> np.ndarray:
        """Memory cell of each frame in a train (``data.memoryCell`` of the first train).

        Returns
        -------
        numpy.ndarray
            One cell number per frame (the ``cell`` axis of ``get_array``).

        Raises
        ------
        ModuleMismatchError
            Modules disagree on the cells, or a module has no cell numbers.
        """
        key = 'data.memoryCell'
        if key not in self:
            raise ModuleMismatchError(f"{self.detector_name}: no {key!r} in every module; "
                                      f"the cells cannot be told")
        first = self.select_trains(np.s_[:1])
        missing = np.iinfo(np.int64).max
        cells = first[key].ndarray(fill_value=missing, astype=np.int64)[:, 0]  # (modules, n)
        if (cells == missing).any() or (cells != cells[0]).any():
            per_mod = {m: None if (c == missing).all() else c.tolist()
                       for m, c in zip(first.modules, cells, strict=True)}
            raise ModuleMismatchError(
                f"{self.detector_name}: modules disagree on {key!r} in train "
                f"{first.train_ids[0]} (None: no data): {per_mod}")
        return cells[0].astype(self.data[self.modno_to_source[self.modules[0]], key].dtype)

    def _entry_dims(self, key: str, ndim: int) -> list[str]:
        if ndim == 3:
            return ['cell', 'slow_scan', 'fast_scan']
        if ndim == 1:
            return ['cell']
        return super()._entry_dims(key, ndim)


ALL = (AGIPD1M, AGIPD500K, LPD1M, DSSC1M, JUNGFRAU)


def identify_multimod_detectors(data: DataCollection, detector_name: str | None = None, *,
                                single: bool = False,
                                clses: Iterable[type[MultiModuleDetector]] | None = None):
    """Find the multi-module detectors in a data collection (by source names only).

    Parameters
    ----------
    data : DataCollection
        The run or selection to look in (its instrument sources).
    detector_name : str, optional
        Only detectors of this name.
    single : bool
        Expect exactly one detector and return its tuple, not a set.
    clses : iterable of classes, optional
        Detector classes to look for (default: all of this module's).

    Returns
    -------
    set of (str, type) or (str, type)
        ``(detector_name, detector class)`` tuples; one tuple with ``single=True``.

    Raises
    ------
    NoDetectorError
        ``single=True`` and none or several detectors were found.
    """
    by_name = {c.kind.name: c for c in (ALL if clses is None else clses)}
    found = find_detectors(data.instrument_sources, list(by_name))
    res = {(name, by_name[kind]) for (kind, name) in found
           if detector_name is None or name == detector_name}
    if single:
        if len(res) != 1:
            desc = ', '.join(sorted(f"{n} ({c.__name__})" for n, c in res)) or 'none'
            raise NoDetectorError(
                f"Expected exactly one multi-module detector, found: {desc}"
                + (". Pass detector_name=" if len(res) > 1 else "")
            )
        return res.pop()
    return res


def open_detector(data, detector_name: str | None = None, **kwargs) -> MultiModuleDetector:
    """Identify the (single) multi-module detector in *data* and open it.

    ``kwargs`` go to the detector class (``modules=``, ``raw=``, ...).
    """
    name, cls = identify_multimod_detectors(data, detector_name, single=True)
    return cls(data, name, **kwargs)


