"""exfel-data: read, reduce and stream X-ray free-electron laser run data."""

__version__ = "0.1.0"

from .collection import DataCollection, SuspectTrain
from .detectors import (
    AGIPD1M,
    AGIPD500K,
    DSSC1M,
    JUNGFRAU,
    LPD1M,
    identify_multimod_detectors,
    stack_data,
    stack_detector_data,
)
from .exceptions import (
    DuplicateTrainError,
    ExfelDataError,
    FileChangedError,
    FileStructureError,
    MultiRunError,
    NoDataError,
    PropertyNameError,
    SourceNameError,
    TrainIDError,
)
from .file_access import set_max_open_files
from .handler import RunHandler
from .keydata import KeyData
from .opening import H5File, RunDirectory, open_run
from .rowindex import IndexWarning
from .selection import by_id, by_index
from .source import SourceData

__all__ = [
    "DataCollection", "H5File", "RunDirectory", "open_run", "SuspectTrain",
    "KeyData", "SourceData", "RunHandler", "by_id", "by_index", "set_max_open_files",
    "ExfelDataError", "SourceNameError", "PropertyNameError", "TrainIDError",
    "NoDataError", "FileStructureError", "DuplicateTrainError", "MultiRunError",
    "FileChangedError", "IndexWarning",
]
__all__ += [
    "AGIPD1M", "AGIPD500K", "DSSC1M", "JUNGFRAU", "LPD1M", "identify_multimod_detectors",
    "stack_data", "stack_detector_data",
]
