"""Running an analysis over a run's files: in this process, a local pool or dask.distributed.

Python API behind ``exfel-data process``::

    from exfel_data.analysis import run_offline
    result = run_offline("/data/r0238", "analysis.py", params={"threshold": 5},
                         workers=4, out="result.h5")

Workers read their own trains from the files: each task is a share of consecutive trains
(the collection, reopened from its paths on the worker), never train data. With
``Reducer.merge`` each task reduces its share and only the small reducer comes back
(a tree of two levels); without it, per-train results stream back and one reducer adds
them in train order. At most ``2 x workers`` shares are in flight, so memory stays
bounded however long the run. A local worker process that dies loses its share (counted
``lost``, by train ID) and is replaced; the run goes on.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..selection import TrainRange

if TYPE_CHECKING:
    from ..collection import DataCollection
from ..write.output import check_output
from .contract import (
    AnalysisError,
    AnalysisSpec,
    ReducerError,
    resolve_params,
    user_traceback,
)
from .pool import LocalPool, WorkerDied
from .result import (
    AnalysisResult,
    pickle_reducer,
    read_result_and_state,
    result_from_reducer,
    write_result,
)
from .stats import RunStats

__all__ = ["run_offline", "merge_parts"]

_DEATHS_WINDOW_S = 10.0


def _stderr(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


@dataclass
class _Share:
    """What a task sends back for its share of the trains."""

    stats: RunStats
    train_ids: list = field(default_factory=list)
    reducer: Any = None       # merge mode: the share's own Reducer
    items: list | None = None  # stream mode: [(train_id, result)]
    error: ReducerError | None = None


def process_share(spec: AnalysisSpec, params: dict, coll, merge: bool, reducer=None,
                  on_train: Callable[[], None] | None = None,
                  report: Callable[[str], None] | None = None) -> _Share:
    """Run ``process`` on every train of ``coll`` (a share of the run), in a worker.

    With ``reducer`` the results are added to it directly (in-process runs); else with
    ``merge`` into a new Reducer sent back; else they are sent back for the parent to add.
    A reducer failure ends the share with ``error`` set (nothing is raised), so the
    parent stops the run and keeps what was reduced before.
    """
    analysis = spec.load()
    analysis.prepare_worker(params)
    share = _Share(RunStats())
    if reducer is None and merge:
        reducer = share.reducer = analysis.make_reducer(params)
    elif reducer is None:
        share.items = []
    stats = share.stats
    for train_id, data in coll.trains():
        result, error_type, tb = analysis.call_process(train_id, data, params)
        if error_type is not None:
            stats.failure(train_id, error_type, tb, report)
        elif result is None:
            stats.empty += 1
        elif share.items is not None:
            share.items.append((train_id, result))
        else:
            share.error = _add(reducer, spec, train_id, result)
            if share.error is not None:
                return share
            stats.reduced += 1
            stats.saw(train_id)
            share.train_ids.append(train_id)
        if on_train is not None:
            on_train()
    return share


def _add(reducer, spec: AnalysisSpec, train_id: int, result) -> ReducerError | None:
    try:
        reducer.add(train_id, result)
    except Exception as exc:
        tb = user_traceback(exc)
        return ReducerError(f"Reducer.add() of {spec.name} failed at train {train_id}:\n{tb}",
                            int(train_id), tb)
    return None


def _open(run, select: Sequence, trains: TrainRange | str | None,
          part: tuple[int, int] | None):
    """The selected collection, and a description of the input for outputs."""
    from ..collection import DataCollection
    from ..selection import by_index
    from ..write.convert import open_input
    from ..write.select import apply_trains, part_slice, run_name, select_keys

    if isinstance(run, DataCollection):
        coll, name = run, run_name(run)
    else:
        coll, name = open_input(run), os.path.abspath(str(run))
    if select:
        coll = coll.select(select_keys(coll, select))
    coll = apply_trains(coll, trains)
    if part is not None:
        sl = part_slice(len(coll.train_ids), part)
        coll = coll.select_trains(by_index[sl])
    if len(coll.train_ids) == 0:
        raise AnalysisError(f"No trains selected in {name}"
                            + (f" (part {part[0]}/{part[1]})" if part else ""))
    return coll, name


def run_offline(run: str | os.PathLike | DataCollection, analysis: str | os.PathLike | AnalysisSpec,
                params: Mapping[str, Any] | Iterable[str] | None = None, *,
                select: Sequence = (), trains: TrainRange | str | None = None,
                workers: int | None = None, scheduler: str | None = None,
                part: tuple[int, int] | None = None, out: str | os.PathLike | None = None,
                overwrite: bool = False, progress: bool = True,
                chunk_trains: int | None = None,
                report: Callable[[str], None] | None = _stderr) -> AnalysisResult:
    """Run an analysis over the trains of a run and return its final result.

    Parameters
    ----------
    run : str, path-like or DataCollection
        A run folder, one ``.h5`` file, or an opened run / selection.
    analysis : str or path-like
        A ``.py`` file or an importable module providing the contract (docs/analysis.md).
    params : dict or iterable of 'name=value' strings, optional
        Parameters, checked against the analysis' ``PARAMS``.
    select : sequence of str, optional
        ``'SRC_GLOB'`` / ``'SRC_GLOB[KEY_GLOB]'``: only these sources and keys are read.
    trains : str or TrainRange, optional
        ``'START:STOP[:STEP]'`` positions or ``'id:FIRST:STOP'`` train IDs.
    workers : int, optional
        Local worker processes (default: this process only). With ``scheduler``, the
        number of workers to plan shares for (default: those connected).
    scheduler : str, optional
        Address of a dask.distributed scheduler (``tcp://host:8786``) or a
        ``distributed.Client``; workers must see the run's files.
    part : (int, int), optional
        Only part ``i`` of ``N`` of the trains; ``out`` is then a part file for
        :func:`merge_parts` (needs ``Reducer.merge``).
    out : str or path-like, optional
        HDF5 file for the final result (temporary name, renamed when complete).
    overwrite, progress : bool
        Replace ``out`` if it exists; show a tqdm progress bar.
    chunk_trains : int, optional
        Trains per task (default: a few tasks per worker, at most 64).
    report : callable, optional
        Called with the text of the first ``process`` failure (default: stderr).

    Returns
    -------
    AnalysisResult
        ``.data`` (the final dict), ``.params``, ``.train_ids``, ``.stats``.

    Raises
    ------
    AnalysisError
        Bad analysis file, parameters, selection, or a result that breaks the contract.
    ReducerError
        The reducer raised; with ``out``, what was reduced before is written first
        (``complete=False``).
    """
    spec = AnalysisSpec.from_path_or_module(analysis)
    loaded = spec.load()
    params = resolve_params(loaded, params)
    if part is not None and not loaded.can_merge:
        raise AnalysisError(f"--part needs Reducer.merge(other) in {spec.name} to join "
                            "the parts afterwards; add it, or run without --part")
    if out is not None:
        out = check_output(out, overwrite)
    local = bool(workers and workers > 1 and scheduler is None)
    from ..signals import stop_on_signals

    # With local workers SIGTERM, like Ctrl-C, stops them (no orphans) and then us.
    with stop_on_signals(checkpoints=True) if local else contextlib.nullcontext():
        return _run(spec, loaded, params, run, select, trains, workers, scheduler, part,
                    out, overwrite, progress, chunk_trains, report, local)


def _run(spec, loaded, params, run, select, trains, workers, scheduler, part, out,
         overwrite, progress, chunk_trains, report, local) -> AnalysisResult:
    pool = LocalPool(workers) if local else None  # forked before files are opened
    try:
        coll, name = _open(run, select, trains, part)
        reducer = loaded.make_reducer(params)
        stats, train_ids = RunStats(), []
        bar = _bar(len(coll.train_ids), progress, spec.label)
        stopped = ""
        try:
            if pool is None and scheduler is None:
                share = process_share(spec, params, coll, False, reducer,
                                      on_train=bar.update if bar else None, report=report)
                stats.add(share.stats)
                train_ids = share.train_ids
                error = share.error
            else:
                error = _run_parallel(spec, params, coll, loaded.can_merge, reducer, pool,
                                      scheduler, workers, chunk_trains, stats, train_ids,
                                      bar, report)
        finally:
            if bar is not None:
                bar.close()
        if error is not None:
            stopped = f"the reducer failed at train {error.train_id}"
        mode = "part" if part else "offline"
        result = result_from_reducer(reducer, spec, params, train_ids, stats, mode, name,
                                     stopped)
        if part:
            result.extra["part"] = list(part)
        if out is not None:
            write_result(out, result, overwrite,
                         pickle_reducer(reducer) if part else None)
        if error is not None:
            if out is not None:
                error.args = (f"{error.args[0]}\nStopped; the {stats.reduced} trains "
                              f"reduced before were written to {out} (complete=False).",)
            raise error
        return result
    except BaseException:
        if pool is not None:
            pool.shutdown(terminate=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown()


def _bar(total: int, show: bool, label: str):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="train", desc=f"process {label}", dynamic_ncols=True,
                file=sys.stderr)


def _run_parallel(spec, params, coll, merge, reducer, pool, scheduler, workers,
                  chunk_trains, stats, train_ids, bar, report) -> ReducerError | None:
    """Shares on the pool / cluster, folded into ``reducer`` in train order."""
    from ..selection import by_index

    client = _dask_client(scheduler) if pool is None else None
    try:
        if client is not None:
            workers = workers or len(client.scheduler_info()["workers"]) or 1
        n = len(coll.train_ids)
        size = chunk_trains or max(1, min(math.ceil(n / (4 * workers)), 64 if merge else 16))
        shares = [coll.select_trains(by_index[a:a + size]) for a in range(0, n, size)]
        if client is not None:
            def submit(share):
                return client.submit(process_share, spec, params, share, merge,
                                     pure=False).result
        else:
            def submit(share):
                future = pool.submit(process_share, spec, params, share, merge)
                return lambda: pool.result(future)
        reported = False
        deaths: collections.deque = collections.deque()
        for i, share in _in_order(submit, shares, 2 * workers):
            if isinstance(share, WorkerDied):
                _lost_share(share, shares[i].train_ids, stats, deaths, workers, report)
                if bar is not None:
                    bar.update(len(shares[i].train_ids))
                continue
            if share.error is not None:
                return share.error  # its trains are not merged, nor counted
            stats.add(share.stats)
            if share.stats.first_failure and not reported and report is not None:
                reported = True
                tid, tb = share.stats.first_failure
                report(f"process() failed for train {tid} (further failures are counted, "
                       f"not shown):\n{tb}")
            if share.items is not None:
                for train_id, result in share.items:
                    error = _add(reducer, spec, train_id, result)
                    if error is not None:
                        return error
                    stats.reduced += 1
                    stats.saw(train_id)
                    train_ids.append(train_id)
            elif share.train_ids:
                try:
                    reducer.merge(share.reducer)
                except Exception as exc:
                    tb = user_traceback(exc)
                    return ReducerError(f"Reducer.merge() of {spec.name} failed for the "
                                        f"trains from {share.train_ids[0]}:\n{tb}",
                                        share.train_ids[0], tb)
                train_ids.extend(share.train_ids)
            if bar is not None:
                bar.update(len(shares[i].train_ids))
        return None
    finally:
        if client is not None and not isinstance(scheduler, _client_type()):
            client.close()


def _in_order(submit, items: list, window: int) -> Iterator[tuple[int, Any]]:
    """Results of ``submit(item)`` in order, with at most ``window`` submitted ahead."""
    getters: dict[int, Callable] = {}
    next_submit = next_yield = 0
    while next_yield < len(items):
        while next_submit < len(items) and next_submit - next_yield < window:
            getters[next_submit] = submit(items[next_submit])
            next_submit += 1
        getter = getters.pop(next_yield)
        try:
            value = getter()
        except WorkerDied as exc:
            value = exc  # its share is lost; the others go on
        except (ReducerError, AnalysisError):
            raise
        except _killed_worker_type() as exc:  # dask gave up after its own retries
            value = WorkerDied(None, None, "The dask workers running it died "
                                           f"({type(exc).__name__}: dask's retries, "
                                           "distributed.scheduler.allowed-failures, spent)")
        except Exception as exc:
            raise AnalysisError(f"A worker failed on trains "
                                f"{items[next_yield].train_ids[0]}..: "
                                f"{type(exc).__name__}: {exc}") from exc
        yield next_yield, value
        next_yield += 1


def _lost_share(died: WorkerDied, train_ids, stats: RunStats, deaths: collections.deque,
                workers: int, report) -> None:
    """Count the trains of a dead worker's share lost; stop if workers keep dying."""
    train_ids = list(train_ids)
    stats.lose(train_ids[0], train_ids[-1], len(train_ids))
    if report is not None:
        report(f"{died.description} on trains {train_ids[0]}-{train_ids[-1]}; its "
               f"{len(train_ids)} trains are counted lost; a replacement takes the next "
               "trains")
    now = time.monotonic()
    deaths.append(now)
    while deaths[0] < now - _DEATHS_WINDOW_S:
        deaths.popleft()
    if len(deaths) > max(3, 2 * workers):
        raise AnalysisError(f"{len(deaths)} worker processes died within "
                            f"{_DEATHS_WINDOW_S:g} s (last on trains {train_ids[0]}-"
                            f"{train_ids[-1]}); stopping")


def _killed_worker_type() -> type | tuple:
    """dask's KilledWorker if dask.distributed is in use (an empty tuple: catches nothing)."""
    distributed = sys.modules.get("distributed")
    return distributed.KilledWorker if distributed is not None else ()


def _client_type():
    try:
        from distributed import Client
    except ImportError:
        return ()
    return Client


def _dask_client(scheduler):
    from ..write.base import require

    distributed = require("distributed", "distributed", "--scheduler")
    if isinstance(scheduler, distributed.Client):
        return scheduler
    return distributed.Client(scheduler)


# -- parts --------------------------------------------------------------------------------

def merge_parts(parts: Sequence[str | os.PathLike], out: str | os.PathLike,
                overwrite: bool = False) -> AnalysisResult:
    """Join the part files of ``--part i/N`` runs into one result file ``out``.

    Every part 1..N of one run (same analysis text, same parameters) must be given, in
    any order. The reducers are merged in part order and the merged ``final()`` written.

    Parameters
    ----------
    parts : sequence of path
        The part files.
    out : path
        The merged result file (written under a temporary name, then renamed).
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    AnalysisResult
        The merged result, as written.

    Raises
    ------
    AnalysisError
        A file is not a part file, parts belong to different runs, or parts are missing.
    OutputExistsError
        ``out`` exists and ``overwrite`` is false.
    """
    out = check_output(out, overwrite)
    loaded = []
    for path in parts:
        result, state = read_result_and_state(path)
        if state is None or "part" not in result.extra:
            raise AnalysisError(f"{path} is not a part file (written with --part i/N)")
        loaded.append((result.extra["part"], Path(path), result, state))
    loaded.sort(key=lambda item: item[0][0])
    first = loaded[0][2]
    n = loaded[0][0][1]
    for (i, n_i), path, result, _ in loaded:
        if n_i != n or (result.analysis_sha256, result.params) != (first.analysis_sha256,
                                                                   first.params):
            raise AnalysisError(f"Part {path} ({i}/{n_i}) belongs to another run than "
                                f"{loaded[0][1]}: different analysis text, parameters or "
                                "number of parts")
    have = [item[0][0] for item in loaded]
    if have != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(have))
        raise AnalysisError(f"Parts {have} given; need each of 1..{n} once"
                            + (f" (missing: {missing})" if missing else " (duplicates)"))
    spec = _spec_of(first)
    reducer, stats, train_ids = None, RunStats(), []
    for _, path, result, state in loaded:
        part_reducer = pickle.loads(state)
        if reducer is None:
            reducer = part_reducer
        else:
            try:
                reducer.merge(part_reducer)
            except Exception as exc:
                tb = user_traceback(exc)
                raise ReducerError(f"Reducer.merge() failed for part {path}:\n{tb}", None,
                                   tb) from None
        stats.add(result.stats)
        train_ids.extend(result.train_ids.tolist())
    incomplete = [str(p) for _, p, r, _ in loaded if not r.complete]
    merged = result_from_reducer(reducer, spec, first.params, train_ids, stats, "merged",
                                 first.input, "incomplete parts: " + ", ".join(incomplete)
                                 if incomplete else "")
    write_result(out, merged, overwrite)
    return merged


def _spec_of(result: AnalysisResult) -> AnalysisSpec:
    """Load the analysis a part was made with (needed to unpickle its Reducer)."""
    spec = AnalysisSpec.from_path_or_module(result.analysis)
    if spec.sha256 != result.analysis_sha256:
        raise AnalysisError(f"{result.analysis} changed since the parts were written (its "
                            "sha256 differs); merge with the analysis file the parts were "
                            "made with")
    spec.load()
    return spec
