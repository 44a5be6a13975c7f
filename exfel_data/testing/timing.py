"""A simulated timeserver: the bunch pattern table that tells which pulses went where.

The table has one uint32 entry per 4.5 MHz bunch slot (pulse ID). Its bits follow the XFEL
timing system specification as EXtra's ``XrayPulses`` and the ``euxfel_bunch_pattern`` package
decode them: bits 0-3 charge, bits 18-21 destination (4 = T4D, the SASE1/SASE3 dump; 2 = T5D,
the SASE2 dump) and bit 27 the photon line deflection (soft kick) that sends a T4D bunch to
SASE3 instead of SASE1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .devices import Device, KeySpec, SourceSpec, train_id_fill

__all__ = ['Timeserver', 'bunch_pattern_table']

CHARGE_BITS = 0x6                 # a charge code (0.13 nC); only "non-zero" matters here
DESTINATION_SHIFT = 18
DESTINATION_T4D = 4               # SASE1 / SASE3 dump
DESTINATION_T5D = 2               # SASE2 dump
SOFT_KICK = 1 << 27               # photon line deflection: T4D bunch goes to SASE3

# Pulse IDs per SASE of the default pattern: 64 pulses at 1.1 MHz for SASE1 (every 4th slot),
# 32 at 2.25 MHz for SASE2 and 20 at 1.1 MHz for SASE3 (kicked out of the SASE1 train).
DEFAULT_PULSES = {1: range(200, 456, 4), 2: range(1000, 1064, 2), 3: range(1500, 1580, 4)}


def bunch_pattern_table(pulse_ids: Mapping[int, Sequence[int]],
                        length: int = 4096) -> np.ndarray:
    """One train's bunch pattern table with X-ray pulses at *pulse_ids* of each SASE.

    Parameters
    ----------
    pulse_ids : mapping of int to sequence of int
        ``{sase: pulse IDs}`` with sase in 1, 2, 3.
    length : int
        Entries of the table (4096 since 2025; older data has 2700 or 3611).

    Returns
    -------
    numpy.ndarray
        uint32, shape (length,).

    Raises
    ------
    ValueError
        An unknown SASE, a pulse ID outside the table, or two SASEs sharing a pulse ID.
    """
    table = np.zeros(length, dtype=np.uint32)
    for sase, ids in pulse_ids.items():
        if sase not in (1, 2, 3):
            raise ValueError(f"SASE {sase!r} unknown; the bunch pattern has SASE 1, 2, 3")
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= length):
            raise ValueError(f"SASE {sase} pulse IDs {ids.min()}..{ids.max()} do not fit a "
                             f"table of {length} entries")
        if np.any(table[ids]):
            raise ValueError(f"SASE {sase} pulse IDs overlap another SASE's")
        destination = DESTINATION_T5D if sase == 2 else DESTINATION_T4D
        entry = CHARGE_BITS | (destination << DESTINATION_SHIFT)
        if sase == 3:
            entry |= SOFT_KICK
        table[ids] = entry
    return table


class Timeserver(Device):
    """The facility timeserver: control source and ``<name>:outputBunchPattern``.

    The instrument source has ``data.bunchPatternTable`` (T, length) uint32 and
    ``data.trainId``; the control source ``bunchPatternTable`` (as older timeservers recorded
    it) and RUN ``classId`` ``'TimeServer'``. Every train has the same pattern.

    Parameters
    ----------
    name : str
        The control source name (EXtra finds timeservers by class and by names like
        ``SPB_RR_SYS/TSYS/TIMESERVER``).
    aggregator : str, optional
        The files' aggregator (default ``'DA01'``).
    pulses : mapping of int to sequence of int, optional
        ``{sase: pulse IDs}`` (default: ``DEFAULT_PULSES``, 64 pulses to SASE1).
    length : int
        Entries of the table.
    """

    def __init__(self, name: str = 'SPB_RR_SYS/TSYS/TIMESERVER', aggregator: str | None = None,
                 pulses: Mapping[int, Sequence[int]] | None = None, length: int = 4096):
        super().__init__(name, aggregator)
        self.pulses = {s: list(ids) for s, ids in (pulses or DEFAULT_PULSES).items()}
        self.length = length
        self.table = bunch_pattern_table(self.pulses, length)   # checks the pulses early

    def pulse_ids(self, sase: int) -> np.ndarray:
        """The pulse IDs of one SASE in every train (int64, sorted).

        Parameters
        ----------
        sase : int
            1, 2 or 3.

        Returns
        -------
        numpy.ndarray
        """
        return np.sort(np.asarray(self.pulses.get(sase, []), dtype=np.int64))

    def _table_fill(self, tids: ArrayLike, frames: ArrayLike) -> np.ndarray:
        return np.tile(self.table, (len(tids), 1))

    def _build(self) -> list[SourceSpec]:
        entry = (self.length,)
        control = {'bunchPatternTable': KeySpec('bunchPatternTable', np.uint32, entry,
                                                self._table_fill)}
        output = {k.name: k for k in [
            KeySpec('data.bunchPatternTable', np.uint32, entry, self._table_fill),
            KeySpec('data.trainId', np.uint64, (), train_id_fill()),
        ]}
        return [SourceSpec(self.name, 'CONTROL', control, run_values={'classId': 'TimeServer'}),
                SourceSpec(f'{self.name}:outputBunchPattern', 'INSTRUMENT', output)]
