"""exfel-data: read, reduce and stream X-ray free-electron laser run data."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module defining it. Modules are imported on first use of a name
# (PEP 562), so `import exfel_data` and `exfel-data --help` do not load numpy, h5py,
# pandas, xarray or dask until something needs them.
_EXPORTS = {
    "DataCollection": "collection", "SuspectTrain": "collection",
    "AGIPD1M": "detectors", "AGIPD500K": "detectors", "DSSC1M": "detectors",
    "JUNGFRAU": "detectors", "LPD1M": "detectors",
    "identify_multimod_detectors": "detectors", "stack_data": "detectors",
    "stack_detector_data": "detectors",
    "DuplicateTrainError": "exceptions", "ExfelDataError": "exceptions",
    "FileChangedError": "exceptions", "IndexWarning": "rowindex",
    "IndexGroupError": "exceptions", "AliasError": "exceptions",
    "KeyGlobError": "exceptions",
    "AliasIndexer": "aliases", "DEFAULT_ALIASES_FILE": "aliases",
    "FileStructureError": "exceptions", "MultiRunError": "exceptions",
    "NoDataError": "exceptions", "PropertyNameError": "exceptions",
    "SourceNameError": "exceptions", "TrainIDError": "exceptions",
    "set_max_open_files": "file_access",
    "RunHandler": "handler",
    "KeyData": "keydata",
    "H5File": "opening", "RunDirectory": "opening", "open_run": "opening",
    "by_id": "selection", "by_index": "selection",
    "SourceData": "source",
}

__all__ = [
    "DataCollection", "H5File", "RunDirectory", "open_run", "SuspectTrain",
    "KeyData", "SourceData", "RunHandler", "by_id", "by_index", "set_max_open_files",
    "ExfelDataError", "SourceNameError", "PropertyNameError", "TrainIDError",
    "NoDataError", "FileStructureError", "DuplicateTrainError", "MultiRunError",
    "FileChangedError", "IndexWarning", "IndexGroupError", "AliasError", "AliasIndexer",
    "KeyGlobError",
]
__all__ += [
    "AGIPD1M", "AGIPD500K", "DSSC1M", "JUNGFRAU", "LPD1M", "identify_multimod_detectors",
    "stack_data", "stack_detector_data",
]


def __getattr__(name: str):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'exfel_data' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static checkers and IDEs see the names as plain imports
    from .aliases import AliasIndexer
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
        AliasError,
        DuplicateTrainError,
        ExfelDataError,
        FileChangedError,
        FileStructureError,
        IndexGroupError,
        KeyGlobError,
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
