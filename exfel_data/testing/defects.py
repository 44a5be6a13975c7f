"""Defects real DAQ files show, to put into generated runs on purpose.

Pass instances to ``make_run(..., defects=[...])`` (or :class:`~.runs.RunPlan`). Trains are
given as *positions* in the run (``0`` = ``first_train_id``) or in a file, so a defect means
the same thing whatever the first train ID. After planning, ``plan.defect_log`` holds one
:class:`DefectRecord` per defect with the exact file names and train IDs it touched, and
``plan.affected_train_ids(defect)`` returns those train IDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..write.exdf_writer import STRING_DTYPE
from .devices import KeySpec, string_fill

if TYPE_CHECKING:
    from .runs import RunPlan

__all__ = ['DefectRecord', 'TrailingZeros', 'RogueTrainId', 'RepeatedTrainId',
           'ZeroTrainId', 'MissingTrains', 'SourceGaps', 'FrameCountMismatch',
           'TruncatedFile', 'EmptySource',
           'OverlappingSequences', 'VlenStringKey', 'StructuredKey', 'PaddedSourceList',
           'OldIndexLayout', 'STRUCTURED_DTYPE']


@dataclass
class DefectRecord:
    """What one defect wrote: the files it touched and the train IDs involved.

    Parameters
    ----------
    defect : object
        The defect object applied.
    files : list of str
        Names of the files it touched.
    train_ids : numpy.ndarray
        The train IDs involved (uint64, sorted).
    detail : str
        What exactly was done, in words.
    """

    defect: object
    files: list[str]
    train_ids: np.ndarray
    detail: str = ''


def _record(plan: RunPlan, defect, files, train_ids, detail='') -> None:
    names = [f.name for f in files]
    plan.defect_log.append(
        DefectRecord(defect, names, np.asarray(sorted(train_ids), dtype=np.uint64), detail))


@dataclass(frozen=True)
class TrailingZeros:
    """Append zero rows to every INDEX dataset, as the DAQ preallocates them.

    Every INDEX dataset (trainId, flag, first/count, ...) of the files gets them.
    Affected train IDs: none (zeros are padding).

    Parameters
    ----------
    n : int
        Zero rows to append.
    aggregator : str, optional
        Only the files of this aggregator (None: all files).
    """

    n: int = 3
    aggregator: str | None = None

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        files = [f for f in plan.files if self.aggregator in (None, f.aggregator)]
        for f in files:
            f.index_padding += self.n
        _record(plan, self, files, [], f'{self.n} zero rows after the last train')


@dataclass(frozen=True)
class RogueTrainId:
    """Insert an out-of-order train ID in INDEX of one file, flagged as suspect.

    The entry goes at *position* in ``INDEX/trainId`` of sequence *sequence* of
    *aggregator*; its ID is ``last train ID of the run + offset`` (larger than the trains
    after it). Every source of the file has rows for it (values as for any train), its
    ``INDEX/flag`` is 0 (1 in format 1.1, where 0 means good; no flag in 0.5) and its
    ``INDEX/origin`` 0. Affected train ID: the rogue ID, which must not appear in the run.

    Parameters
    ----------
    aggregator : str
        The files' aggregator, e.g. ``'DA01'``.
    sequence : int
        The file's sequence number.
    position : int
        Row of ``INDEX/trainId`` the rogue entry is inserted at.
    offset : int
        The rogue ID minus the run's last train ID.
    """

    aggregator: str = 'DA01'
    sequence: int = 0
    position: int = 2
    offset: int = 1_000_000

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        f = plan.file(self.aggregator, self.sequence)
        tid = int(plan.train_ids[-1]) + self.offset
        f.insert(self.position, tid, flag=False)
        _record(plan, self, [f], [tid], f'rogue ID at INDEX position {self.position}')


@dataclass(frozen=True)
class RepeatedTrainId:
    """Write one train ID of a file twice in a row; the second copy is flagged suspect.

    The repeated ID is the train at *position* in the file; the copy follows it, has its own
    rows (identical values), ``INDEX/flag`` 0 (1 in 1.1, none in 0.5) and origin 0.
    Affected train ID: the repeated one.

    Parameters
    ----------
    aggregator : str
        The files' aggregator, e.g. ``'DA01'``.
    sequence : int
        The file's sequence number.
    position : int
        Position in the file of the train that is repeated.
    """

    aggregator: str = 'DA01'
    sequence: int = 0
    position: int = 3

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        f = plan.file(self.aggregator, self.sequence)
        tid = int(f.train_ids[self.position])
        f.insert(self.position + 1, tid, flag=False)
        _record(plan, self, [f], [tid], f'copy at INDEX position {self.position + 1}')


@dataclass(frozen=True)
class ZeroTrainId:
    """Replace one train ID in a file's INDEX by 0 (a corrupt row in the middle).

    The row keeps its place and its data rows (the values of train ID 0), with
    ``INDEX/flag`` 0 (1 in 1.1, none in 0.5). Affected train ID: the replaced one, which
    this file then lacks.

    Parameters
    ----------
    aggregator : str
        The files' aggregator, e.g. ``'DA01'``.
    sequence : int
        The file's sequence number.
    position : int
        Row of ``INDEX/trainId`` to replace.
    """

    aggregator: str = 'DA01'
    sequence: int = 0
    position: int = 2

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        f = plan.file(self.aggregator, self.sequence)
        tid = int(f.train_ids[self.position])
        f.train_ids = f.train_ids.copy()
        f.train_ids[self.position] = 0
        f.flags = f.flags.copy()
        f.flags[self.position] = False
        _record(plan, self, [f], [tid], f'train ID 0 at INDEX position {self.position}')


@dataclass(frozen=True)
class MissingTrains:
    """Leave some run trains out of the files of one aggregator (or of every file).

    The trains are absent from the files' ``INDEX/trainId`` (a detector module missing
    trains). With ``aggregator=None`` they are left out of every file: gaps in the run's
    train IDs. Affected train IDs: those trains.

    Parameters
    ----------
    aggregator : str, optional
        The aggregator whose files lose the trains (None: every file).
    positions : tuple of int
        Positions of the trains in the run.
    """

    aggregator: str | None = 'AGIPD03'
    positions: tuple = (1, 2)

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        tids = plan.train_ids[list(self.positions)]
        files = [f for f in plan.files if self.aggregator in (None, f.aggregator)]
        if not files:
            raise ValueError(f"MissingTrains: no files for aggregator {self.aggregator!r}; "
                             f"aggregators: {plan.aggregators}")
        touched = [f for f in files if f.remove(tids)]
        _record(plan, self, touched, tids)


@dataclass(frozen=True)
class SourceGaps:
    """Give one source no data in some run trains that other sources have.

    The trains stay in its files' INDEX but the source's counts are 0 there (all its index
    groups). Affected train IDs: those trains.

    Parameters
    ----------
    source : str
        The source name.
    positions : tuple of int
        Positions of the trains in the run.
    """

    source: str = 'SPB_IRU_MOTORS/MOTOR/X'
    positions: tuple = (4, 5)

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        tids = plan.train_ids[list(self.positions)]
        dev = plan.device(self.source)
        files = [f for f in plan.files if f.aggregator == dev.aggregator
                 and np.isin(tids, f.train_ids).any()]
        for f in files:
            old = f.source_gaps.get(self.source, np.array([], np.uint64))
            f.source_gaps[self.source] = np.union1d(old, tids)
        _record(plan, self, files, tids)


@dataclass(frozen=True)
class FrameCountMismatch:
    """Give one detector module another frame count than the others in some trains.

    Affected train IDs: those trains.

    Parameters
    ----------
    aggregator : str
        The module's aggregator, e.g. ``'AGIPD05'``.
    positions : tuple of int
        Positions of the trains in the run.
    frames : int, optional
        Frames of the module in those trains (default: half its usual count, at least 1).
    """

    aggregator: str = 'AGIPD05'
    positions: tuple = (3,)
    frames: int | None = None

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        tids = plan.train_ids[list(self.positions)]
        for i, dev in enumerate(plan.devices):
            if dev.aggregator == self.aggregator and hasattr(dev, 'frame_overrides'):
                frames = self.frames or max(1, dev.frames_per_train // 2)
                plan.replace_device(i, dev.derive(frame_overrides={
                    **dev.frame_overrides, **{int(t): frames for t in tids}}))
                files = [f for f in plan.files if f.aggregator == self.aggregator
                         and np.isin(tids, f.train_ids).any()]
                _record(plan, self, files, tids, f'{frames} frames instead of '
                        f'{dev.frames_per_train}')
                return
        raise ValueError(f"FrameCountMismatch: no detector module in aggregator "
                         f"{self.aggregator!r}")


@dataclass(frozen=True)
class TruncatedFile:
    """Cut one sequence file short after writing, so HDF5 cannot open it.

    Affected train IDs: the trains that file held.

    Parameters
    ----------
    aggregator : str
        The files' aggregator, e.g. ``'DA01'``.
    sequence : int
        The file's sequence number.
    fraction : float
        The share of its size the file keeps.
    """

    aggregator: str = 'DA02'
    sequence: int = 0
    fraction: float = 0.5

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        f = plan.file(self.aggregator, self.sequence)
        f.truncate = self.fraction
        _record(plan, self, [f], f.train_ids)


@dataclass(frozen=True)
class EmptySource:
    """List a source in its files as usual (METADATA, INDEX, keys) but with no data.

    Every INDEX count is 0 and every dataset has 0 rows. Affected train IDs: all trains of
    its files.

    Parameters
    ----------
    source : str
        The source name.
    """

    source: str = 'SA1_XTD2_XGM/XGM/DOOCS:output'

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        dev = plan.device(self.source)
        files = [f for f in plan.files if f.aggregator == dev.aggregator]
        for f in files:
            f.empty_sources.add(self.source)
        _record(plan, self, files, np.unique(np.concatenate([f.train_ids for f in files])))


@dataclass(frozen=True)
class OverlappingSequences:
    """Write the last train of one sequence file again at the start of the next.

    The same train ID for the same sources is then in two files (a conflict a reader must
    report naming both files). Affected: that train ID.

    Parameters
    ----------
    aggregator : str
        The files' aggregator, e.g. ``'DA01'``.
    sequence : int
        The sequence whose last train is repeated in sequence + 1.
    """

    aggregator: str = 'DA01'
    sequence: int = 0

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        f = plan.file(self.aggregator, self.sequence)
        nxt = plan.file(self.aggregator, self.sequence + 1)
        tid = int(f.train_ids[-1])
        nxt.insert(0, tid, flag=True)
        _record(plan, self, [f, nxt], [tid])


def _add_key(plan: RunPlan, source: str, kspec: KeySpec) -> None:
    for i, dev in enumerate(plan.devices):
        if source in dev.sources:
            plan.replace_device(i, dev.with_key(source, kspec))
            return
    raise ValueError(f"No device has source {source!r}; sources: {plan.sources}")


@dataclass(frozen=True)
class VlenStringKey:
    """Add a control key of variable-length strings whose value changes every train.

    The values are ``b'train <train ID>'`` (``plan.device(source).values(key, tids)`` gives
    them). Affected train IDs: none.

    Parameters
    ----------
    source : str
        The control source to add the key to.
    key : str
        The key's name.
    """

    source: str = 'SA1_XTD2_XGM/XGM/DOOCS'
    key: str = 'status.message'

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        _add_key(plan, self.source, KeySpec(self.key, STRING_DTYPE, (), string_fill(
            'train {tid}')))
        _record(plan, self, [], [])


#: Compound dtype of the key added by :class:`StructuredKey`.
STRUCTURED_DTYPE = np.dtype([('position', '<u4'), ('height', '<f4'), ('valid', 'u1')])


def _structured_fill(n: int):
    def fill(tids, frames):
        out = np.zeros((len(tids), n), dtype=STRUCTURED_DTYPE)
        t = np.asarray(tids, dtype=np.int64)[:, None] % 997
        out['position'] = t + np.arange(1, n + 1)
        out['height'] = (t * 0.5 + np.arange(n)).astype(np.float32) + 1
        out['valid'] = 1
        return out
    return fill


@dataclass(frozen=True)
class StructuredKey:
    """Add an instrument key with the compound dtype :data:`STRUCTURED_DTYPE`.

    Fields position/height/valid, shape (T, n) in the source's ``data`` group (one row per
    train). Affected train IDs: none.

    Parameters
    ----------
    source : str
        The instrument source to add the key to.
    key : str
        The key's name.
    n : int
        Entries per train.
    """

    source: str = 'SA1_XTD2_XGM/XGM/DOOCS:output'
    key: str = 'data.peaks'
    n: int = 4

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        _add_key(plan, self.source, KeySpec(self.key, STRUCTURED_DTYPE, (self.n,),
                                            _structured_fill(self.n)))
        _record(plan, self, [], [])


@dataclass(frozen=True)
class PaddedSourceList:
    """Append empty (``b''``) entries to the METADATA source lists of every file.

    Parameters
    ----------
    n : int
        Empty entries to append.
    """

    n: int = 2

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        for f in plan.files:
            f.source_list_padding = self.n
        _record(plan, self, plan.files, [])


@dataclass(frozen=True)
class OldIndexLayout:
    """Write INDEX ``first``/``last``/``status`` instead of ``first``/``count``.

    As the oldest files did; needs ``format_version='0.5'``.
    """

    def apply(self, plan: RunPlan) -> None:
        """Change *plan* to produce this defect and log it in ``plan.defect_log``.

        Parameters
        ----------
        plan : RunPlan
            The run being planned (before it is written).

        Raises
        ------
        ValueError
            The plan lacks what the defect needs (aggregator, sequence, source or format).
        """
        if plan.format_version != '0.5':
            raise ValueError("OldIndexLayout needs format_version='0.5'")
        for f in plan.files:
            f.legacy_index = True
        _record(plan, self, plan.files, [])
