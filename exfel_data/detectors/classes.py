"""The concrete detectors: AGIPD-1M, AGIPD-500K, LPD-1M, DSSC-1M and JUNGFRAU."""

from __future__ import annotations

from .base import MultiModuleDetector, identify_multimod_detectors
from .identify import KINDS

__all__ = ['AGIPD1M', 'AGIPD500K', 'LPD1M', 'DSSC1M', 'JUNGFRAU', 'ALL', 'open_detector']


class XtdfDetector(MultiModuleDetector):
    """AGIPD, LPD and DSSC: one row per frame in the ``image`` group of each module."""

    frames_group = 'image'


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
    """LPD-1M: 16 modules of 256 x 256 pixels."""

    kind = KINDS['LPD1M']


class DSSC1M(XtdfDetector):
    """DSSC-1M: 16 modules of 128 x 512 pixels."""

    kind = KINDS['DSSC1M']


class JUNGFRAU(MultiModuleDetector):
    """JUNGFRAU: modules ``JNGFR01``.. (numbered from 1), one entry per train.

    ``data.adc`` entries are (memory cells, 512, 1024); arrays have dims
    ``(module, train, cell, slow_scan, fast_scan)``.

    Extra parameter *n_modules*: modules of the full detector (for
    ``module_gaps=True``); default the highest module number found.
    """

    kind = KINDS['JUNGFRAU']

    def __init__(self, data, detector_name=None, modules=None, *, n_modules=None, **kwargs):
        super().__init__(data, detector_name, modules, **kwargs)
        self._n_modules = int(n_modules) if n_modules is not None else None
        if self._n_modules is None:
            found = self._find(data, self.detector_name)
            self._n_modules = max(found.modules) - self.kind.modnos_start_at + 1

    @property
    def n_modules(self) -> int:
        return self._n_modules

    def _entry_dims(self, key: str, ndim: int) -> list[str]:
        if ndim == 3:
            return ['cell', 'slow_scan', 'fast_scan']
        if ndim == 1:
            return ['cell']
        return super()._entry_dims(key, ndim)


ALL = (AGIPD1M, AGIPD500K, LPD1M, DSSC1M, JUNGFRAU)


def open_detector(data, detector_name: str | None = None, **kwargs) -> MultiModuleDetector:
    """Identify the (single) multi-module detector in *data* and open it.

    ``kwargs`` go to the detector class (``modules=``, ``raw=``, ...).
    """
    name, cls = identify_multimod_detectors(data, detector_name, single=True)
    return cls(data, name, **kwargs)


