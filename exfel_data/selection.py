"""Train selections: ``by_id[...]``, ``by_index[...]`` and their normalisation.

Every train selection is turned into a sorted ``np.uint64`` array of train IDs that is a
subset of the current ones.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .exceptions import TrainIDError

__all__ = ["by_id", "by_index", "select_train_ids", "split_ranges", "glob_matcher",
           "sorted_unique", "find_train_ids", "train_position", "TrainRange", "parse_trains"]


def sorted_unique(a) -> np.ndarray:
    """Sorted unique values (like ``np.unique``, which imports numpy.ma: ~20 ms at first)."""
    a = np.sort(np.asarray(a), kind="stable")
    if len(a) < 2:
        return a
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


class _SelectorBase:
    def __init__(self, value=None):
        self.value = value

    def __getitem__(self, item):
        return type(self)(item)

    def __repr__(self) -> str:
        # EXtra-data's canonical form: by_id[4::2, 7], by_index[..., ::-1]
        name = "by_id" if isinstance(self, ById) else "by_index"
        parts = self.value if isinstance(self.value, tuple) else (self.value,)
        return f"{name}[{', '.join(_format_index(p) for p in parts)}]"


def _format_index(part) -> str:
    """One index as written in brackets: ``:2``, ``0:10:2``, ``...``, ``[1, 2]``."""
    if part is Ellipsis:
        return "..."
    if isinstance(part, slice):
        text = ":".join("" if v is None else repr(v) for v in (part.start, part.stop))
        return text if part.step is None else f"{text}:{part.step!r}"
    if isinstance(part, np.ndarray):
        return repr(part.tolist())
    return repr(part)


class ById(_SelectorBase):
    """Select trains by train ID: ``by_id[10000:10050]``, ``by_id[[10001, 10003]]``."""


class ByIndex(_SelectorBase):
    """Select trains by position: ``by_index[:10]``, ``by_index[[0, 5]]``."""


by_id = ById()
by_index = ByIndex()

# extra-data's selector classes, which libraries built on it (EXtra) pass to our objects.
_PEER_SELECTORS = {("extra_data.read_machinery", "by_id"): ById,
                   ("extra_data.read_machinery", "by_index"): ByIndex}


def own_selector(sel):
    """Our ``by_id`` / ``by_index`` for extra-data's (same meaning), else *sel* unchanged."""
    ours = _PEER_SELECTORS.get((type(sel).__module__, type(sel).__name__))
    return sel if ours is None else ours(sel.value)


def _not_found(train_id: int, train_ids: np.ndarray) -> TrainIDError:
    n = len(train_ids)
    return TrainIDError(int(train_id), int(train_ids[0]) if n else None,
                        int(train_ids[-1]) if n else None, n)


def _check_present(wanted: np.ndarray, train_ids: np.ndarray) -> None:
    missing = wanted[~np.isin(wanted, train_ids)]
    if len(missing):
        raise _not_found(missing[0], train_ids)


def train_position(train_ids: np.ndarray, train_id: int) -> int:
    """Position of *train_id* in sorted *train_ids*; TrainIDError if it is not there."""
    pos = int(np.searchsorted(train_ids, np.uint64(train_id)))
    if pos >= len(train_ids) or train_ids[pos] != np.uint64(train_id):
        raise _not_found(train_id, train_ids)
    return pos


