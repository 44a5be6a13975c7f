"""The final result of an analysis run: in memory (:class:`AnalysisResult`) and in HDF5.

File layout (written under a temporary name and renamed when complete)::

    /result/<key>        one dataset per result key (arrays, numbers, strings)
    /train_ids           uint64, the trains whose results were reduced (sorted)
    /state/reducer       part files only: the pickled Reducer, for merging parts
    attributes of /      analysis (path or module), analysis_sha256, params (JSON), stats
                         (JSON: counts), mode (live / offline / part / merged), input,
                         complete (False if the run stopped early), stopped (why), created
    attributes of /params  each parameter (JSON text where HDF5 cannot hold it)
"""

from __future__ import annotations

import datetime
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..write.output import atomic_output
from .contract import AnalysisError, AnalysisSpec, check_result
from .stats import RunStats

__all__ = ["AnalysisResult", "write_result", "read_result"]

FORMAT = 1


@dataclass
class AnalysisResult:
    """A run's final result with what produced it.

    ``result[key]`` is ``result.data[key]``.

    Parameters
    ----------
    data : dict
        The reducer's final dict (flattened keys).
    params : dict
        The parameters used.
    analysis, analysis_sha256 : str
        The analysis file (or module) and the hash of its text.
    train_ids : numpy.ndarray
        Trains whose results were reduced.
    stats : RunStats
        What happened to the run's trains.
    mode : str
        ``'offline'``, ``'part'`` (one ``--part i/N`` share) or ``'live'``.
    input : str
        What was processed (run folder or stream endpoint).
    complete : bool
        False if the run stopped early (reducer error, interruption).
    stopped : str
        Why it stopped early.
    extra : dict
        Other facts stored with the result (e.g. ``part``).
    """

    data: dict
    params: dict
    analysis: str
    analysis_sha256: str
    train_ids: np.ndarray
    stats: RunStats
    mode: str = "offline"
    input: str = ""
    complete: bool = True
    stopped: str = ""
    extra: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        return self.data[key]

    def __repr__(self) -> str:
        keys = ", ".join(self.data)
        state = "complete" if self.complete else f"incomplete: {self.stopped}"
        return (f"<AnalysisResult {Path(self.analysis).name} ({self.mode}, {state}): "
                f"{keys}; {self.stats.summary()}>")


def _json(value) -> str:
    return json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


def write_result(path: str | os.PathLike, result: AnalysisResult, overwrite: bool = False,
                 reducer_state: bytes | None = None) -> Path:
    """Write ``result`` to the HDF5 file ``path`` (temporary name, then renamed).

    Parameters
    ----------
    path : path
        The result file.
    result : AnalysisResult
        What to write.
    overwrite : bool
        Replace an existing file (only once the new one is complete).
    reducer_state : bytes, optional
        The pickled reducer, stored so that part files can be merged later.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    AnalysisError
        ``result.data`` holds a value that cannot be stored.
    """
    data = check_result(result.data, "the final result")
    path = Path(path)
    with atomic_output(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({
                "exfel_data_analysis": FORMAT, "analysis": result.analysis,
                "analysis_sha256": result.analysis_sha256, "params": _json(result.params),
                "stats": _json(result.stats.as_dict()), "mode": result.mode,
                "input": result.input, "complete": result.complete,
                "stopped": result.stopped, "extra": _json(result.extra),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            })
            group = f.create_group("result")
            for key, value in data.items():
                if isinstance(value, str):
                    group.create_dataset(key, data=value, dtype=h5py.string_dtype())
                else:
                    group.create_dataset(key, data=value)
            pgroup = f.create_group("params")
            for name, value in result.params.items():
                try:
                    pgroup.attrs[name] = value
                except (TypeError, ValueError):
                    pgroup.attrs[name] = _json(value)
            f.create_dataset("train_ids", data=np.sort(np.asarray(result.train_ids,
                                                                  dtype=np.uint64)))
            if reducer_state is not None:
                f.create_dataset("state/reducer", data=np.frombuffer(reducer_state, np.uint8))
    return path


def read_result(path: str | os.PathLike) -> AnalysisResult:
    """Read a result file written by ``exfel-data process`` or ``exfel-bridge process``.

    Parameters
    ----------
    path : path
        The result file.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    AnalysisError
        The file is not an analysis result file.
    """
    result, _ = read_result_and_state(path)
    return result


def read_result_and_state(path: str | os.PathLike) -> tuple[AnalysisResult, bytes | None]:
    """The result and, for part files, the pickled Reducer (bytes)."""
    with h5py.File(path, "r") as f:
        if "exfel_data_analysis" not in f.attrs:
            raise AnalysisError(f"{path} is not an analysis result file (written by "
                                "exfel-data process / exfel-bridge process)")
        attrs = dict(f.attrs)
        data = {}
        for key, ds in f["result"].items():
            value = ds[()]
            if isinstance(value, bytes):
                value = value.decode()
            data[key] = value
        state = f["state/reducer"][()].tobytes() if "state/reducer" in f else None
        train_ids = f["train_ids"][()]
    result = AnalysisResult(
        data=data, params=json.loads(attrs["params"]), analysis=str(attrs["analysis"]),
        analysis_sha256=str(attrs["analysis_sha256"]), train_ids=train_ids,
        stats=RunStats.from_dict(json.loads(attrs["stats"])), mode=str(attrs["mode"]),
        input=str(attrs["input"]), complete=bool(attrs["complete"]),
        stopped=str(attrs["stopped"]), extra=json.loads(attrs.get("extra", "{}")))
    return result, state


def result_from_reducer(reducer, spec: AnalysisSpec, params: dict, train_ids, stats: RunStats,
                        mode: str, input: str, stopped: str = "") -> AnalysisResult:
    """Ask the reducer for its final result (``final()``, else ``partial()``).

    A failing ``final()`` after an earlier stop falls back to ``partial()``, so what was
    reduced is still written.
    """
    final = getattr(reducer, "final", None) or reducer.partial
    try:
        data = final()
    except Exception as exc:
        if not stopped or final == reducer.partial:
            raise _reducer_error(spec, "final()", exc) from None
        data = reducer.partial()
    return AnalysisResult(check_result(data, "Reducer.final()"), params, spec.name, spec.sha256,
                          np.asarray(train_ids, np.uint64), stats, mode, input,
                          complete=not stopped, stopped=stopped)


def _reducer_error(spec: AnalysisSpec, what: str, exc: BaseException):
    from .contract import ReducerError, user_traceback

    tb = user_traceback(exc)
    return ReducerError(f"Reducer.{what} of {spec.name} failed:\n{tb}", None, tb)


def pickle_reducer(reducer) -> bytes:
    return pickle.dumps(reducer, protocol=pickle.HIGHEST_PROTOCOL)
