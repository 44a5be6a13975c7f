"""Multi-module detectors: stacking per train and labelled / lazy arrays over runs."""

from .errors import DetectorError, FillValueError, ModuleMismatchError, NoDetectorError
from .stacking import ModuleStack, stack_detector_data

__all__ = [
    'DetectorError',
    'FillValueError',
    'ModuleMismatchError',
    'ModuleStack',
    'NoDetectorError',
    'stack_detector_data',
]
