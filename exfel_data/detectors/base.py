"""Multi-module detector access over a run: module discovery, messy-data checks, trains.

:class:`MultiModuleDetector` finds a detector's module sources from source names
(no file opened), works out per train which modules have how many frames from
the cached index (:mod:`.completeness`), and hands out
:class:`~.keydata.DetectorKeyData` objects that read labelled arrays (numpy, xarray,
dask). The reading and writing calls (``get_array``, ``trains``, ``write_frames``...)
come from :mod:`.access`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from exfel_data.selection import by_id, find_train_ids, select_train_ids, split_ranges
from exfel_data.train_id_list import TrainIdList

from .access import DataAccessMethods
from .completeness import incomplete_data_message, module_entry_counts
from .errors import NoDetectorError, warn_user
from .frames import majority
from .identify import DetectorKind, DetectorSources, find_detectors
from .keydata import DetectorKeyData

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from exfel_data.collection import DataCollection
    from exfel_data.hints import TrainSelection
    from exfel_data.keydata import KeyData

__all__ = ['MultiModuleDetector']

log = logging.getLogger(__name__)

MISMATCH_POLICIES = ('fill', 'exclude')



class MultiModuleDetector(DataAccessMethods):
    """Base class: one multi-module detector in a data collection.

    What :class:`~.keydata.DetectorKeyData` relies on (its only view of the detector):
    ``data`` (the collection), ``kind``, ``frames_group``, ``detector_name``, ``modules``,
    ``modno_to_source``, ``_train_ids`` (uint64 array), ``n_modules``, ``mismatched_frames``,
    ``entry_counts`` (trains x modules), :meth:`reference_counts`,
    :meth:`module_keydata` and ``plan_cache`` (plans shared by the keys of one detector).

    Parameters
    ----------
    data : DataCollection
        A run or any selection of it (``RunDirectory(...)``, ``run.select_trains(...)``).
    detector_name : str, optional
        E.g. ``'SPB_DET_AGIPD1M-1'``; needed only if the data holds several
        detectors of this type.
    modules : iterable of int, optional
        Module numbers to use (default: all found).
    raw : bool, optional
        True for raw data, False for corrected. By default corrected data
        (``<det>/CORR/<n>CH0:output``) is used when present; falling back to raw
        data emits a :class:`DetectorDataWarning`.
    min_modules : int
        Keep trains where at least this many modules have data (default 1).
    mismatched_frames : {'fill', 'exclude'}
        What to do in trains where a module recorded a different number of
        frames than the others. ``'fill'`` places each module's frames by pulse
        ID and fills the gaps; ``'exclude'`` treats that module as missing in
        those trains.
    """

    kind: DetectorKind = None

    @property
    def frames_group(self) -> str | None:
        """Index group holding one row per frame ('image' for XTDF); None: one row per train."""
        return self.kind.frames_group

    def __init__(self, data: DataCollection, detector_name: str | None = None,
                 modules: Iterable[int] | None = None, *,
                 raw: bool | None = None, min_modules: int = 1,
                 mismatched_frames: str = 'fill'):
        if mismatched_frames not in MISMATCH_POLICIES:
            raise ValueError(f"mismatched_frames must be one of {MISMATCH_POLICIES}, "
                             f"not {mismatched_frames!r}")
        if min_modules < 1:
            raise ValueError(f"min_modules must be a positive integer, not {min_modules!r}")
        found = self._find(data, detector_name)
        self.detector_name = found.detector_name
        self.modno_to_source, self.raw = self._choose_sources(data, found, raw)
        if modules is not None:
            wanted = {int(m) for m in modules}
            missing = sorted(wanted - set(self.modno_to_source))
            if missing:
                raise NoDetectorError(
                    f"Module(s) {missing} of {self.detector_name} not in the data; available: "
                    f"{sorted(self.modno_to_source)}"
                )
            self.modno_to_source = {m: s for m, s in self.modno_to_source.items() if m in wanted}
        self.modno_to_source = self._renumber(self.modno_to_source)
        self.mismatched_frames = mismatched_frames
        self.min_modules = min_modules
        # Only the detector's module sources, as EXtra-data's ``det.data``
        data = data.select([(src, '*') for src in self.modno_to_source.values()])
        self.data = data
        tids = np.asarray(data.train_ids, dtype=np.uint64)
        counts = self._module_counts(data, tids)
        n_present = (counts > 0).sum(axis=1)
        keep = n_present >= min_modules
        if not keep.any():
            raise NoDetectorError(
                f"No trains with data from at least {min_modules} module(s) of "
                f"{self.detector_name} ({len(counts)} trains in the data)"
            )
        dropped = int((~keep & (n_present > 0)).sum())
        if dropped:
            log.info("%s: leaving out %d trains with fewer than %d modules",
                     self.detector_name, dropped, min_modules)
        self._train_ids = tids[keep]
        #: (trains, modules) entries of the main key per train and module (uint64)
        self.entry_counts = counts[keep]
        self.plan_cache: dict = {}
        self._warn_messy()

    # -- discovery ----------------------------------------------------------------
    @classmethod
    def _find(cls, data, detector_name) -> DetectorSources:
        found = find_detectors(data.instrument_sources, [cls.kind.name])
        names = sorted(name for (_, name) in found)
        if detector_name is not None:
            ds = found.get((cls.kind.name, detector_name))
            if ds is None:
                raise NoDetectorError(
                    f"No {cls.kind.name} detector {detector_name!r} in the data; found: "
                    f"{names or 'none'}. See identify_multimod_detectors(run)."
                )
            return ds
        if len(found) == 1:
            return next(iter(found.values()))
        if not found:
            others = sorted(f"{k}: {n}" for (k, n) in find_detectors(data.instrument_sources))
            raise NoDetectorError(
                f"No {cls.kind.name} module sources (like <name>/DET/<n>CH0:xtdf or "
                f"<name>/CORR/<n>CH0:output) in the data."
                + (f" Other detectors found: {', '.join(others)}" if others else "")
            )
        raise NoDetectorError(
            f"Several {cls.kind.name} detectors in the data: {', '.join(names)}. "
            f"Pass detector_name= to choose one."
        )

    def _renumber(self, modno_to_source: dict[int, str]) -> dict[int, str]:
        """Module numbers from source-name numbers (JUNGFRAU shifts by first_modno)."""
        return dict(sorted(modno_to_source.items()))

    def _looks_raw(self, data, source: str) -> bool:
        """Raw data is integer (and for AGIPD has a data/gain axis)."""
        kd = data[source, self.kind.main_key]
        return np.issubdtype(kd.dtype, np.integer)

    def _choose_sources(self, data, found: DetectorSources, raw):
        name = found.detector_name
        if raw is not True and found.corr:
            return dict(found.corr), False
        if not found.raw:
            raise NoDetectorError(f"No raw data (<{name}>/DET/...) for {name}; only "
                                  f"corrected data (/CORR/) is in the data")
        # Older corrected files used the raw names: tell them apart by dtype
        # (opens the first module's file only).
        is_raw = self._looks_raw(data, found.raw[min(found.raw)])
        if raw is True and not is_raw:
            raise NoDetectorError(f"{name}/DET/... sources hold corrected data; raw "
                                  f"data is not in this data collection")
        if raw is False and is_raw:
            raise NoDetectorError(f"No corrected data ({name}/CORR/...) in the data; pass "
                                  f"raw=True to use the raw data")
        if raw is None and is_raw:
            warn_user(f"No corrected data ({name}/CORR/<n>CH0:output) found: using raw data "
                      f"from {name}/DET/... Pass raw=True to silence this warning, or "
                      f"raw=False to make it an error.")
        return dict(found.raw), is_raw

    def _module_counts(self, data, tids: np.ndarray) -> np.ndarray:
        """(trains, modules) entries of the main key, from the index only."""
        group = self.kind.main_key.split('.', 1)[0]
        sources = [src for _modno, src in sorted(self.modno_to_source.items())]
        return module_entry_counts(data, sources, group, tids)

    def _warn_messy(self):
        msg = incomplete_data_message(self.detector_name, self.modules, self._train_ids,
                                      self.entry_counts, self.reference_counts(),
                                      self.mismatched_frames)
        if msg:
            warn_user(msg)

    def reference_counts(self) -> np.ndarray:
        """Per train, the frame count most modules with data agree on (0: no data)."""
        counts = self.entry_counts
        return majority(counts.T, counts.T > 0, empty=0).astype(np.uint64)

    # -- properties -----------------------------------------------------------------
    @property
    def train_ids(self) -> TrainIdList:
        """Train IDs with data from at least ``min_modules`` modules.

        A list of ints, as a collection's ``train_ids`` (``np.asarray()`` gives uint64).
        """
        return TrainIdList(self._train_ids)

    @property
    def modules(self) -> list[int]:
        """Module numbers in use."""
        return sorted(self.modno_to_source)

    @property
    def source_to_modno(self) -> dict[str, int]:
        """Source name -> module number (the inverse of ``modno_to_source``)."""
        return {s: m for m, s in self.modno_to_source.items()}

    @property
    def n_modules(self) -> int:
        """Number of modules of the full detector (length of module-gaps arrays)."""
        return self.kind.n_modules

    @property
    def frame_counts(self):
        """Frames per train that most modules recorded (pandas Series, index: train ID)."""
        import pandas as pd
        return pd.Series(self.reference_counts(), name='frames',
                         index=pd.Index(self._train_ids, name='trainId'))

    @property
    def frames_per_train(self) -> int:
        """The frame count shared by all trains (error if it varies)."""
        vals = set(np.unique(self.reference_counts()).tolist()) - {0}
        if len(vals) != 1:
            raise ValueError(f"Varying number of frames per train: {sorted(vals)}")
        return vals.pop()

    def data_availability(self, module_gaps: bool = False) -> np.ndarray:
        """(modules, frames) bool array, True where a module has a frame (EXtra-data's).

        The frames axis is that of ``det[main key].ndarray()``; see :meth:`data_counts`
        for the per-train table.

        Parameters
        ----------
        module_gaps : bool
            One row for every module of the detector (missing ones all False), not only
            for the modules found.

        Returns
        -------
        numpy.ndarray
            bool, shape (modules, frames).
        """
        return self[self.kind.main_key].data_availability(module_gaps)

    def data_counts(self, as_bool: bool = False) -> pd.DataFrame:
        """Frames per train and module (trains x modules pandas DataFrame).

        Parameters
        ----------
        as_bool : bool
            True where a module has data in a train, instead of the counts.

        Returns
        -------
        pandas.DataFrame
            Index ``trainId``, columns ``module``.
        """
        import pandas as pd
        counts = self.entry_counts
        return pd.DataFrame(counts > 0 if as_bool else counts.copy(),
                            index=pd.Index(self._train_ids, name='trainId'),
                            columns=pd.Index(self.modules, name='module'))

    def __repr__(self):
        kind = 'raw' if self.raw else 'proc'  # corrected data, 'proc' as EXtra-data
        return (f"<{type(self).__name__} {self.detector_name!r}: {kind} data, "
                f"{len(self.modules)} modules, {len(self._train_ids)} trains>")

    def __contains__(self, key: str) -> bool:
        """True if every module in use has *key*."""
        return all((self.modno_to_source[m], key) in self.data for m in self.modules)

    def _entry_dims(self, key: str, ndim: int) -> list[str]:
        """Names of the per-entry axes of *key* (beyond the frame axes)."""
        return [f'dim_{i}' for i in range(ndim)]

    def module_keydata(self, modno: int, key: str) -> KeyData:
        """The reader's KeyData for one module, restricted to this object's trains.

        Parameters
        ----------
        modno : int
            Module number (as in :attr:`modules`).
        key : str
            Key of the module's source, e.g. ``'image.data'``.

        Returns
        -------
        KeyData
        """
        kd = self.data[self.modno_to_source[modno], key]
        return kd.select_trains(by_id[self._train_ids])

    # -- selections -----------------------------------------------------------------
    def _with_trains(self, tids: np.ndarray):
        pos, found = find_train_ids(self._train_ids, np.asarray(tids, dtype=np.uint64))
        pos = pos[found]
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._train_ids = self._train_ids[pos]
        new.entry_counts = self.entry_counts[pos]
        new.plan_cache = {}
        return new

    def select_trains(self, trains: TrainSelection) -> MultiModuleDetector:
        """New detector object for a subset of trains.

        Parameters
        ----------
        trains : slice, sequence of int, bool array, by_index[...] or by_id[...]
            By position (slice, indices, boolean array, ``by_index``) or by train ID
            (``by_id``).

        Returns
        -------
        MultiModuleDetector
            Of the same class, for those trains.
        """
        return self._with_trains(select_train_ids(self._train_ids, trains))

    def split_trains(self, parts: int | None = None, trains_per_part: int | None = None,
                     frames_per_part: int | None = None):
        """Yield detector objects each covering a share of the trains.

        Parts always contain whole trains.

        Parameters
        ----------
        parts : int, optional
            Split into (at least) this many parts.
        trains_per_part : int, optional
            At most this many trains in each part.
        frames_per_part : int, optional
            At most this many frames (per module) in each part (a single train may
            exceed it).

        Yields
        ------
        MultiModuleDetector
            Of the same class, for the trains of one part.
        """
        if frames_per_part is not None:
            try:  # a fixed frame count: even parts of whole trains, as EXtra-data
                per_train = self.frames_per_train
            except ValueError:
                pass
            else:
                n = max(1, frames_per_part // max(per_train, 1))
                trains_per_part = min(n, trains_per_part or n)
                frames_per_part = None
        if frames_per_part is not None:
            frames = self.reference_counts().astype(np.int64)
            part_start, acc = 0, 0
            bounds = []
            for i, n in enumerate(frames):
                if i > part_start and acc + n > frames_per_part:
                    bounds.append(slice(part_start, i))
                    part_start, acc = i, 0
                acc += n
            bounds.append(slice(part_start, len(frames)))
            if parts is not None:  # parts is a minimum: cap the trains per part
                per_part = max(1, len(frames) // max(parts, 1))
                trains_per_part = min(trains_per_part or per_part, per_part)
            if trains_per_part is not None:
                bounds = [slice(b.start + s.start, b.start + s.stop)
                          for b in bounds
                          for s in split_ranges(b.stop - b.start, None, trains_per_part)]
        else:
            bounds = split_ranges(len(self._train_ids), parts, trains_per_part)
        for sl in bounds:
            if sl.stop > sl.start:
                yield self._with_trains(self._train_ids[sl])

    # -- data access ----------------------------------------------------------------
    def __getitem__(self, key: str) -> DetectorKeyData:
        return DetectorKeyData(self, key)
