"""What a run records about itself: METADATA, RUN-section values and train timestamps.

:class:`RunValueMethods` holds ``run_metadata``, ``get_run_value``, ``get_run_values`` and
``train_timestamps`` of :class:`~exfel_data.DataCollection` (which inherits them). Run
values and metadata belong to one run, so they refuse data combining several runs
(:class:`~exfel_data.exceptions.MultiRunError`).
"""

from __future__ import annotations

import numpy as np

from .exceptions import MultiRunError
from .reading import DatasetReader
from .rowindex import file_rows

__all__ = ["RunValueMethods"]


class RunValueMethods:
    """The run-level values of :class:`~exfel_data.DataCollection`."""

    def get_run_value(self, source: str, key: str):
        """The RUN-section value of a control key (name with or without ``.value``).

        Parameters
        ----------
        source : str
            A control source.
        key : str
            One of its RUN keys.

        Returns
        -------
        object
            A number, string or array.

        Raises
        ------
        MultiRunError
            The data combines several runs.
        PropertyNameError
            The source has no such RUN key.
        """
        return self._source_data(source).run_value(key)

    def get_run_values(self, source: str, inc_timestamps: bool = True) -> dict:
        """All RUN values of a control source as a dict (see SourceData.run_values).

        Parameters
        ----------
        source : str
            A control source.
        inc_timestamps : bool
            Include the ``.timestamp`` keys; False: property names without ``.value``.
        """
        return self._source_data(source).run_values(inc_timestamps=inc_timestamps)

    def run_metadata(self) -> dict:
        """METADATA of the run (from its first file): proposal, run, dates, format..."""
        if not self.is_single_run:
            raise MultiRunError("run_metadata()", sorted(map(str, self._runs)))
        if not self.files:
            return {}
        # plain Python values (int, str), as the docs show them and json.dumps takes them
        md = {k: v.item() if isinstance(v, np.generic) else v
              for k, v in self.files[0].metadata().items()}
        md.setdefault("dataFormatVersion", self.files[0].format_version)
        return md

    def train_timestamps(self, labelled: bool = False, *, pydatetime: bool = False,
                         euxfel_local_time: bool = False):
        """Time of each selected train (``datetime64[ns]``, UTC; NaT where unknown).

        Uses INDEX/timestamp (format 1.0 and later).

        Parameters
        ----------
        labelled : bool
            A pandas Series indexed by train ID, timezone-aware (UTC).
        pydatetime : bool
            A list of timezone-aware ``datetime`` objects (None where unknown),
            truncated to milliseconds as EXtra-data does.
        euxfel_local_time : bool
            With *labelled* or *pydatetime*: in the facility's time zone
            (Europe/Berlin) instead of UTC.
        """
        if euxfel_local_time and not (labelled or pydatetime):
            raise ValueError("train_timestamps(euxfel_local_time=True) needs labelled=True "
                             "or pydatetime=True: plain datetime64 arrays have no time zone")
        out = self._utc_train_timestamps()
        if labelled:
            import pandas as pd

            series = pd.Series(out, index=pd.Index(self._train_ids, name="trainId"))
            series = series.dt.tz_localize("UTC")
            return series.dt.tz_convert("Europe/Berlin") if euxfel_local_time else series
        if pydatetime:
            from datetime import timezone
            from zoneinfo import ZoneInfo

            zone = ZoneInfo("Europe/Berlin") if euxfel_local_time else timezone.utc
            return [None if np.isnat(t) else
                    t.astype("datetime64[ms]").item().replace(tzinfo=timezone.utc)
                    .astimezone(zone) for t in out]
        return out

    def _utc_train_timestamps(self) -> np.ndarray:
        out = np.full(len(self._train_ids), np.datetime64("NaT"), dtype="datetime64[ns]")
        for j, rows, pos in file_rows(self.files, self._train_ids, self.inc_suspect_trains):
            fa = self.files[j]
            if not fa.has_dataset("INDEX/timestamp"):
                continue
            ts = DatasetReader(fa.filename, "INDEX/timestamp", fa.file).read_new(
                0, int(rows.max()) + 1, dtype=np.uint64)
            out[pos] = ts[rows].astype("datetime64[ns]")
        return out
