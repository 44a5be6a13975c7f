"""The output formats: names, descriptions and the writer class of each."""

from __future__ import annotations

import importlib

from .base import Writer
from .plan import ConversionError

#: Format name -> ("module:class", one-line description). Writers are imported on use, so
#: optional dependencies stay optional.
FORMATS: dict[str, tuple[str, str]] = {
    "exdf": ("exfel_data.write.exdf:ExdfConverter",
             "run folder (EXDF 1.3 HDF5 files) holding only the selection"),
    "cxi": ("exfel_data.write.cxi:CxiWriter",
            "CXI 1.5 file of detector frames (frames, modules, ss, fs) for CrystFEL & co."),
    "npz": ("exfel_data.write.npz:NpzWriter",
            "NumPy .npz archive: one array per key plus each row's train ID"),
    "mat": ("exfel_data.write.mat:MatWriter",
            "MATLAB .mat (v5), one struct per source (needs scipy: extra 'formats'; < 2 GiB)"),
    "zarr": ("exfel_data.write.zarr:ZarrWriter",
             "Zarr v3 store: one array per key plus row train IDs (extra 'formats')"),
    "csv": ("exfel_data.write.table:CsvWriter",
            "CSV table: one row per train (trainId, timestamp), one column per value"),
    "json": ("exfel_data.write.table:JsonWriter",
             "JSON object whose 'trains' list has one record per train"),
    "png": ("exfel_data.write.png:PngWriter",
            "folder of 8-bit greyscale PNG images, one per train and frame"),
}


def writer_class(fmt: str) -> type[Writer]:
    """The :class:`Writer` subclass for a format name."""
    try:
        module, cls = FORMATS[fmt][0].split(":")
    except KeyError:
        raise ConversionError(f"Unknown format {fmt!r}; choose from {', '.join(FORMATS)}"
                              ) from None
    return getattr(importlib.import_module(module), cls)
