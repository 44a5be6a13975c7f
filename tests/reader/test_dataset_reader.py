"""DatasetReader: rows with an integer-indexed entry axis are read with a matching memory space."""

from __future__ import annotations

import h5py
import numpy as np

from exfel_data.reading import DatasetReader


class _RecordingDsid:
    """Delegates to an h5py DatasetID, recording the memory and file selection shapes."""

    def __init__(self, dsid):
        self._dsid = dsid
        self.calls = []

    def read(self, mspace, fspace, arr, *args, **kwargs):
        self.calls.append((mspace.shape, fspace.get_select_bounds()))
        return self._dsid.read(mspace, fspace, arr, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._dsid, name)


def test_singleton_axis_read_uses_file_rank_memory_space(tmp_path):
    # Raw LPD / AGIPD frames are stored (N, 1, ss, fs) and read with roi (0,): a memory space
    # of lower rank than the file selection sends HDF5 down an element-wise path (~200x slower).
    data = np.arange(6 * 1 * 4 * 5, dtype=np.uint16).reshape(6, 1, 4, 5)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, maxshape=(None, 1, 4, 5), chunks=(1, 1, 4, 5))
    reader = DatasetReader(str(path), "d")
    reader.dsid = rec = _RecordingDsid(reader.dsid)
    out = np.zeros((3, 4, 5), dtype=np.uint16)
    reader.read(2, 5, out, (0,))
    np.testing.assert_array_equal(out, data[2:5, 0])
    (mshape, (lo, hi)), = rec.calls
    assert mshape == (3, 1, 4, 5)
    assert lo == (2, 0, 0, 0) and hi == (4, 0, 3, 4)

    out = np.zeros((2, 4, 2), dtype=np.float32)
    reader.read(0, 2, out, (0, slice(None), slice(1, 3)))
    np.testing.assert_array_equal(out, data[0:2, 0, :, 1:3])
    assert rec.calls[-1][0] == (2, 1, 4, 2)
