"""Where each detector frame goes: per-train label patterns, pulse selection, slots.

A module's frames in one train are described by the sequence of their labels
(pulse IDs or cell IDs). Nearly all trains of a run share a handful of such
sequences, so we store each distinct sequence once ("pattern") and, per module
and train, the pattern's number. The output pulse axis is the sorted union of
selected labels (what EXtra-data's unstacked labelled array has), so a module
that recorded fewer or different frames in a train lands in the right slots and
the rest is filled.
"""

from __future__ import annotations

import numpy as np

from exfel_data.selection import by_id, by_index, own_selector

__all__ = ['LabelPatterns', 'PulseSelection', 'SlotPlan', 'normalise_pulses', 'plan_slots',
           'majority', 'gain_stage_labels', 'GAIN_STRIDE']

#: In LPD parallel-gain data a frame's label is ``stage * GAIN_STRIDE + pulse label``, so
#: sorted labels run through the pulses of gain stage 0, then 1, then 2.
GAIN_STRIDE = 1 << 40

_ById, _ByIndex = type(by_id), type(by_index)


def majority(values: np.ndarray, valid: np.ndarray, empty=-1) -> np.ndarray:
    """Per column of a (modules, trains) array, the value most valid entries share.

    The one vote used wherever modules disagree in a train (frame counts, label
    patterns, stacking a streamed train): a tie goes to the larger value (more
    frames); columns without a valid entry get *empty*.
    """
    values = np.asarray(values)
    valid = np.asarray(valid, dtype=bool)
    if values.shape[0] == 0:
        return np.full(values.shape[1:], empty, dtype=values.dtype)
    info = np.iinfo(values.dtype)
    hi = np.where(valid, values, info.min).max(axis=0)
    lo = np.where(valid, values, info.max).min(axis=0)
    out = np.where(valid.any(axis=0), hi, empty).astype(values.dtype)
    for t in np.flatnonzero((lo != hi) & valid.any(axis=0)):
        vals, n = np.unique(values[valid[:, t], t], return_counts=True)
        out[t] = vals[n == n.max()].max()  # vals are sorted: the largest of the tied
    return out


class PulseSelection:
    """A normalised pulse selection: by index in the train or by label (pulse ID)."""

    def __init__(self, kind: str, value):
        self.kind = kind      # 'all', 'index' or 'id'
        self.value = value    # slice or sorted unique int64 array

    def __repr__(self):
        return f"PulseSelection({self.kind}, {self.value!r})"

    @property
    def is_all(self) -> bool:
        return self.kind == 'all'

    def key(self):
        v = self.value
        if isinstance(v, slice):
            return (self.kind, v.start, v.stop, v.step)
        return (self.kind, None if v is None else v.tobytes())

    def positions(self, n: int) -> np.ndarray:
        """Positions selected in a train of *n* frames (kind 'index' or 'all')."""
        if self.kind == 'all':
            return np.arange(n)
        if isinstance(self.value, slice):
            return np.arange(n)[self.value]
        v = self.value
        return v[v < n]

    def id_mask(self, labels: np.ndarray) -> np.ndarray:
        """Which frames with these labels are selected (kind 'id')."""
        v = self.value
        if isinstance(v, slice):
            start = 0 if v.start is None else v.start
            ok = labels >= start
            if v.stop is not None:
                ok &= labels < v.stop
            if v.step not in (None, 1):
                ok &= (labels.astype(np.int64) - start) % v.step == 0
            return ok
        return np.isin(labels, v)


