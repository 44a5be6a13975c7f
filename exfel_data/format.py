"""What each EXDF version (0.5, 1.0, 1.1, 1.2, 1.3) looks like.

Pure knowledge about the file layout: where the source list lives, how the index is
laid out, what the train flag means, and how API key names map to HDF5 paths.
"""

from __future__ import annotations

import bisect

import numpy as np

#: The versions whose layout this module knows (0.5 has no dataFormatVersion).
KNOWN_VERSIONS = ("0.5", "1.0", "1.1", "1.2", "1.3")


def source_list_path(version: str) -> str:
    """Path of the dataset listing ``dataSourceId`` entries."""
    return "METADATA/dataSourceId" if version == "0.5" else "METADATA/dataSources/dataSourceId"


def parse_source_id(source_id: str) -> tuple[str, str, str]:
    """Split a ``dataSourceId`` into (section, source, index group).

    ``CONTROL/A/B/C`` -> ('CONTROL', 'A/B/C', '');
    ``INSTRUMENT/A/B/C:out/data`` -> ('INSTRUMENT', 'A/B/C:out', 'data').
    The section is '' for pseudo sources without a root.
    """
    section, _, rest = source_id.partition("/")
    if section == "INSTRUMENT":
        device, _, chan_group = rest.partition(":")
        channel, _, group = chan_group.partition("/")
        return section, f"{device}:{channel}", group
    if section == "CONTROL":
        return section, rest, ""
    return "", source_id, ""


def key_to_path(section: str, source: str, key: str) -> str:
    """HDF5 dataset path for an API key (``a.b.value`` -> ``/CONTROL/src/a/b/value``)."""
    return f"/{section}/{source}/{key.replace('.', '/')}"


def index_group_of(section: str, key: str) -> str:
    """Index group of a key: '' for control keys, the first component otherwise
    (instrument and auxiliary sections)."""
    return "" if section == "CONTROL" else key.partition(".")[0]


def index_group_path(source: str, group: str) -> str:
    return f"INDEX/{source}/{group}" if group else f"INDEX/{source}"


def counts_from_last_status(first, last, status) -> np.ndarray:
    """Counts for the oldest index layout: (last - first + 1) where status is set."""
    counts = (np.asarray(last, np.int64) - np.asarray(first, np.int64) + 1)
    return (counts * (np.asarray(status) != 0)).clip(0).astype(np.uint64)


def fit_index(firsts: np.ndarray, counts: np.ndarray, n_rows: int):
    """(first, count) as uint64 arrays of exactly *n_rows* rows (missing rows: empty)."""
    out = []
    for a in (firsts, counts):
        a = np.asarray(a[:n_rows], dtype=np.uint64)
        if len(a) < n_rows:
            a = np.concatenate([a, np.zeros(n_rows - len(a), np.uint64)])
        out.append(a)
    return out[0], out[1]


def valid_from_flag(flag: np.ndarray, version: str) -> np.ndarray:
    """Boolean 'train ID is trustworthy' per row from INDEX/flag.

    1 means good in 1.0, 1.2, 1.3. Format 1.1 stored an origin index there with the time
    server at 0, so the meaning is inverted.
    """
    flag = np.asarray(flag)
    if version == "1.1":
        return flag == 0
    return flag != 0


def guess_valid_trains(train_ids: np.ndarray) -> np.ndarray:
    """Guess good rows for files without a flag (format 0.5).

    Marks as suspect the fewest train IDs whose removal leaves a strictly increasing
    sequence (a longest strictly increasing subsequence, O(n log n)).
    """
    n = len(train_ids)
    valid = np.zeros(n, dtype=bool)
    if n == 0:
        return valid
    if np.all(train_ids[1:] > train_ids[:-1]):
        valid[:] = True
        return valid
    tails: list[int] = []  # values of the smallest tail of increasing runs per length
    tail_pos: list[int] = []
    prev = np.full(n, -1, dtype=np.int64)
    ids = train_ids.tolist()
    for i, t in enumerate(ids):
        j = bisect.bisect_left(tails, t)
        if j == len(tails):
            tails.append(t)
            tail_pos.append(i)
        else:
            tails[j] = t
            tail_pos[j] = i
        prev[i] = tail_pos[j - 1] if j > 0 else -1
    i = tail_pos[-1]
    while i >= 0:
        valid[i] = True
        i = prev[i]
    return valid


def decode_strings(arr: np.ndarray) -> np.ndarray:
    """Turn an object array of bytes (vlen strings) into an object array of str."""
    if arr.dtype.kind != "O":
        return arr
    out = np.empty(arr.shape, dtype=object)
    flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
    for i, x in enumerate(flat_in):
        flat_out[i] = x.decode("utf-8", "surrogateescape") if isinstance(x, bytes) else x
    return out


def decode_scalar(value):
    """bytes -> str for single vlen string values; anything else unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


#: Sections of newer files besides CONTROL / INSTRUMENT / RUN, listed in
#: ``METADATA/auxiliarySources/<SECTION>`` rather than among the data sources.
AUXILIARY_SECTIONS = ("REDUCTION", "ERRATA")


class SectionMixin:
    """``is_control`` / ``is_instrument`` for objects with a ``section`` attribute."""

    section: str

    @property
    def is_control(self) -> bool:
        """True for a control (slow data) source: section ``CONTROL``."""
        return self.section == "CONTROL"

    @property
    def is_instrument(self) -> bool:
        """True for an instrument (fast data) source: section ``INSTRUMENT``."""
        return self.section == "INSTRUMENT"

    @property
    def is_reduction(self) -> bool:
        """True for data-reduction records (auxiliary section ``REDUCTION``)."""
        return self.section == "REDUCTION"

    @property
    def is_errata(self) -> bool:
        """True for errata records (auxiliary section ``ERRATA``)."""
        return self.section == "ERRATA"

    @property
    def is_auxiliary(self) -> bool:
        """True for auxiliary sources (``REDUCTION`` or ``ERRATA``), see ``run.auxiliary``."""
        return self.section in AUXILIARY_SECTIONS
