"""``det.trains()``: read blocks of trains, yield one train at a time."""

from __future__ import annotations

import numpy as np

from exfel_data.keydata import DASK_CHUNK_BYTES

__all__ = ['iterate_trains']


def iterate_trains(det, keys, pulses, require_all, fill_value, subtrain_index, chunk_bytes):
    """Generator behind ``det.trains()``: read blocks of trains, yield per-train views."""
    chunk_bytes = DASK_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    frame_bytes = sum(int(np.prod(kd.entry_shape, dtype=np.int64)) * kd.dtype.itemsize
                      for kd in (det[k] for k in keys)) * len(det.modules)
    per_part = max(1, chunk_bytes // max(frame_bytes, 1))
    # JUNGFRAU entries hold all of a train's memory cells: split by trains, not frames
    parts = (det.split_trains(trains_per_part=per_part) if det.frames_group is None
             else det.split_trains(frames_per_part=per_part))
    for part in parts:
        keydata = {k: part[k].select_pulses(pulses, subtrain_index) for k in keys}
        arrays = {k: kd.xarray(fill_value=fill_value, unstack_pulses=True)
                  for k, kd in keydata.items()}
        plans = {k: kd._plan() for k, kd in keydata.items()}
        have = plans[keys[0]].pair_ids >= 0  # (modules, trains)
        for t, tid in enumerate(part._train_ids):
            if not have[:, t].any() or (require_all and not have[:, t].all()):
                continue
            out = {}
            for k, arr in arrays.items():
                # As EXtra-data: a length-1 train dim for frames (XTDF), none for JUNGFRAU
                one = arr[:, t:t + 1] if det.frames_group is not None else arr[:, t]
                if keydata[k].per_frame and keydata[k]._stages == 1:
                    # Keep the pulse slots some module filled in this train
                    slots = plans[k].masks()[:, t].any(axis=0)
                    if not slots.all():
                        one = one[:, :, slots]
                out[k] = one
            yield int(tid), out
