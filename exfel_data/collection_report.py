"""Describing a collection: ``info()``, ``train_info()``, detectors and suspect trains.

:class:`ReportMethods` holds the summary and inspection methods of
:class:`~exfel_data.DataCollection` (which inherits them); the text of ``info()`` is
built by :mod:`exfel_data.summary`, the missing-data plot by :mod:`exfel_data.missing_data`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TextIO

import numpy as np

from .detectors.identify import detector_modules
from .file_set import SuspectTrain, suspect_trains
from .selection import train_position

__all__ = ["ReportMethods"]


class ReportMethods:
    """The summary and inspection methods of :class:`~exfel_data.DataCollection`."""

    @property
    def suspect_trains(self) -> list[SuspectTrain]:
        """Train IDs marked suspect in the files (included unless inc_suspect_trains=False)."""
        return suspect_trains(self.files)

    @property
    def detector_sources(self) -> set[str]:
        """Instrument sources that are modules of a multi-module detector."""
        return {s for mods in self.detector_modules().values() for s in mods.values()}

    def detector_info(self, source: str) -> dict:
        """Pixel dims and frame counts of one detector module, as EXtra-data gives them.

        Parameters
        ----------
        source : str
            A detector module source with ``image.data``.

        Returns
        -------
        dict
            ``dims`` (pixel shape), ``frames_per_train`` (most in a train) and
            ``total_frames`` (``frames_per_train`` x selected trains, EXtra-data's
            estimate).
        """
        kd = self[source, "image.data"]
        counts = kd.data_counts(labelled=False)
        varying = set(np.unique(counts).tolist()) - {0}
        if len(varying) > 1:
            warnings.warn(f"{source}: varying number of frames per train: {sorted(varying)}",
                          stacklevel=2)
        fpt = int(counts.max(initial=0))
        return {"dims": kd.entry_shape[-2:], "frames_per_train": fpt,
                "total_frames": fpt * len(self._train_ids)}

    def train_info(self, train_id: int, file: TextIO | None = None) -> None:
        """Print the sources that have data in one train.

        Parameters
        ----------
        train_id : int
            A selected train ID (TrainIDError otherwise).
        file : file-like, optional
            Where to print (default stdout).
        """
        pos = train_position(self._train_ids, train_id)
        one = self._replace(train_ids=self._train_ids[pos:pos + 1])
        present = {s for s in one._sources
                   if one._source_data(s).data_counts(labelled=False)[0] > 0}
        lines = [f"Train [{int(train_id)}] information", "Devices", "\tInstruments"]
        lines += [f"\t- {s}" for s in sorted(present & one.instrument_sources)] or ["\t-"]
        lines.append("\tControls")
        lines += [f"\t- {s}" for s in sorted(present & one.control_sources)] or ["\t-"]
        print("\n".join(lines), file=file)

    def detector_modules(self) -> dict[str, dict[int, str]]:
        """Detector module sources grouped by detector: ``{detector: {module: source}}``.

        Sorted by detector name and module number; module numbers as in the source
        names (JUNGFRAU from 1); corrected sources when a detector has both. The same
        rule as the detector classes (:func:`exfel_data.detectors.identify.detector_modules`).
        """
        return detector_modules(self.instrument_sources)

    def plot_missing_data(self, min_saved_pct: float = 95, expand_instrument: bool = False):
        """Plot the sources that miss data in some trains (needs matplotlib).

        Parameters
        ----------
        min_saved_pct : float
            Show sources saved in at most this percentage of the selected trains.
        expand_instrument : bool
            One row per index group of instrument sources (``source image.*``).

        Returns
        -------
        matplotlib.axes.Axes
            One row per source (alias where there is one), red where trains lack data.
        """
        from .missing_data import plot_missing_data

        return plot_missing_data(self, min_saved_pct, expand_instrument)

    def info(self, details_for_sources: str | Iterable[str] = (),
             file: TextIO | None = None, *, with_aggregators: bool = False,
             with_auxiliary: bool = False, counts: bool = False,
             group_sources: bool = True) -> None:
        """Print a summary: trains, duration, train ID range, detectors, sources.

        Parameters
        ----------
        details_for_sources : str or iterable of str
            Source glob patterns whose keys are listed too (entry shape and dtype).
        with_aggregators : bool
            List every source with its aggregator (``[DA01] source``).
        with_auxiliary : bool
            Also list the REDUCTION and ERRATA sources (see :attr:`auxiliary`).
        counts : bool
            For every instrument source (detector modules too) and index group, say for
            how many trains it has data and how many entries per train.
        group_sources : bool
            List the output channels of one device on one line (``DEV:{a, b}``);
            False: one line per source.
        file : file-like, optional
            Where to print (default ``sys.stdout``).
        """
        from .summary import format_info

        text = format_info(self, details_for_sources, with_aggregators, counts,
                           group_sources)
        if with_auxiliary:
            text += "\n\n" + self.auxiliary._text(details_for_sources, with_aggregators)
        print(text, file=file)
