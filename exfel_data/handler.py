"""The seed API ``RunHandler`` (euxfel_h5tools style) on top of the collection API."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .opening import RunDirectory

if TYPE_CHECKING:
    from .collection import SourceSelection

__all__ = ["RunHandler"]


class RunHandler:
    """Open a run folder and get its data train by train.

    Parameters
    ----------
    run_dir : str
        The run folder.

    Examples
    --------
    >>> run = RunHandler('/data/r0803')                      # doctest: +SKIP
    >>> tid, data = run.train_from_index(12, devices={
    ...     'SPB_DET_AGIPD1M-1/DET/5CH0:xtdf': {'image.data'}})  # doctest: +SKIP
    """

    def __init__(self, run_dir: str | os.PathLike, **kwargs):
        self.run_dir = os.fspath(run_dir)
        self.data = RunDirectory(self.run_dir, **kwargs)

    @staticmethod
    def _devices_spec(devices):
        """{source: {keys} | None} -> a selection spec for DataCollection.select."""
        if devices is None:
            return None
        if isinstance(devices, dict):
            return {s: (None if k is None else set(k)) for s, k in devices.items()}
        return devices

    def _coll(self, devices):
        spec = self._devices_spec(devices)
        return self.data if spec is None else self.data.select(spec)

    def infos(self) -> dict:
        """Print and return the run summary (duration, train IDs, sources)."""
        tids = self.data.train_ids
        summary = {
            "n_trains": len(tids),
            "first_train": int(tids[0]) if len(tids) else None,
            "last_train": int(tids[-1]) if len(tids) else None,
            "duration_s": (int(tids[-1]) - int(tids[0]) + 1) / 10 if len(tids) else 0.0,
            "instrument_sources": sorted(self.data.instrument_sources),
            "control_sources": sorted(self.data.control_sources),
        }
        self.data.info()
        return summary

    def trains(self, devices: SourceSelection | None = None, require_all: bool = False):
        """Iterate over ``(train_id, data)`` (see docs/train-dict.md).

        Parameters
        ----------
        devices : dict or list, optional
            ``{source: {keys} or None}`` (None: all keys) or any selection
            :meth:`DataCollection.select` accepts; default all sources.
        require_all : bool
            Skip trains in which a selected source/key has no data.

        Returns
        -------
        iterator of (int, dict)
        """
        return iter(self._coll(devices).trains(require_all=require_all))

    def train_from_id(self, train_id: int, devices: SourceSelection | None = None):
        """``(train_id, data)`` for one train ID.

        Parameters
        ----------
        train_id : int
            The train ID.
        devices : dict or list, optional
            ``{source: {keys} or None}`` (None: all keys) or any selection
            :meth:`DataCollection.select` accepts; default all sources.

        Returns
        -------
        tuple of (int, dict)

        Raises
        ------
        TrainIDError
            The train ID is not in the run.
        """
        return self._coll(devices).train_from_id(train_id)

    def train_from_index(self, index: int, devices: SourceSelection | None = None):
        """``(train_id, data)`` for the train at a position (0 = first train).

        Parameters
        ----------
        index : int
            The position.
        devices : dict or list, optional
            ``{source: {keys} or None}`` (None: all keys) or any selection
            :meth:`DataCollection.select` accepts; default all sources.

        Returns
        -------
        tuple of (int, dict)

        Raises
        ------
        IndexError
            No train at that position.
        """
        return self._coll(devices).train_from_index(index)

    @property
    def ordered_trains(self) -> list:
        """All trains as a list of ``(train_id, data)`` (loads everything)."""
        return list(self.data.trains())

    def close(self) -> None:
        """Close the run's files."""
        self.data.close()

    def __enter__(self) -> RunHandler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