def normalise_pulses(pulses) -> PulseSelection:
    """Accept ``by_index[...]``, ``by_id[...]``, a slice, an int or a list of indices."""
    if pulses is None or isinstance(pulses, PulseSelection):
        return pulses or PulseSelection('all', None)
    kind = 'index'
    pulses = own_selector(pulses)
    if isinstance(pulses, _ById):
        kind, pulses = 'id', pulses.value
    elif isinstance(pulses, _ByIndex):
        pulses = pulses.value
    if isinstance(pulses, slice):
        for part in (pulses.start, pulses.stop, pulses.step):
            if part is not None and not isinstance(part, (int, np.integer)):
                raise TypeError(f"Pulse slice must use integers or None, not {pulses!r}")
        if pulses.step is not None and pulses.step < 1:
            raise ValueError(f"Pulse slice must have a positive step, not {pulses!r}")
        if (pulses.start or 0) < 0 or (pulses.stop or 0) < 0:
            raise ValueError(f"Negative pulse positions are not supported: {pulses!r}")
        if kind == 'index' and pulses in (slice(None), slice(0, None), slice(None, None, 1),
                                          slice(0, None, 1)):
            return PulseSelection('all', None)
        return PulseSelection(kind, pulses)
    arr = np.atleast_1d(np.asarray(pulses))
    if arr.dtype == bool or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"Select pulses with a slice, an int, a list of ints, by_index[...] or by_id[...], "
            f"not {pulses!r}"
        )
    if (arr < 0).any():
        raise ValueError(f"Pulse {'IDs' if kind == 'id' else 'positions'} cannot be negative: "
                         f"{arr[arr < 0][:5].tolist()}")
    return PulseSelection(kind, np.unique(arr.astype(np.int64)))


class LabelPatterns:
    """Distinct per-train label sequences, and which one each (module, train) has.

    Attributes
    ----------
    patterns : list of np.ndarray
        Distinct label sequences (int64).
    ids : np.ndarray
        (modules, trains) int32; -1 where a module has no frames in a train.
    """

    def __init__(self, n_modules: int, n_trains: int):
        self.patterns: list[np.ndarray] = []
        self._lookup: dict[bytes, int] = {}
        self.ids = np.full((n_modules, n_trains), -1, dtype=np.int32)

    def _intern(self, seq: np.ndarray) -> int:
        key = seq.tobytes()
        pid = self._lookup.get(key)
        if pid is None:
            pid = self._lookup[key] = len(self.patterns)
            self.patterns.append(seq.copy())
        return pid

    def add_module(self, mod_ix: int, counts: np.ndarray, labels: np.ndarray | None):
        """Record one module's frames: *counts* per train, *labels* concatenated.

        Without labels (positional data), the pattern is ``arange(count)``.
        """
        counts = np.asarray(counts, dtype=np.int64)
        if labels is None:
            labels = np.concatenate([np.arange(c) for c in counts]) if len(counts) \
                else np.zeros(0, np.int64)
        labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
        if labels.size != counts.sum():
            raise ValueError(f"{labels.size} labels for {counts.sum()} frames")
        have = np.flatnonzero(counts)
        if have.size == 0:
            return
        c0 = counts[have[0]]
        if (counts[have] == c0).all():
            # Same frame count in every train with data: compare whole rows at once
            rows = labels.reshape(-1, c0)
            if (rows == rows[0]).all():
                self.ids[mod_ix, have] = self._intern(rows[0])
                return
            as_bytes = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.itemsize * c0)))
            uniq, first, inverse = np.unique(as_bytes.reshape(-1), return_index=True,
                                             return_inverse=True)
            pids = np.array([self._intern(rows[i]) for i in first], dtype=np.int32)
            self.ids[mod_ix, have] = pids[inverse.reshape(-1)]
            return
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        for t in have:
            self.ids[mod_ix, t] = self._intern(labels[starts[t]:starts[t] + counts[t]])


