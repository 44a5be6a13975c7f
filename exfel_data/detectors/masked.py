"""Detector data with bad pixels replaced, per the correction pipeline's mask."""

from __future__ import annotations

import numpy as np

from .errors import FillValueError
from .frames import expand_blocks
from .keydata import DetectorKeyData
from .readblocks import read_box
from .stacking import checked_fill

__all__ = ['MaskedDetectorKeyData']


class MaskedDetectorKeyData(DetectorKeyData):
    """Detector data with bad pixels (non-zero mask bits) replaced by a value."""

    def __init__(self, det, key, *, mask_key: str, mask_bits=None, masked_value=np.nan,
                 pulses=None, subtrain_index='pulseId'):
        super().__init__(det, key, pulses, subtrain_index)
        self.mask_key = mask_key
        self.mask_bits = mask_bits
        self.masked_value = masked_value

    def _mask(self) -> DetectorKeyData:
        return DetectorKeyData(self.det, self.mask_key, self.pulses, self.subtrain_index)

    def _bad(self, mask_arr):
        if self.mask_bits is None:
            return mask_arr != 0
        return (mask_arr & self.mask_bits) != 0

    def _check_value(self, dtype):
        try:
            return checked_fill(dtype, self.masked_value)
        except FillValueError as e:
            raise FillValueError(f"masked_value: {e}") from None

    def unstacked_ndarray(self, *, fill_value=None, roi=(), astype=None,
                          module_gaps: bool = False, _out=None):
        data = super().unstacked_ndarray(fill_value=fill_value, roi=roi, astype=astype,
                                         module_gaps=module_gaps, _out=_out)
        value = self._check_value(data.dtype)
        mask_kd = self._mask()
        plan = mask_kd._plan()  # same group, labels and pulses: the data's slots
        n_trains = len(self.det._train_ids)
        one_shape = (1,) + data.shape[1:]
        entry_ndim = len(one_shape) - (3 if plan.has_pulse_axis else 2)
        # One module of mask at a time keeps the extra memory to one module
        for i, (m, slot) in enumerate(zip(self.det.modules, self._module_slots(module_gaps),
                                          strict=True)):
            rows, vstart = mask_kd._module_rows(m)
            runs = expand_blocks(plan, i, vstart, slice(0, n_trains), slice(0, plan.n_slots))
            mask = read_box(((0, rows, runs),), one_shape, entry_ndim, mask_kd.dtype,
                            mask_kd.dtype.type(0), False, roi)[0]
            data[slot][self._bad(mask)] = value
        return data

    def unstacked_dask_array(self, *, fill_value=None, roi=(), astype=None, chunk_bytes=None,
                             module_gaps: bool = False, labelled: bool = False):
        import dask.array as da
        roi = roi if isinstance(roi, tuple) else (roi,)
        dtype = self._out_dtype(astype)
        value = self._check_value(dtype)
        chunking = self._chunking(roi, dtype.itemsize, chunk_bytes)
        data = DetectorKeyData.unstacked_dask_array(
            self, fill_value=fill_value, roi=roi, astype=astype, module_gaps=module_gaps,
            _chunking=chunking)
        mask = self._mask().unstacked_dask_array(fill_value=0, roi=roi, module_gaps=module_gaps,
                                                 _chunking=chunking)
        arr = da.where(self._bad(mask), value, data)
        return self._wrap_unstacked(arr, roi, module_gaps) if labelled else arr
