"""Which modules of a detector have how many frames in each train, and what is missing.

:func:`module_entry_counts` reads the (trains, modules) table of entries from the files'
cached index (no data read); :func:`incomplete_data_message` turns it into the one
warning a user gets about modules without data or with a different number of frames.
Used by :class:`~exfel_data.detectors.base.MultiModuleDetector` when it is created.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from exfel_data.rowindex import train_rows

__all__ = ['module_entry_counts', 'incomplete_data_message']


def module_entry_counts(data, sources: Iterable[str], group: str,
                        tids: np.ndarray) -> np.ndarray:
    """Rows per train of one index group of each module source, from the index only.

    Parameters
    ----------
    data : DataCollection
        The collection holding the sources.
    sources : iterable of str
        Module source names, in module order.
    group : str
        The index group (``'image'``, JUNGFRAU ``'data'``).
    tids : numpy.ndarray
        The train IDs (uint64) of the table's rows.

    Returns
    -------
    numpy.ndarray
        uint64, shape (trains, modules).
    """
    cols = [_index_counts(data, src, group, tids) for src in sources]
    return np.stack(cols, axis=1) if cols else np.zeros((len(tids), 0), np.uint64)


def incomplete_data_message(detector_name: str, modules: Sequence[int], tids: np.ndarray,
                            counts: np.ndarray, reference: np.ndarray,
                            mismatched_frames: str) -> str | None:
    """The warning text about modules missing or disagreeing on frames (None: all fine).

    Parameters
    ----------
    detector_name : str
        Named at the start of the message.
    modules : sequence of int
        Module numbers, one per column of *counts*.
    tids : numpy.ndarray
        Train IDs, one per row of *counts*.
    counts : numpy.ndarray
        Entries per train and module, shape (trains, modules).
    reference : numpy.ndarray
        Per train, the frame count most modules agree on.
    mismatched_frames : {'fill', 'exclude'}
        The detector's policy for a module that disagrees (said in the message).

    Returns
    -------
    str or None
    """
    msgs = []
    missing = (counts == 0)
    for j, modno in enumerate(modules):
        if missing[:, j].any():
            msgs.append(f"module {modno} has no data in {int(missing[:, j].sum())} of "
                        f"{len(tids)} trains ({_summarise_ids(tids[missing[:, j]])})")
    odd = (counts != reference[:, None]) & ~missing
    action = ("its frames are placed by pulse ID, gaps filled"
              if mismatched_frames == 'fill'
              else "its data in those trains is excluded (filled)")
    for j, modno in enumerate(modules):
        if odd[:, j].any():
            rows = np.flatnonzero(odd[:, j])
            eg = rows[0]
            msgs.append(
                f"module {modno} recorded a different number of frames than the other "
                f"modules in {len(rows)} trains ({_summarise_ids(tids[rows])}; e.g. "
                f"{int(counts[eg, j])} instead of {int(reference[eg])} in train "
                f"{int(tids[eg])}): {action}"
            )
    if not msgs:
        return None
    return (f"{detector_name}: incomplete detector data:\n  - " + "\n  - ".join(msgs)
            + "\nSee .data_counts() for the full table.")


def _summarise_ids(ids, limit: int = 6) -> str:
    ids = [int(i) for i in ids]
    shown = ', '.join(map(str, ids[:limit]))
    return f"{shown}, ... ({len(ids)} trains)" if len(ids) > limit else shown


def _index_counts(data, source: str, group: str, tids: np.ndarray) -> np.ndarray:
    """Rows per train of one index group, from the files' cached index (no file opened)."""
    sd = data[source]
    rows = train_rows(sd.files, source, group, tids, getattr(sd, 'inc_suspect_trains', True))
    return rows.count.astype(np.uint64)