class SlotPlan:
    """Where the selected frames of each (module, train) go on the pulse axis.

    Attributes
    ----------
    labels : np.ndarray
        Pulse-axis coordinate (sorted labels, or positions when ``positional``).
    positional : bool
        True when labels repeat within a train so frames are placed by position.
    pair_ids : np.ndarray
        (modules, trains) int32 index into ``pair_blocks``; -1 = nothing selected.
    pair_blocks : list of np.ndarray
        Per pair, (n, 3) int64 runs ``(frame offset in train, slot, length)``.
    """

    def __init__(self, labels, positional, pair_ids, pair_blocks):
        self.labels = labels
        self.positional = positional
        self.pair_ids = pair_ids
        self.pair_blocks = pair_blocks
        self._masks: np.ndarray | None = None

    @property
    def n_slots(self) -> int:
        return len(self.labels)

    def covered(self) -> np.ndarray:
        """Number of filled slots per (module, train)."""
        sizes = np.array([b[:, 2].sum() for b in self.pair_blocks] + [0], dtype=np.int64)
        return sizes[self.pair_ids]  # -1 -> the trailing 0

    def masks(self) -> np.ndarray:
        """(modules, trains, slots) bool: True where a module fills a slot (computed once)."""
        if self._masks is None:
            out = np.zeros(self.pair_ids.shape + (self.n_slots,), bool)
            for i, ids in enumerate(self.pair_ids):
                for q in np.unique(ids[ids >= 0]):
                    tix = np.flatnonzero(ids == q)
                    for _off, slot, n in self.pair_blocks[q]:
                        out[i, tix, slot:slot + n] = True
            self._masks = out
        return self._masks


