"""The live runner's one reducer: workers' results in, partial and final results out.

Results arrive as the workers finish (status byte and payload of the wire in
:mod:`bridge.process_worker`); with a :class:`ReorderBuffer` they are reduced in the
order their trains arrived. A failing ``Reducer.add()`` or ``partial()`` raises
:class:`ReducerError` naming the train, with the user's traceback.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge import process_worker as pw
from bridge.process_reorder import ReorderBuffer
from exfel_data.analysis.contract import (
    Analysis,
    AnalysisSpec,
    ReducerError,
    check_result,
    user_traceback,
)
from exfel_data.analysis.result import AnalysisResult, result_from_reducer
from exfel_data.analysis.stats import RunStats

__all__ = ["LiveReduction"]

_LOST = b"lost"  # the status of a train whose worker died (counted by RunStats.lose)


class LiveReduction:
    """The reducer of a live run, fed with the workers' results.

    Parameters
    ----------
    analysis : Analysis
        The loaded analysis (its ``Reducer`` is made here).
    spec : AnalysisSpec
        Where it came from (named in errors and the result).
    params : dict
        Its resolved parameters.
    stats : RunStats
        Counts updated here: reduced, empty, failed, late.
    train_ids : list of int
        Appended with the ID of each reduced train.
    reorder : ReorderBuffer, optional
        Reduce in the order the trains arrived (bounded).
    report : callable
        Called with the first ``process`` failure's message.
    """

    def __init__(self, analysis: Analysis, spec: AnalysisSpec, params: dict, stats: RunStats,
                 train_ids: list[int], reorder: ReorderBuffer | None,
                 report: Callable[[str], None]):
        self.reducer = analysis.make_reducer(params)
        self.spec, self.params, self.stats, self.train_ids = spec, params, stats, train_ids
        self.reorder, self.report = reorder, report
        self.last_train_id = 0

    def deliver(self, seq: int, train_id: int, status: bytes, payload: list) -> None:
        """Take a worker's answer for the train of sequence number ``seq``."""
        if status == pw.RESULT:
            value = pw.unpack(payload)
        elif status == pw.ERROR:
            value = (payload[0].bytes.decode(), payload[1].bytes.decode())
        else:
            value = None
        items = [(train_id, status, value)]
        if self.reorder is not None:
            items = self.reorder.push(seq, items[0])
            self.stats.late = self.reorder.late
        for item in items:
            self._apply(*item)

    def lost(self, seq: int, train_id: int) -> None:
        """A train that will never come back (its worker died): the reorder buffer moves on."""
        if self.reorder is not None:
            for item in self.reorder.push(seq, (train_id, _LOST, None)):
                self._apply(*item)

    def _apply(self, train_id: int, status: bytes, value) -> None:
        stats = self.stats
        if status == pw.RESULT:
            try:
                self.reducer.add(train_id, value)
            except Exception as exc:
                tb = user_traceback(exc)
                raise ReducerError(f"Reducer.add() of {self.spec.name} failed at train "
                                   f"{train_id}:\n{tb}", train_id, tb) from None
            stats.reduced += 1
            stats.saw(train_id)
            self.train_ids.append(train_id)
            self.last_train_id = train_id
        elif status == pw.EMPTY:
            stats.empty += 1
        elif status == pw.ERROR:
            stats.failure(train_id, value[0], value[1], self.report)

    def partial(self) -> dict:
        """The reducer's ``partial()``, checked."""
        try:
            data = self.reducer.partial()
        except Exception as exc:
            tb = user_traceback(exc)
            raise ReducerError(f"Reducer.partial() of {self.spec.name} failed:\n{tb}",
                               self.last_train_id, tb) from None
        return check_result(data, "Reducer.partial()")

    def final(self, input_label: str, stopped: str) -> AnalysisResult:
        """The result at the end: the trains still held for reordering reduced first."""
        if self.reorder is not None:
            for item in self.reorder.flush():
                self._apply(*item)
        return result_from_reducer(self.reducer, self.spec, self.params, self.train_ids,
                                   self.stats, "live", input_label, stopped)
