"""What European XFEL file names and folders say about a file (category, aggregator...)."""

from __future__ import annotations

import os
import re

__all__ = ["file_name_info", "storage_class", "proposal_scratch", "run_identity"]

#: Where proposals live: ``$EXFEL_DATA_ROOT/<INSTRUMENT>/<CYCLE>/p<NNNNNN>``.
DATA_ROOT_ENV = "EXFEL_DATA_ROOT"
DEFAULT_DATA_ROOT = "/gpfs/exfel/exp"
EXTRA_DATA_ROOT_ENV = "EXTRA_DATA_DATA_ROOT"  # EXtra-data's name, used if ours is unset


def data_root() -> str:
    """Folder holding the instrument folders.

    ``$EXFEL_DATA_ROOT``, else EXtra-data's ``$EXTRA_DATA_DATA_ROOT``, else
    ``/gpfs/exfel/exp``.
    """
    return (os.environ.get(DATA_ROOT_ENV) or os.environ.get(EXTRA_DATA_ROOT_ENV)
            or DEFAULT_DATA_ROOT)

# RAW-R0238-DA01-S00000.h5: data category, run, aggregator, sequence
_FILE_NAME = re.compile(r"([A-Z]+)-R(\d{4})-(\w+?)(?:-S(\d{5}))?\.h5$")
# /gpfs/exfel/exp/INSTRUMENT/CYCLE/pNNNNNN/CLASS/rNNNN (the usual facility path) and
# /gpfs/exfel/d/CLASS/INSTRUMENT/CYCLE/pNNNNNN/rNNNN (the storage mount behind it)
_EXP_PATH = re.compile(r"/gpfs/exfel/exp/\w+/\d{6}/p\d{6}/([a-z]+)/r\d{4}$")
_DIRECT_PATH = re.compile(
    r"/(?:gpfs/exfel/[du]|pnfs/xfel\.eu/exfel/archive/XFEL)/([a-z]+)/\w+/\d{6}/p\d{6}/r\d{4}$")
# The same two, naming the parts a proposal's scratch folder is found from.
_RUN_IN_PROPOSAL = re.compile(r"(?P<prop>.+/p\d{6})/(?P<cls>[a-z]+)/(?P<run>r\d{4})")
_RUN_IN_STORAGE = re.compile(
    r"/(?:gpfs/exfel/[du]|pnfs/xfel\.eu/exfel/archive/XFEL)/(?P<cls>[a-z]+)/(?P<inst>\w+)/"
    r"(?P<cycle>\d{6})/(?P<prop>p\d{6})/(?P<run>r\d{4})")
# A run folder of a proposal, however the path above it goes: pNNNNNN/<class>/rNNNN
_PROPOSAL_RUN = re.compile(r"p(\d{6})/[^/]+/r(\d{4})$")


def file_name_info(filename: str) -> tuple[str | None, str | None]:
    """``(data_category, aggregator)`` from an EuXFEL file name, e.g. ('RAW', 'DA01')."""
    m = _FILE_NAME.match(os.path.basename(filename))
    return (m[1], m[3]) if m else (None, None)


def storage_class(filename: str) -> str | None:
    """'raw', 'proc', ... from a facility path; None for files elsewhere."""
    parent = os.path.dirname(os.path.realpath(filename))
    m = _EXP_PATH.match(parent) or _DIRECT_PATH.match(parent)
    return m[1] if m else None


def proposal_scratch(run_dir: str) -> tuple[str, str] | None:
    """``(scratch folder, 'raw_r0238')`` of a facility run folder whose proposal has one.

    The run folder may be given by its usual path (``.../pNNNNNN/raw/r0238``) or by the
    storage path a link resolves to (``/gpfs/exfel/d/raw/INST/CYCLE/pNNNNNN/r0238``, whose
    proposal is then looked for under ``$EXFEL_DATA_ROOT``). None for other folders and
    when the proposal has no ``scratch`` folder.
    """
    run_dir = os.path.abspath(run_dir)
    m = _RUN_IN_PROPOSAL.fullmatch(run_dir)
    if m:
        scratch = os.path.join(m["prop"], "scratch")
    else:
        m = _RUN_IN_STORAGE.fullmatch(os.path.realpath(run_dir))
        if not m:
            return None
        root = data_root()
        scratch = os.path.join(root, m["inst"], m["cycle"], m["prop"], "scratch")
    return (scratch, f"{m['cls']}_{m['run']}") if os.path.isdir(scratch) else None


def run_identity(run_dir: str) -> tuple[int, int] | str:
    """``(proposal, run)`` of a folder ``.../pNNNNNN/<class>/rNNNN``, else the path itself.

    What makes two folders one run: a collection whose files come from one identity is a
    single run (``run_metadata()`` works; raw and proc of one run are one run), else
    ``MultiRunError``.
    """
    m = _PROPOSAL_RUN.search(run_dir)
    return (int(m[1]), int(m[2])) if m else run_dir
