"""Multi-module detectors: stacking per train and labelled / lazy arrays over runs.

>>> from exfel_data.detectors import AGIPD1M
>>> det = AGIPD1M(run)                      # finds the module sources, prefers corrected
>>> arr = det.get_array('image.data', pulses=by_index[:10])   # labelled xarray
>>> lazy = det.get_dask_array('image.data')                    # dask, picklable graph

See ``docs/detectors.md``.
"""

from .base import MultiModuleDetector
from .classes import (
    AGIPD1M,
    AGIPD500K,
    DSSC1M,
    JUNGFRAU,
    LPD1M,
    identify_multimod_detectors,
    open_detector,
)
from .errors import (
    DetectorDataWarning,
    DetectorError,
    FillValueError,
    ModuleIndexError,
    ModuleMismatchError,
    NoDetectorError,
    NoMaskError,
)
from .keydata import DetectorKeyData
from .masked import MaskedDetectorKeyData
from .stacking import ModuleStack, StackView, stack_data, stack_detector_data

__all__ = [
    'AGIPD1M',
    'AGIPD500K',
    'DSSC1M',
    'JUNGFRAU',
    'LPD1M',
    'DetectorDataWarning',
    'DetectorError',
    'DetectorKeyData',
    'FillValueError',
    'MaskedDetectorKeyData',
    'ModuleIndexError',
    'ModuleMismatchError',
    'ModuleStack',
    'StackView',
    'MultiModuleDetector',
    'NoDetectorError',
    'NoMaskError',
    'identify_multimod_detectors',
    'open_detector',
    'stack_data',
    'stack_detector_data',
]
