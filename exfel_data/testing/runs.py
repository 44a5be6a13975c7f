"""Plan and write realistic run folders from simulated devices.

``make_run(path, ...)`` is ``RunPlan(...).write(path)``. The plan decides which files exist
(one series of sequence files per aggregator), which trains each holds and which defects
are put in; keep the plan to know exactly what was written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from ..write.exdf_writer import FORMAT_VERSIONS, ExdfWriter
from .detectors import AGIPD1M, MultiModuleDetector
from .devices import XGM, Camera, Device, KeySpec, Motor

__all__ = ['FilePlan', 'RunPlan', 'make_run', 'default_devices', 'proposal_run_dir']

#: Target size of the blocks rows are generated and written in.
BLOCK_BYTES = 64 * 2**20


def default_devices(frames_per_train: int = 64, module_shape: tuple = (512, 128),
                    camera_shape: tuple = (256, 256)) -> list[Device]:
    """XGM and a motor (DA01), a second motor and a camera (DA02), raw AGIPD-1M.

    The defaults are the real sizes: 16 modules x 64 frames x (2, 512, 128) uint16 is 256 MB
    per train. For quick test runs shrink them, e.g.
    ``default_devices(frames_per_train=2, module_shape=(32, 16), camera_shape=(8, 8))``.

    Parameters
    ----------
    frames_per_train : int
        AGIPD frames per train.
    module_shape : tuple of int
        ``(H, W)`` of one AGIPD module.
    camera_shape : tuple of int
        ``(H, W)`` of the camera image.

    Returns
    -------
    list of Device
        The devices, the AGIPD modules one by one.
    """
    return [XGM(), Motor('SPB_IRU_MOTORS/MOTOR/X'),
            Motor('SPB_IRU_MOTORS/MOTOR/Y', aggregator='DA02', offset=-2.0),
            Camera(shape=camera_shape),
            *AGIPD1M(frames_per_train=frames_per_train, module_shape=module_shape)]


@dataclass
class FilePlan:
    """One file of a planned run: what it holds and which defects change it.

    Parameters
    ----------
    aggregator : str
        E.g. ``'DA01'``, ``'AGIPD00'``.
    sequence : int
        The sequence number.
    train_ids, flags : numpy.ndarray
        ``INDEX/trainId`` (uint64) and good (True) or suspect (False) per row.
    devices : list of Device
        The devices whose sources the file holds.
    name : str
        The file name (``RAW-R0001-DA01-S00000.h5``).
    index_padding : int
        Zero rows appended to every INDEX dataset.
    legacy_index : bool
        Write INDEX ``first``/``last``/``status`` (format 0.5).
    source_list_padding : int
        Empty entries appended to the METADATA source lists.
    empty_sources : set of str
        Sources listed without any data.
    source_gaps : dict
        Source -> train IDs in which it has no data.
    truncate : float, optional
        Cut the file to this share of its size after writing.
    """

    aggregator: str
    sequence: int
    train_ids: np.ndarray
    flags: np.ndarray
    devices: list[Device]
    name: str = ''
    index_padding: int = 0
    legacy_index: bool = False
    source_list_padding: int = 0
    empty_sources: set = field(default_factory=set)
    source_gaps: dict = field(default_factory=dict)   # source -> train IDs without data
    truncate: float | None = None

    def insert(self, position: int, train_id: int, flag: bool) -> None:
        """Add a train to INDEX at *position* (rogue or repeated IDs).

        Parameters
        ----------
        position : int
            Row of ``INDEX/trainId`` to insert at.
        train_id : int
            The train ID.
        flag : bool
            True for a good train, False for one flagged suspect (the writer stores it
            as the format's ``INDEX/flag`` value).
        """
        self.train_ids = np.insert(self.train_ids, position, np.uint64(train_id))
        self.flags = np.insert(self.flags, position, flag)

    def remove(self, train_ids: ArrayLike) -> bool:
        """Drop trains from this file.

        Parameters
        ----------
        train_ids : array_like
            The train IDs to drop.

        Returns
        -------
        bool
            True if any of them was in the file.
        """
        keep = ~np.isin(self.train_ids, train_ids)
        self.train_ids, self.flags = self.train_ids[keep], self.flags[keep]
        return not keep.all()

    @property
    def sources(self) -> list[str]:
        """Sorted names of the sources the file holds."""
        return sorted(s for d in self.devices for s in d.sources)


class RunPlan:
    """Everything about a generated run before (and after) it is written.

    Parameters
    ----------
    n_trains, first_train_id : int
        The run has trains ``first_train_id .. first_train_id + n_trains - 1``.
    format_version : {'0.5', '1.0', '1.1', '1.2', '1.3'}
    devices : iterable of Device or MultiModuleDetector, optional
        Default :func:`default_devices`.
    trains_per_file : int or mapping
        Sequence file length in trains. An int applies to every aggregator, except that
        the 2nd, 4th.. ``DA`` aggregators (``DA02``...) start with a file of half that
        length, so sequence boundaries differ between aggregators. A mapping gives the
        length per aggregator name, with ``'*'`` as the default (10).
    run_number, proposal : int
    data_class : {'RAW', 'CORR'}, optional
        File name prefix; default 'CORR' if any detector module is corrected, else 'RAW'.
    defects : iterable
        Defect objects from :mod:`exfel_data.testing.defects`, applied in order.
    preallocate : bool
        Make INSTRUMENT datasets longer than used (rounded up to 32 rows), as the DAQ does.
    """

    def __init__(self, n_trains: int = 20, first_train_id: int = 10000,
                 format_version: str = '1.3', devices: Iterable | None = None,
                 trains_per_file: int | Mapping[str, int] = 10, run_number: int = 1,
                 proposal: int = 700000, data_class: str | None = None,
                 defects: Iterable = (), preallocate: bool = True):
        if format_version not in FORMAT_VERSIONS:
            raise ValueError(f"format_version={format_version!r}; choose from "
                             f"{FORMAT_VERSIONS}")
        if n_trains < 1 or first_train_id < 1:
            raise ValueError("need n_trains >= 1 and first_train_id >= 1")
        self.format_version = format_version
        self.train_ids = np.arange(first_train_id, first_train_id + n_trains, dtype=np.uint64)
        self.devices: list[Device] = _flatten(default_devices() if devices is None else devices)
        self.run_number, self.proposal = run_number, proposal
        self.preallocate = preallocate
        if data_class is None:
            data_class = 'CORR' if any(getattr(d, 'raw', True) is False
                                       for d in self.devices) else 'RAW'
        if data_class not in ('RAW', 'CORR'):
            raise ValueError(f"data_class={data_class!r}; choose 'RAW' or 'CORR'")
        self.data_class = data_class
        self._check_unique_sources()
        self.files: list[FilePlan] = self._layout(trains_per_file)
        self.defects = list(defects)
        self.defect_log: list = []
        for defect in self.defects:
            defect.apply(self)
        self.files = [f for f in self.files if len(f.train_ids)]

    def __repr__(self) -> str:
        return (f'RunPlan({len(self.train_ids)} trains from {int(self.train_ids[0])}, '
                f'format {self.format_version}, {len(self.devices)} devices, '
                f'{len(self.files)} files, defects={self.defects!r})')

    # -- layout ------------------------------------------------------------------------
    def _check_unique_sources(self) -> None:
        seen = {}
        for d in self.devices:
            for s in d.sources:
                if s in seen:
                    raise ValueError(f"Source {s!r} comes from both {seen[s]!r} and {d!r}")
                seen[s] = d

    @property
    def aggregators(self) -> list[str]:
        """Sorted aggregator names of the run's devices."""
        return sorted({d.aggregator for d in self.devices})

    @property
    def sources(self) -> list[str]:
        """Sorted names of all the run's sources."""
        return sorted(s for d in self.devices for s in d.sources)

    def _layout(self, trains_per_file) -> list[FilePlan]:
        files = []
        da = [a for a in self.aggregators if a.startswith('DA')]
        for agg in self.aggregators:
            if isinstance(trains_per_file, Mapping):
                size = trains_per_file.get(agg, trains_per_file.get('*', 10))
            else:
                size = trains_per_file
            size = max(1, int(size))
            first = size // 2 if (agg in da and da.index(agg) % 2 == 1 and size > 1) else size
            bounds = [0] + list(range(first, len(self.train_ids), size)) + [len(self.train_ids)]
            devices = [d for d in self.devices if d.aggregator == agg]
            for seq, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                tids = self.train_ids[a:b]
                name = f'{self.data_class}-R{self.run_number:04d}-{agg}-S{seq:05d}.h5'
                files.append(FilePlan(agg, seq, tids, np.ones(len(tids), bool), devices, name))
        return files

    def file(self, aggregator: str, sequence: int) -> FilePlan:
        """The planned file of one aggregator and sequence number.

        Parameters
        ----------
        aggregator : str
            E.g. ``'DA01'``.
        sequence : int
            The sequence number.

        Returns
        -------
        FilePlan

        Raises
        ------
        ValueError
            No such file is planned (the message lists the planned ones).
        """
        for f in self.files:
            if f.aggregator == aggregator and f.sequence == sequence:
                return f
        have = sorted((f.aggregator, f.sequence) for f in self.files)
        raise ValueError(f"No file for aggregator {aggregator!r} sequence {sequence}; "
                         f"planned: {have}")

    def device(self, source: str) -> Device:
        """The device (after defects) that writes *source*.

        Parameters
        ----------
        source : str
            A source name of the run.

        Returns
        -------
        Device

        Raises
        ------
        KeyError
            No device writes it (the message lists the run's sources).
        """
        for d in self.devices:
            if source in d.sources:
                return d
        raise KeyError(f"No device writes source {source!r}; sources: {self.sources}")

    def replace_device(self, index: int, new: Device) -> None:
        """Put *new* in place of device *index*, in the plan and in its files (for defects).

        Parameters
        ----------
        index : int
            Position in :attr:`devices`.
        new : Device
            The replacement (usually ``old.derive(...)``).
        """
        old = self.devices[index]
        self.devices[index] = new
        for f in self.files:
            f.devices = [new if d is old else d for d in f.devices]

    def affected_train_ids(self, defect: object) -> np.ndarray:
        """Train IDs a defect touched (see its docstring for their meaning).

        Parameters
        ----------
        defect : object
            One of the plan's defects.

        Returns
        -------
        numpy.ndarray
            Sorted unique uint64 train IDs.

        Raises
        ------
        ValueError
            *defect* is not one of the plan's.
        """
        recs = [r.train_ids for r in self.defect_log if r.defect == defect]
        if not recs:
            raise ValueError(f"{defect!r} is not a defect of this plan")
        return np.unique(np.concatenate(recs)).astype(np.uint64)

    def valid_train_ids(self, include_unreadable: bool = False) -> np.ndarray:
        """Sorted union of the good train IDs of the files, as a correct reader reports them.

        Leaves out train IDs flagged suspect (rogue, repeated copies, zeros), padding, and
        (unless *include_unreadable*) the trains only held by truncated files.

        Parameters
        ----------
        include_unreadable : bool
            Count the trains of truncated files too.

        Returns
        -------
        numpy.ndarray
            uint64.
        """
        tids = [f.train_ids[f.flags] for f in self.files
                if include_unreadable or f.truncate is None]
        return np.unique(np.concatenate(tids)) if tids else np.array([], np.uint64)

    def source_train_ids(self, source: str, include_unreadable: bool = False) -> np.ndarray:
        """Sorted good train IDs in which *source* has data.

        A train counts when the source has a non-zero count in some index group.

        Parameters
        ----------
        source : str
            A source name of the run.
        include_unreadable : bool
            Count the trains of truncated files too.

        Returns
        -------
        numpy.ndarray
            uint64.
        """
        dev = self.device(source)
        spec = dev.spec(source)
        tids = []
        for f in self.files:
            if dev not in f.devices or not (include_unreadable or f.truncate is None):
                continue
            counts = self._counts(f, dev, spec)
            has_data = np.any([c > 0 for c in counts.values()], axis=0) & f.flags
            tids.append(f.train_ids[has_data])
        return np.unique(np.concatenate(tids)) if tids else np.array([], np.uint64)

    # -- writing -----------------------------------------------------------------------
    def write(self, path: str | os.PathLike, progress: bool | None = None,
              overwrite: bool = False) -> Path:
        """Write all files into the run folder *path* (created if needed); return it.

        Parameters
        ----------
        path : path
            The run folder.
        progress : bool, optional
            Show a tqdm bar (None: only on a terminal).
        overwrite : bool
            Delete the ``.h5`` files already in the folder first (so runs are never mixed).

        Returns
        -------
        pathlib.Path

        Raises
        ------
        FileExistsError
            The folder holds ``.h5`` files and *overwrite* is False.
        """
        run_dir = Path(path)
        run_dir.mkdir(parents=True, exist_ok=True)
        existing = sorted(run_dir.glob('*.h5'))
        if existing and not overwrite:
            raise FileExistsError(
                f"{run_dir} already holds {len(existing)} HDF5 files (e.g. {existing[0].name}); "
                "choose an empty folder or pass overwrite=True to replace them"
            )
        for old in existing:
            old.unlink()
        disable = None if progress is None else not progress
        for fp in tqdm(self.files, desc='Writing run files', unit='file', disable=disable):
            self._write_file(fp, run_dir / fp.name)
        return run_dir

    def _write_file(self, fp: FilePlan, path: Path) -> None:
        with ExdfWriter(path, fp.train_ids, format_version=self.format_version,
                        flags=fp.flags, index_padding=fp.index_padding,
                        legacy_index=fp.legacy_index, run_number=self.run_number,
                        proposal=self.proposal, sequence=fp.sequence,
                        source_list_padding=fp.source_list_padding) as w:
            for dev in fp.devices:
                for spec in dev.source_specs:
                    counts = self._counts(fp, dev, spec)
                    if spec.section == 'CONTROL':
                        w.add_control_source(spec.name, counts[''])
                        self._write_run_values(w, dev, spec)
                    else:
                        w.add_instrument_source(spec.name, counts, legacy_name=spec.legacy_name,
                                                section=spec.section)
                    for kspec in spec.keys.values():
                        group = '' if spec.section == 'CONTROL' else kspec.group
                        self._write_key(w, spec, kspec, fp.train_ids, counts[group])
        if fp.truncate is not None:
            os.truncate(path, int(path.stat().st_size * fp.truncate))

    @staticmethod
    def _counts(fp: FilePlan, dev: Device, spec) -> dict[str, np.ndarray]:
        if spec.name in fp.empty_sources:
            return {g: np.zeros(len(fp.train_ids), np.int64) for g in spec.index_groups}
        counts = {g: dev.counts(spec.name, g, fp.train_ids) for g in spec.index_groups}
        gaps = fp.source_gaps.get(spec.name)
        if gaps is not None:
            for c in counts.values():
                c[np.isin(fp.train_ids, gaps)] = 0
        return counts

    def _write_run_values(self, w: ExdfWriter, dev: Device, spec) -> None:
        # RUN holds the configuration at run start: every control key's first value, plus
        # keys only found there (classId...).
        first = self.train_ids[:1]
        for kspec in spec.keys.values():
            w.add_run_key(spec.name, kspec.name, Device.rows(kspec, first, [1])[0],
                          attrs=kspec.attrs)
        for key, value in spec.run_values.items():
            if key not in spec.keys:
                w.add_run_key(spec.name, key, value)

    def _write_key(self, w: ExdfWriter, spec, kspec: KeySpec, train_ids, counts) -> None:
        used = int(np.sum(counts))
        if spec.section == 'CONTROL':
            w.add_control_key(spec.name, kspec.name, kspec.dtype, kspec.entry_shape,
                              attrs=kspec.attrs)
        else:
            rows = -(-used // 32) * 32 if self.preallocate else used
            w.add_instrument_key(spec.name, kspec.name, kspec.dtype, kspec.entry_shape,
                                 rows=rows, chunks=kspec.chunks, attrs=kspec.attrs,
                                 compression=kspec.compression)
        if not used:
            return
        row_bytes = max(1, int(np.prod(kspec.entry_shape)) * np.dtype(kspec.dtype).itemsize)
        max_rows = max(1, BLOCK_BYTES // row_bytes)
        counts = np.asarray(counts, dtype=np.int64)
        ends = np.cumsum(counts)
        start_train, start_row = 0, 0
        while start_train < len(train_ids):
            # Whole trains per block, as many as fit in BLOCK_BYTES (at least one).
            stop = int(np.searchsorted(ends, start_row + max_rows, side='right'))
            stop = max(stop, start_train + 1)
            block = Device.rows(kspec, train_ids[start_train:stop], counts[start_train:stop])
            w.write(spec.name, kspec.name, block, start_row)
            start_row += len(block)
            start_train = stop


def _flatten(devices) -> list[Device]:
    out = []
    for d in devices:
        if isinstance(d, MultiModuleDetector):
            out.extend(d.modules)
        elif isinstance(d, Device):
            out.append(d)
        else:
            raise TypeError(f"Not a simulated device: {d!r} (use exfel_data.testing devices)")
    return out


def make_run(path: str | os.PathLike, n_trains: int = 20, first_train_id: int = 10000,
             format_version: str = '1.3',
             devices: Iterable | None = None, trains_per_file: int | Mapping[str, int] = 10,
             run_number: int = 1, proposal: int = 700000, data_class: str | None = None,
             defects: Iterable = (), preallocate: bool = True,
             progress: bool | None = None, overwrite: bool = False) -> Path:
    """Write a realistic run folder and return its path.

    Parameters
    ----------
    path : str or Path
        The run folder itself (created if needed); files are named
        ``<CLASS>-R<run:04d>-<AGGREGATOR>-S<seq:05d>.h5``.
    n_trains, first_train_id, format_version, devices, trains_per_file, run_number, \
proposal, data_class, defects, preallocate
        See :class:`RunPlan`.
    progress : bool, optional
        Show a tqdm bar over files (default: only on a terminal).
    overwrite : bool
        Delete ``.h5`` files already in *path* instead of refusing to write.

    Returns
    -------
    Path
        *path*. Use ``RunPlan(...)`` and ``plan.write(path)`` instead to keep the plan
        (files, train IDs, defect records, devices after defects).
    """
    plan = RunPlan(n_trains, first_train_id, format_version, devices, trains_per_file,
                   run_number, proposal, data_class, defects, preallocate)
    return plan.write(path, progress=progress, overwrite=overwrite)



def proposal_run_dir(root: str | os.PathLike, proposal: int = 700000, run: int = 1, *,
                     instrument: str = 'SPB',
                     cycle: str = '202401', data: str = 'raw') -> Path:
    """The facility's folder for a run: ``<root>/<INSTRUMENT>/<CYCLE>/p<NNNNNN>/<data>/r<NNNN>``.

    Use it as ``make_run``'s path to test code that finds runs by proposal and run number.
    The folder is not created.

    Parameters
    ----------
    root : path
        Stands for the facility's data root.
    proposal, run : int
        Proposal and run number.
    instrument : str
        E.g. ``'SPB'``.
    cycle : str
        E.g. ``'202401'``.
    data : {'raw', 'proc', 'usr', 'scratch'}
        The data class folder.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        An unknown *data*.
    """
    if data not in ('raw', 'proc', 'usr', 'scratch'):
        raise ValueError(f"data={data!r}; choose 'raw', 'proc', 'usr' or 'scratch'")
    return Path(root, instrument, str(cycle), f'p{proposal:06d}', data, f'r{run:04d}')
