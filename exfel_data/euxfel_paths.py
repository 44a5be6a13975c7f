"""What European XFEL file names and folders say about a file (category, aggregator...)."""

from __future__ import annotations

import os
import re

__all__ = ["file_name_info", "storage_class"]

# RAW-R0238-DA01-S00000.h5: data category, run, aggregator, sequence
_FILE_NAME = re.compile(r"([A-Z]+)-R(\d{4})-(\w+?)(?:-S(\d{5}))?\.h5$")
# /gpfs/exfel/exp/INSTRUMENT/CYCLE/pNNNNNN/CLASS/rNNNN (the usual facility path) and
# /gpfs/exfel/d/CLASS/INSTRUMENT/CYCLE/pNNNNNN/rNNNN (the storage mount behind it)
_EXP_PATH = re.compile(r"/gpfs/exfel/exp/\w+/\d{6}/p\d{6}/([a-z]+)/r\d{4}$")
_DIRECT_PATH = re.compile(
    r"/(?:gpfs/exfel/[du]|pnfs/xfel\.eu/exfel/archive/XFEL)/([a-z]+)/\w+/\d{6}/p\d{6}/r\d{4}$")


def file_name_info(filename: str) -> tuple[str | None, str | None]:
    """``(data_category, aggregator)`` from an EuXFEL file name, e.g. ('RAW', 'DA01')."""
    m = _FILE_NAME.match(os.path.basename(filename))
    return (m[1], m[3]) if m else (None, None)


def storage_class(filename: str) -> str | None:
    """'raw', 'proc', ... from a facility path; None for files elsewhere."""
    parent = os.path.dirname(os.path.realpath(filename))
    m = _EXP_PATH.match(parent) or _DIRECT_PATH.match(parent)
    return m[1] if m else None
