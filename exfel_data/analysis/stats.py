"""Counting what happened to each train, and reporting ``process`` failures once.

Both runners keep one :class:`RunStats`; its counts are stored with every output and
published with every partial result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RunStats"]


@dataclass
class RunStats:
    """What happened to the trains of a run.

    Parameters
    ----------
    reduced : int
        Results given to the reducer.
    empty : int
        Trains for which ``process`` returned None.
    failed : int
        Trains for which ``process`` raised (by exception type in ``failures``).
    dropped : int
        Trains no worker was free for (live, ``drop`` policy).
    lost : int
        Trains held by a worker process that died (their IDs in ``lost_ranges``).
    late : int
        Trains that arrived after the ordered reorder buffer moved past them (not reduced).
    failures : collections.Counter
        Exception type name -> count.
    first_failure : tuple of (int, str), optional
        Train ID and traceback of the first failure.
    first_train_id, last_train_id : int, optional
        The range of reduced train IDs.
    lost_ranges : list of [int, int]
        First and last train ID of each group of lost trains.
    """

    reduced: int = 0
    empty: int = 0
    failed: int = 0
    dropped: int = 0
    lost: int = 0
    late: int = 0
    failures: Counter = field(default_factory=Counter)
    first_failure: tuple[int, str] | None = None   # (train ID, traceback)
    first_train_id: int | None = None
    last_train_id: int | None = None
    lost_ranges: list = field(default_factory=list)

    COUNTS = ("reduced", "empty", "failed", "dropped", "lost", "late")

    def saw(self, train_id: int) -> None:
        """Note a reduced train's ID (for the range stored with outputs).

        Parameters
        ----------
        train_id : int
            The train's ID.
        """
        if self.first_train_id is None or train_id < self.first_train_id:
            self.first_train_id = train_id
        if self.last_train_id is None or train_id > self.last_train_id:
            self.last_train_id = train_id

    def lose(self, first: int, last: int | None = None, n: int = 1) -> None:
        """Count trains lost with a worker process that died.

        Parameters
        ----------
        first, last : int
            Train IDs of the first and last of them (``last`` default: ``first``).
        n : int
            How many trains (IDs between the two may be missing from the run).
        """
        first, last = int(first), int(first if last is None else last)
        self.lost += n
        ranges = self.lost_ranges
        if ranges and ranges[-1][1] + 1 == first:
            ranges[-1][1] = last  # consecutive trains: one range
        else:
            ranges.append([first, last])

    def failure(self, train_id: int, error_type: str, tb: str,
                report: Callable[[str], None] | None = None) -> None:
        """Count a ``process`` exception; the first one is reported with its traceback.

        Parameters
        ----------
        train_id : int
            The train ``process`` failed on.
        error_type : str
            The exception's type name.
        tb : str
            Its traceback as text.
        report : callable, optional
            Called with a message (with the traceback) for the first failure only.
        """
        self.failed += 1
        self.failures[error_type] += 1
        if self.first_failure is None:
            self.first_failure = (int(train_id), tb)
            if report is not None:
                report(f"process() failed for train {train_id} (further failures are "
                       f"counted, not shown):\n{tb}")

    def add(self, other: RunStats) -> None:
        """Fold in the counts of a share of the trains (a worker's chunk, a part).

        Parameters
        ----------
        other : RunStats
            The share's counts.
        """
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.update(other.failures)
        if self.first_failure is None or (other.first_failure is not None
                                          and other.first_failure[0] < self.first_failure[0]):
            self.first_failure = other.first_failure or self.first_failure
        for tid in (other.first_train_id, other.last_train_id):
            if tid is not None:
                self.saw(tid)
        self.lost_ranges.extend([list(r) for r in other.lost_ranges])

    def as_dict(self) -> dict:
        """Plain counts (for HDF5 attributes and published messages)."""
        out = {name: getattr(self, name) for name in self.COUNTS}
        out["failures"] = dict(self.failures)
        if self.first_failure is not None:
            out["first_failure_train_id"] = self.first_failure[0]
            out["first_failure"] = self.first_failure[1]
        out["first_train_id"] = self.first_train_id
        out["last_train_id"] = self.last_train_id
        out["lost_ranges"] = [list(r) for r in self.lost_ranges]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RunStats:
        """Rebuild from :meth:`as_dict` output (as stored in result files).

        Parameters
        ----------
        d : dict
            The stored counts; missing counts are 0.

        Returns
        -------
        RunStats
        """
        stats = cls(**{name: int(d.get(name, 0)) for name in cls.COUNTS})
        stats.failures = Counter(d.get("failures", {}))
        if "first_failure_train_id" in d:
            stats.first_failure = (int(d["first_failure_train_id"]), d.get("first_failure", ""))
        stats.first_train_id = d.get("first_train_id")
        stats.last_train_id = d.get("last_train_id")
        stats.lost_ranges = [[int(a), int(b)] for a, b in d.get("lost_ranges", [])]
        return stats

    def summary(self) -> str:
        """One line, e.g. ``'480 trains reduced, 2 failed (ValueError 2), 5 dropped'``."""
        text = f"{self.reduced} trains reduced"
        if self.empty:
            text += f", {self.empty} without result (None)"
        if self.failed:
            kinds = ", ".join(f"{k} {n}" for k, n in self.failures.most_common())
            text += f", {self.failed} failed in process() ({kinds}; first: train "
            text += f"{self.first_failure[0]})" if self.first_failure else ")"
        for name in ("dropped", "lost", "late"):
            n = getattr(self, name)
            if n:
                text += f", {n} {name}"
            if name == "lost" and self.lost_ranges:
                text += f" (trains {self.lost_text()})"
        return text

    def lost_text(self, most: int = 5) -> str:
        """The lost train IDs as ranges, e.g. ``'10008-10015, 10040'``.

        Parameters
        ----------
        most : int
            Ranges shown at most; more are counted.

        Returns
        -------
        str
        """
        parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in self.lost_ranges[:most]]
        if len(self.lost_ranges) > most:
            parts.append(f"... ({len(self.lost_ranges) - most} more ranges)")
        return ", ".join(parts)
