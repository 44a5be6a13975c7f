"""Write selected frames of a detector, as (train ID, pulse ID) pairs, to a new EXDF file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from exfel_data.exceptions import TrainIDError
from exfel_data.selection import by_id

__all__ = ['write_frames']


def _frame_pairs(trains, pulses) -> dict[int, np.ndarray]:
    """{train ID: sorted pulse IDs wanted in it}, checked as EXtra-data checks them."""
    trains, pulses = np.asarray(trains), np.asarray(pulses)
    if trains.ndim != 1 or pulses.ndim != 1:
        raise ValueError(f"trains and pulses must be 1-D arrays (one entry per frame), not "
                         f"of shapes {trains.shape} and {pulses.shape}")
    if trains.shape != pulses.shape:
        raise ValueError(f"trains and pulses must have one entry per frame: "
                         f"{trains.shape} != {pulses.shape}")
    order = np.argsort(trains, kind='stable')
    tids, starts = np.unique(trains[order], return_index=True)
    groups = np.split(pulses[order].astype(np.uint64), starts[1:])
    return {int(t): np.unique(p) for t, p in zip(tids, groups, strict=True)}


def _timestamps(data):
    """The run's train timestamps (ns, UTC), or None where some are unknown."""
    try:
        ts = np.asarray(data.train_timestamps(), dtype='datetime64[ns]')
    except (AttributeError, KeyError, ValueError, TypeError):
        return None
    return None if np.isnat(ts).any() else ts.astype(np.int64).astype(np.uint64)


def write_frames(det, filename: str | os.PathLike, trains, pulses) -> Path:
    """Write the frames ``(trains[i], pulses[i])`` of every module to one EXDF file.

    See :meth:`MultiModuleDetector.write_frames`.
    """
    from exfel_data.write.exdf_writer import STRING_DTYPE, ExdfWriter

    wanted = _frame_pairs(trains, pulses)
    tids = det._train_ids  # all trains, as EXtra-data: unselected ones get no frames
    asked = np.fromiter(wanted, dtype=np.uint64, count=len(wanted))
    unknown = asked[~np.isin(asked, tids)]
    if unknown.size:
        raise TrainIDError(int(unknown[0]), int(tids[0]) if len(tids) else None,
                           int(tids[-1]) if len(tids) else None, len(tids))
    none = np.zeros(0, np.uint64)
    data = det.data.select_trains(by_id[tids])
    frames_group = det.frames_group
    with ExdfWriter(filename, tids, timestamps=_timestamps(data)) as writer:
        for modno in det.modules:
            source = det.modno_to_source[modno]
            sd = data[source]
            by_group: dict[str, list[str]] = {}
            for key in sorted(sd.keys()):
                by_group.setdefault(key.partition('.')[0], []).append(key)
            counts, row_masks = {}, {}
            for group, keys in by_group.items():
                n = np.asarray(sd[keys[0]].data_counts(labelled=False), dtype=np.int64)
                if group == frames_group:
                    ids = np.asarray(sd[f'{group}.pulseId'].ndarray()).reshape(-1)
                    starts = np.cumsum(n) - n
                    keep = np.zeros(ids.size, bool)
                    for tid, start, c in zip(tids, starts, n, strict=True):
                        keep[start:start + c] = np.isin(ids[start:start + c],
                                                         wanted.get(int(tid), none))
                    row_masks[group] = keep
                    kept_before = np.concatenate(([0], np.cumsum(keep)))
                    n = kept_before[starts + n] - kept_before[starts]
                counts[group] = n
            writer.add_instrument_source(source, counts)
            for group, keys in by_group.items():
                for key in keys:
                    kd = sd[key]
                    arr = kd.ndarray()
                    if group in row_masks:
                        arr = arr[row_masks[group]]
                    dtype = STRING_DTYPE if arr.dtype.kind in 'OSU' else arr.dtype
                    writer.add_instrument_key(source, key, dtype, arr.shape[1:])
                    writer.write(source, key, arr)
    return Path(filename)
