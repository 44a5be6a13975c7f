"""``run.plot_missing_data()``: which sources lack data in which trains (matplotlib).

The figure has one row per source saved in at most ``min_saved_pct`` percent of the
selected trains, sources missing most first, labelled with their alias where one exists;
each bar marks a run of trains without data. :func:`missing_trains` gives the numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["missing_trains", "plot_missing_data"]


def _label(data, source: str) -> str:
    for alias, target in data._aliases.items():
        if target == source:
            return alias
    return source


def missing_trains(data, min_saved_pct: float = 95,
                   expand_instrument: bool = False) -> dict[str, np.ndarray]:
    """Sources (or ``'source group.*'``) saved in at most *min_saved_pct* % of the trains.

    Returns
    -------
    dict
        Label -> boolean array over ``data.train_ids``, True where data is missing;
        sources missing most first.
    """
    out = {}
    n = len(data.train_ids)
    for src in sorted(data.all_sources):
        sd = data[src]
        if sd.is_run_only:
            continue
        if expand_instrument and not sd.is_control:
            parts = {f"{_label(data, src)} {g}.*": sd.data_counts(labelled=False, index_group=g)
                     for g in sd.index_groups}
        else:
            parts = {_label(data, src): sd.data_counts(labelled=False)}
        for label, counts in parts.items():
            missing = np.asarray(counts) == 0
            if n and (n - missing.sum()) / n * 100 <= min_saved_pct:
                out[label] = missing
    return dict(sorted(out.items(), key=lambda kv: (-int(kv[1].sum()), kv[0])))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in *mask*."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (stops - starts).tolist(), strict=True))


def plot_missing_data(data, min_saved_pct: float = 95, expand_instrument: bool = False):
    """Plot the sources with missing trains; see ``DataCollection.plot_missing_data``."""
    from .write.base import require

    plt = require("matplotlib.pyplot", "plot", "plot_missing_data()")
    missing = missing_trains(data, min_saved_pct, expand_instrument)
    tids = np.asarray(data.train_ids)
    fig, ax = plt.subplots(figsize=(9, max(3, len(missing) / 3.5)))
    for row, mask in enumerate(missing.values()):
        bars = [(int(tids[s]), int(tids[s + n - 1]) - int(tids[s]) + 1) for s, n in _runs(mask)]
        ax.broken_barh(bars, (row - 0.25, 0.5), color="tab:red")
    ax.set_yticks(range(len(missing)))
    ax.set_yticklabels([f"{label} ({100 - 100 * m.mean():.1f}% saved)"
                        for label, m in missing.items()])
    ax.invert_yaxis()
    if len(tids):
        ax.set_xlim(int(tids[0]), int(tids[-1]) + 1)
    ax.set_xlabel("Train ID")
    ax.set_title(f"Sources saved in at most {min_saved_pct}% of {len(tids)} trains"
                 if missing else "No source misses more than "
                 f"{100 - min_saved_pct}% of {len(tids)} trains")
    fig.tight_layout()
    return ax
