"""Closing HDF5 files being written when writing fails (full disk, quota) without a crash.

HDF5 writes its metadata when a file is closed. When that write fails too, the file stays
open inside the library, which later crashes the process (segmentation fault) when Python
frees the file's objects or exits -- known to h5py and HDF5 (h5py issues 914, 2160), with no
API to drop a file's unwritten data. :func:`close_after_error` avoids it by pointing the
file's descriptor at a scratch file in memory first: the last writes land there and are
thrown away, the close succeeds, and the caller deletes the (incomplete) file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py

#: errno values meaning "the file system cannot take more data".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _discarding_fd() -> int:
    """A new descriptor of an anonymous file (in memory where the platform allows)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("exfel-data-discarded")
    with tempfile.TemporaryFile() as scratch:
        return os.dup(scratch.fileno())


def close_after_error(f: h5py.File) -> None:
    """Close ``f`` (opened for writing) after a failed write, never raising.

    Whatever HDF5 still had to write is discarded; the file on disk is incomplete and must
    be deleted by the caller.
    """
    if not f.id.valid:
        return
    try:
        fd = f.id.get_vfd_handle()
    except (ValueError, RuntimeError, OSError):  # a driver without a file descriptor
        fd = None
    if isinstance(fd, int) and fd >= 0:
        sink = _discarding_fd()
        try:
            os.dup2(sink, fd)
        finally:
            os.close(sink)
    with contextlib.suppress(Exception):
        f.close()


@contextlib.contextmanager
def h5_output(path: str | os.PathLike, **kwargs) -> Iterator[h5py.File]:
    """``h5py.File(path, 'w')`` closed on leaving; on an error, with :func:`close_after_error`."""
    f = h5py.File(path, "w", **kwargs)
    try:
        yield f
        f.close()  # may fail too: writes the metadata
    except BaseException:
        close_after_error(f)
        raise


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors of a full disk, exceeded quota or file size limit."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full_message(err_no: int, output: Path) -> str:
    """One line saying what happened to ``output`` and what to do."""
    try:
        free = f", {_free_bytes(output.parent) / 1e6:.0f} MB free now"
    except OSError:
        free = ""
    return (f"{os.strerror(err_no)} while writing {output} (folder {output.parent}"
            f"{free}): nothing was written and the partial output was removed. Free some "
            "space or choose another folder")


def _free_bytes(folder: Path) -> int:
    import shutil

    return shutil.disk_usage(folder).free