def _runs(offsets: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Group frames into runs consecutive in both file row and slot."""
    if offsets.size == 0:
        return np.zeros((0, 3), np.int64)
    brk = np.flatnonzero((np.diff(offsets) != 1) | (np.diff(slots) != 1)) + 1
    starts = np.concatenate(([0], brk))
    lengths = np.diff(np.concatenate((starts, [offsets.size])))
    return np.stack([offsets[starts], slots[starts], lengths], axis=1).astype(np.int64)


def gain_stage_labels(counts: np.ndarray, labels: np.ndarray | None, stages: int = 3
                      ) -> np.ndarray:
    """Labels of parallel-gain frames: each train holds *stages* runs of the same pulses.

    Only the first run's labels are valid (LPD writes junk in the others), so every
    frame gets ``stage * GAIN_STRIDE + label of the same position in the first run``.
    *labels* None means positions in the train.
    """
    counts = np.asarray(counts, dtype=np.int64)
    bad = counts % stages != 0
    if bad.any():
        raise ValueError(f"parallel gain needs the frames in each train to be divisible by "
                         f"{stages}; {counts[bad][0]} frames in train #{np.flatnonzero(bad)[0]}")
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.arange(total) - starts
    per_stage = np.repeat(counts // stages, counts)
    stage, first = np.divmod(pos, np.maximum(per_stage, 1))
    base = first if labels is None else \
        np.asarray(labels).astype(np.int64, copy=False).reshape(-1)[starts + first]
    return stage * GAIN_STRIDE + base


def _stage_positions(pulses: PulseSelection, size: int, stages: int) -> np.ndarray:
    """by_index positions applied within each gain stage of a train of *size* frames."""
    n = size // stages
    return np.concatenate([g * n + pulses.positions(n) for g in range(stages)])


def plan_slots(pat: LabelPatterns, pulses: PulseSelection, reference: np.ndarray,
               exclude: np.ndarray | None = None, stages: int = 1) -> SlotPlan:
    """Apply a pulse selection and assign output slots.

    Parameters
    ----------
    pat : LabelPatterns
    pulses : PulseSelection
    reference : np.ndarray
        Per train, the pattern number whose positions ``by_index`` refers to
        (the frames most modules recorded); -1 for trains without data.
    exclude : np.ndarray, optional
        (modules, trains) bool; True drops that module's frames in that train.
    stages : int
        Parallel-gain stages per train (labels from :func:`gain_stage_labels`):
        ``by_index`` and ``by_id`` apply within each stage.
    """
    def positions(size: int) -> np.ndarray:
        return _stage_positions(pulses, size, stages) if stages > 1 else pulses.positions(size)
    ids = pat.ids if exclude is None else np.where(exclude, -1, pat.ids)
    # Selected frame offsets (and their labels) for each (pattern, reference) pair;
    # pairs are found with one unique() rather than a Python loop over (module, train).
    valid = ids >= 0
    refs = reference if pulses.kind == 'index' else np.full(ids.shape[1], -1)
    n_pat = len(pat.patterns) + 1
    combo = ids.astype(np.int64) * n_pat + (np.asarray(refs, np.int64)[None, :] + 1)
    uniq, inverse = np.unique(combo[valid], return_inverse=True)
    pair_ids = np.full(ids.shape, -1, dtype=np.int32)
    pair_ids[valid] = inverse.reshape(-1)
    sel_offsets: list[np.ndarray] = []
    sel_labels: list[np.ndarray] = []
    for c in uniq.tolist():
        seq = pat.patterns[c // n_pat]
        r = c % n_pat - 1
        if pulses.kind == 'all':
            offs = np.arange(seq.size)
        elif pulses.kind == 'id':
            offs = np.flatnonzero(pulses.id_mask(seq % GAIN_STRIDE if stages > 1 else seq))
        elif r < 0 or np.unique(seq).size != seq.size:
            offs = positions(seq.size)  # no usable labels: positions in the train
        else:
            ref = pat.patterns[r]
            offs = np.flatnonzero(np.isin(seq, ref[positions(ref.size)]))
        sel_offsets.append(offs)
        sel_labels.append(seq[offs])

    positional = any(np.unique(lab).size != lab.size for lab in sel_labels)
    if positional:
        n = max((o.size for o in sel_offsets), default=0)
        labels = np.arange(n, dtype=np.int64)
        blocks = [_runs(o, np.arange(o.size)) for o in sel_offsets]
    else:
        labels = (np.unique(np.concatenate(sel_labels)) if sel_labels
                  else np.zeros(0, np.int64))
        blocks = [_runs(o, np.searchsorted(labels, lab))
                  for o, lab in zip(sel_offsets, sel_labels, strict=True)]
    # Pairs with nothing selected behave like missing data
    empty = np.array([b.shape[0] == 0 for b in blocks] + [True])
    pair_ids = np.where(empty[pair_ids], -1, pair_ids).astype(np.int32)
    return SlotPlan(labels, positional, pair_ids, blocks)


def expand_blocks(plan: SlotPlan, mod_ix: int, vstart: np.ndarray,
                  trains: slice, slots: slice) -> np.ndarray:
    """Runs ``(virtual row, destination frame, length)`` for one module in a box.

    The destination is the flat frame index inside the box
    ``(trains, slots)``; *vstart* gives each train's first row in the module's
    virtual row space (all its files' rows one after another).
    """
    t0, t1 = trains.start, trains.stop
    p0, p1 = slots.start, slots.stop
    width = p1 - p0
    q_all = plan.pair_ids[mod_ix, t0:t1]
    out = []
    for q in np.unique(q_all[q_all >= 0]):
        tix = np.flatnonzero(q_all == q)
        b = plan.pair_blocks[q]
        off, slot, n = b[:, 0], b[:, 1], b[:, 2]
        lo, hi = np.maximum(slot, p0), np.minimum(slot + n, p1)
        keep = hi > lo
        off, lo, n = off[keep] + (lo - slot)[keep], lo[keep], (hi - lo)[keep]
        src = vstart[t0 + tix][:, None] + off[None, :]
        dst = tix[:, None] * width + (lo - p0)[None, :]
        out.append(np.stack(np.broadcast_arrays(src, dst, n[None, :]), axis=-1).reshape(-1, 3))
    if not out:
        return np.zeros((0, 3), np.int64)
    blocks = np.concatenate(out).astype(np.int64)
    blocks = blocks[np.argsort(blocks[:, 0], kind='stable')]
    return merge_runs(blocks)


def merge_runs(blocks: np.ndarray) -> np.ndarray:
    """Join runs that continue each other in both source and destination."""
    if len(blocks) < 2:
        return blocks
    src, dst, n = blocks[:, 0], blocks[:, 1], blocks[:, 2]
    cont = (src[1:] == src[:-1] + n[:-1]) & (dst[1:] == dst[:-1] + n[:-1])
    starts = np.flatnonzero(np.concatenate(([True], ~cont)))
    return np.stack([src[starts], dst[starts], np.add.reduceat(n, starts)], axis=1)
