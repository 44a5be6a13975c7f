"""The pieces of the ``.npy`` format the npz writers need (numpy.lib.format underneath).

:mod:`~exfel_data.write.npz` streams large arrays into zip members (header, then rows block
by block) and :mod:`~exfel_data.write.npz_direct` lays out an archive whose rows workers fill
in later; both need the header alone, and small arrays as whole ``.npy`` files.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np

from .plan import ConversionError


def npy_bytes(arr: np.ndarray) -> bytes:
    """A whole ``.npy`` file holding ``arr`` (for small arrays: train IDs, strings)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_header(dtype: np.dtype, shape: tuple) -> bytes:
    """The ``.npy`` header (format 2.0) of a C-ordered array whose raw rows follow it."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(int(s) for s in shape)}
    np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def read_npy_header(fh: BinaryIO) -> tuple[tuple, np.dtype]:
    """Read a ``.npy`` header from ``fh`` (left at the first row); ``(shape, dtype)``."""
    version = np.lib.format.read_magic(fh)
    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = reader(fh)
    if fortran:
        raise ConversionError("Fortran-ordered arrays are not written by exfel-data")
    return shape, dtype