def find_train_ids(train_ids: np.ndarray, tids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of *tids* sits in sorted *train_ids*: ``(positions, found)``.

    ``positions[found]`` index ``train_ids``; entries of *tids* not in it are not found.
    """
    pos = np.searchsorted(train_ids, tids)
    found = pos < len(train_ids)
    found[found] = train_ids[pos[found]] == tids[found]
    return pos, found


def select_train_ids(train_ids: np.ndarray, sel) -> np.ndarray:
    """Apply a train selection to a sorted array of train IDs.

    Parameters
    ----------
    train_ids : np.ndarray
        Current (sorted, unique) train IDs.
    sel : slice, int, list, array, bool array, xarray, ``by_id[...]`` or ``by_index[...]``
        Plain slices, ints and integer lists select by index; boolean arrays must match
        the number of trains; a boolean ``xarray.DataArray`` with a ``trainId``
        coordinate selects the trains where it is true. ``by_id`` slices select IDs in
        the range (the stop is exclusive, a step counts train IDs); ``by_id`` lists must
        all be present.

    Returns
    -------
    np.ndarray
        The selected train IDs (sorted, unique, uint64).
    """
    train_ids = np.asarray(train_ids, dtype=np.uint64)
    sel = own_selector(sel)
    if isinstance(sel, ById):
        v = sel.value
        if isinstance(v, slice):
            start = train_ids[0] if v.start is None else v.start
            mask = np.ones(len(train_ids), dtype=bool)
            if v.start is not None:
                mask &= train_ids >= v.start
            if v.stop is not None:
                mask &= train_ids < v.stop
            if v.step not in (None, 1):
                mask &= ((train_ids.astype(np.int64) - int(start)) % v.step) == 0
            if len(train_ids) and not mask.any():
                _warn_outside(v, train_ids)
            return train_ids[mask]
        if isinstance(v, (int, np.integer)):
            wanted = np.array([v], dtype=np.uint64)
        else:
            wanted = sorted_unique(np.asarray(list(v) if not isinstance(v, np.ndarray)
                                              else v, dtype=np.uint64))
        _check_present(wanted, train_ids)
        return wanted
    if isinstance(sel, ByIndex):
        sel = sel.value
    if isinstance(sel, slice):
        return train_ids[sel]
    if type(sel).__module__.startswith("xarray."):
        return _select_by_labelled_mask(train_ids, sel)
    if isinstance(sel, (int, np.integer)):
        n = len(train_ids)
        if not -n <= sel < n:
            raise IndexError(f"Train index {sel} out of range for {n} trains")
        return train_ids[[sel]]
    arr = np.asarray(list(sel) if not isinstance(sel, np.ndarray) else sel)
    if arr.dtype == bool:
        if arr.shape != train_ids.shape:
            raise ValueError(
                f"Boolean train selection has length {len(arr)}, but there are "
                f"{len(train_ids)} trains"
            )
        return train_ids[arr]
    if arr.size == 0:
        return train_ids[:0]
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Cannot select trains with {sel!r}: use a slice, indices, a "
                        "boolean array, by_id[...] or by_index[...]")
    n = len(train_ids)
    if arr.max() >= n or arr.min() < -n:
        raise IndexError(f"Train index out of range for {n} trains: {sel!r}")
    return sorted_unique(train_ids[arr])


def _select_by_labelled_mask(train_ids: np.ndarray, mask) -> np.ndarray:
    """The trains where a boolean xarray.DataArray over ``trainId`` is true (e.g.
    ``xgm.xarray() > 500``); its trains not in the data are ignored, as in EXtra-data."""
    if "trainId" not in getattr(mask, "coords", ()):
        raise ValueError(f"An xarray train selection needs a 'trainId' coordinate; this "
                         f"one has {sorted(map(str, mask.coords)) or 'none'}")
    values = np.asarray(mask.values)
    if values.dtype != bool:
        raise TypeError(f"An xarray train selection must be boolean, not {values.dtype} "
                        "(compare it first, e.g. xgm.xarray() > 500)")
    if values.ndim != 1:
        raise ValueError(f"An xarray train selection must be 1-D along trainId, not "
                         f"{values.ndim}-D (dims {mask.dims})")
    wanted = np.asarray(mask.coords["trainId"].values)[values].astype(np.uint64)
    return train_ids[np.isin(train_ids, wanted)]


def _warn_outside(v: slice, train_ids: np.ndarray) -> None:
    """Say why a by_id range selects nothing when it lies wholly before or after the data."""
    first, last = int(train_ids[0]), int(train_ids[-1])
    where = ""
    if v.stop is not None and v.stop <= first:
        where = f"ends before the first train ID {first}"
    elif v.start is not None and v.start > last:
        where = f"starts after the last train ID {last}"
    if where:
        warnings.warn(f"by_id[{v.start}:{v.stop}] selects no trains: it {where} "
                      f"(selected train IDs are {first}-{last})", stacklevel=4)


def split_ranges(n: int, parts: int | None = None, trains_per_part: int | None = None):
    """Split ``range(n)`` into similar-sized consecutive slices.

    With *trains_per_part*, no part is longer than that; with *parts*, at least that many
    parts (fewer if there are fewer trains).
    """
    if parts is None and trains_per_part is None:
        raise ValueError("Specify parts and/or trains_per_part")
    n_parts = 1
    if parts is not None:
        if parts < 1:
            raise ValueError(f"parts must be >= 1, not {parts}")
        n_parts = max(n_parts, min(parts, n))
    if trains_per_part is not None:
        if trains_per_part < 1:
            raise ValueError(f"trains_per_part must be >= 1, not {trains_per_part}")
        n_parts = max(n_parts, -(-n // trains_per_part))
    n_parts = max(1, min(n_parts, max(n, 1)))
    bounds = [i * n // n_parts for i in range(n_parts + 1)]  # EXtra-data's boundaries
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=False) if b > a or n == 0]


def glob_matcher(patterns: str | Iterable[str]):
    """Compile glob pattern(s) into a ``match(name) -> bool`` function."""
    if isinstance(patterns, str):
        patterns = [patterns]
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: regex.match(name) is not None


# -- train ranges given as text (--trains of exfel-data convert and exfel-bridge serve-run) --

@dataclass(frozen=True)
class TrainRange:
    """A train range given as text: a slice over train positions or over train IDs.

    Made by :func:`parse_trains`; ``str()`` gives the text back.
    """

    by: str  # "index" or "id"
    slice: slice

    @property
    def selector(self) -> ById | ByIndex:
        """The range as ``by_index[...]`` or ``by_id[...]``, for ``select_trains``."""
        return by_id[self.slice] if self.by == "id" else by_index[self.slice]

    def __str__(self) -> str:
        s = self.slice
        text = ":".join("" if v is None else str(v) for v in (s.start, s.stop))
        if s.step is not None:
            text += f":{s.step}"
        return ("id:" if self.by == "id" else "") + text


_SLICE = re.compile(r"^(-?\d+)?(?::(-?\d+)?)?(?::(-?\d+)?)?$")


def parse_trains(text: str) -> TrainRange:
    """Parse a train range: ``START:STOP[:STEP]`` or ``N``, or ``id:FIRST:STOP[:STEP]``.

    Positions work like Python slicing (``0:100``, ``:50``, ``::10``, ``-10:``); a single
    number ``N`` is that one train (``-1``: the last). With ``id:``, train IDs, the stop
    excluded (``id:10000:10050``); ``id:N`` is train ID N. Steps must be positive: trains
    are always taken in order.

    Raises
    ------
    ValueError
        Naming the text and showing the forms it can take.
    """
    text = text.strip()
    by, body = ("id", text[3:]) if text.startswith("id:") else ("index", text)
    m = _SLICE.match(body)
    if not m or not body:
        raise ValueError(f"{text!r} is not a train range; use START:STOP[:STEP] (positions, "
                         "e.g. '0:100', ':50', '::10', '-10:', '5') or id:FIRST:STOP[:STEP] "
                         "(train IDs, e.g. 'id:10000:10050')")
    start, stop, step = (None if g is None else int(g) for g in m.groups())
    if step == 0:
        raise ValueError(f"{text!r}: a train range step cannot be 0")
    if (step or 1) < 0:
        raise ValueError(f"{text!r}: train ranges cannot go backwards (a negative step): "
                         "trains are always read and sent in order")
    if by == "id" and min(start or 0, stop or 0) < 0:
        raise ValueError(f"{text!r}: train IDs are positive; count from the end with "
                         "positions instead, e.g. '-10:'")
    if ":" not in body:  # one train
        return TrainRange(by, slice(start, (start + 1) or None))
    return TrainRange(by, slice(start, stop, step))
