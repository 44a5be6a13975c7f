"""Converting a selection of a run to another format: planning, parts, workers, merging.

Python API behind ``exfel-data convert`` and ``exfel-data merge``::

    from exfel_data.write.convert import convert, merge
    convert("/data/r0238", "xgm.csv", "csv", select=["SA1_XTD2_XGM/*[*.value]"])

The output is written under a temporary name and renamed when complete (see
:mod:`exfel_data.write.output`). ``part=(i, N)`` converts the i-th of N consecutive
shares of the selected trains into a part output which :func:`merge` joins; ``workers``
does the same with parts converted in parallel by local worker processes,
``scheduler`` on the workers of a dask.distributed cluster; then the parts are merged.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..selection import TrainRange, parse_trains
from ..signals import check_interrupt, mark_worker, stop_on_signals
from .base import Progress
from .formats import FORMATS, writer_class
from .h5output import disk_full_message, is_disk_full
from .merge import merge
from .output import OutputExistsError, atomic_output, check_output, parts_folder, remove_stale
from .plan import BLOCK_BYTES, ConversionError, ConversionPlan, DiskFullError, KeyPlan
from .select import apply_trains, as_selection, part_slice, run_name, select_keys

__all__ = ["FORMATS", "convert", "merge", "build_plan", "open_input", "writer_class",
           "ConversionError", "OutputExistsError"]


def open_input(path: str | os.PathLike):
    """Open a run folder or a single file with the reader (read-only)."""
    from .. import H5File, RunDirectory

    p = Path(path)
    if p.is_file():
        return H5File(str(p))
    if p.is_dir():
        return RunDirectory(str(p))
    raise FileNotFoundError(f"No such run folder or file: {p}")


# -- selecting -------------------------------------------------------------------------

def _timestamps_ns(run) -> np.ndarray:
    try:
        ts = np.asarray(run.train_timestamps())
    except (AttributeError, KeyError, ValueError, OSError):
        return np.zeros(len(run.train_ids), dtype=np.uint64)
    if np.issubdtype(ts.dtype, np.datetime64):
        ns = ts.astype("datetime64[ns]")
        out = ns.view(np.int64).copy()
        out[np.isnat(ns)] = 0
        return out.astype(np.uint64)
    return np.nan_to_num(ts.astype(np.float64)).astype(np.uint64)


def _run_values(run, sources: Iterable[str]) -> dict:
    values: dict = {}
    getter = getattr(run, "get_run_values", None)
    if getter is None:
        return values
    for src in sources:
        if src in getattr(run, "control_sources", ()):
            try:
                values[src] = {k: v for k, v in getter(src).items()
                               if not k.endswith(".timestamp")}
            except (KeyError, ValueError, OSError):
                pass
    return values


def build_plan(run, select: Iterable = (), trains: TrainRange | str | None = None,
               part: tuple[int, int] | None = None, append_detector_modules: bool = False,
               fmt: str = "", block_bytes: int = BLOCK_BYTES, run_path: str = "") -> ConversionPlan:
    """Resolve the selection on an opened run into a :class:`ConversionPlan`."""
    select = list(select)
    if isinstance(trains, str):  # same description for API strings and CLI values
        trains = parse_trains(trains)
    pairs = select_keys(run, select, append_detector_modules)
    run = apply_trains(run, trains)
    n_all = len(run.train_ids)
    if part is not None:
        sl = part_slice(n_all, part)
        if sl.stop <= sl.start:
            raise ConversionError(f"Part {part[0]}/{part[1]} has no trains: only {n_all} "
                                  "trains are selected; use fewer parts")
        from ..selection import by_index

        run = run.select_trains(by_index[sl])
    if len(run.train_ids) == 0:
        raise ConversionError(f"No trains selected in {run_path or run_name(run)} "
                              f"(--trains {trains})")
    keys = []
    for src, key in pairs:
        kd = run[src, key]
        keys.append(KeyPlan(src, key, kd.section, kd, np.dtype(kd.dtype),
                            tuple(kd.entry_shape),
                            np.asarray(kd.data_counts(labelled=False), dtype=np.int64)))
    try:
        metadata = dict(run.run_metadata())
    except (AttributeError, KeyError, ValueError, OSError):
        metadata = {}
    run_path = os.path.abspath(run_path) if run_path else run_name(run)
    description = {
        "format": fmt, "run": run_path,
        "select": [str(as_selection(s)) for s in select],
        "trains": str(trains) if trains is not None else None,
        "append_detector_modules": append_detector_modules,
    }
    return ConversionPlan(
        run_path=run_path,
        train_ids=np.asarray(run.train_ids, np.uint64),
        timestamps=_timestamps_ns(run), keys=keys,
        run_values=_run_values(run, {k.source for k in keys}), metadata=metadata,
        part=part, description=description, block_bytes=block_bytes, run=run)


# -- converting ------------------------------------------------------------------------

def convert(run_path: str | os.PathLike, output: str | os.PathLike, fmt: str, *,
            select: Sequence = (), trains: TrainRange | str | None = None,
            part: tuple[int, int] | None = None, append_detector_modules: bool = False,
            overwrite: bool = False, quiet: bool = True, workers: int | None = None,
            scheduler: str | None = None, block_bytes: int = BLOCK_BYTES,
            **options) -> dict:
    """Convert a selection of a run into ``output`` in format ``fmt``.

    Parameters
    ----------
    run_path : str or path-like
        Run folder or single ``.h5`` file (opened read-only).
    output : str or path-like
        Output file or folder (exdf, png, zarr); must not exist unless ``overwrite``.
    fmt : str
        One of :data:`FORMATS`.
    select : sequence
        ``'SRC_GLOB'`` / ``'SRC_GLOB[KEY_GLOB]'`` strings or ``(src_glob, key_glob)``.
    trains : str or TrainRange, optional
        ``'START:STOP[:STEP]'`` positions or ``'id:FIRST:STOP'`` train IDs.
    part : (int, int), optional
        Convert only part ``i`` of ``N`` (1-based) of the selected trains.
    append_detector_modules : bool
        Also select every module of a multi-module detector one of whose modules is
        selected.
    overwrite, quiet : bool
    workers : int, optional
        Convert this many parts in parallel, each in its own local worker process (forked
        where the platform allows, so they start at once); with ``scheduler``, the
        number of parts.
    scheduler : str, optional
        Address of an existing dask.distributed scheduler to convert on.
    options
        Format options (``png_scale``, ...).

    Returns
    -------
    dict
        ``n_trains``, ``nbytes``, ``seconds``, ``trains_per_s``, ``mb_per_s``, ``output``.

    Raises
    ------
    ConversionError
        The selection does not fit the format, or a worker failed (names what and why);
        :class:`~exfel_data.write.plan.DiskFullError` when the output's disk is full.
    OutputExistsError
        ``output`` exists and ``overwrite`` is false.
    Interrupted
        SIGINT (Ctrl-C) or SIGTERM arrived (a ``KeyboardInterrupt``). In every error case
        nothing named ``output`` is written and the partial output is removed.
    """
    cls = writer_class(fmt)
    output = check_output(output, overwrite)
    if (workers and workers > 1) or scheduler:
        if part is not None:
            raise ConversionError("--part and --workers/--scheduler cannot be combined: "
                                  "each part is already one job")
    remove_stale(output)
    with stop_on_signals(checkpoints=True):
        # Local workers are forked now, before this process opens any HDF5 file: they
        # start in milliseconds with exfel_data and the writer already imported, and
        # inherit no open files.
        pool = _local_pool(workers) if workers and workers > 1 and not scheduler else None
        try:
            run_path = str(run_path)
            run = open_input(run_path)
            plan = build_plan(run, select, trains, part, append_detector_modules, fmt,
                              block_bytes, run_path)
            cls.check(plan, **options)
            if pool is not None or scheduler:
                kwargs = dict(select=list(select), trains=trains,
                              append_detector_modules=append_detector_modules,
                              block_bytes=block_bytes, **options)
                return _convert_parallel(cls, plan, output, overwrite, quiet, workers,
                                         scheduler, pool, kwargs)
        except BaseException:
            if pool is not None:
                pool.terminate()  # also on Ctrl-C: no worker keeps writing
            raise
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        progress = Progress(plan.nbytes, plan.n_trains, quiet, desc=f"-> {fmt}")
        try:
            with atomic_output(output, overwrite, directory=cls.directory) as tmp:
                cls(plan, tmp, progress, **options).write()
            progress.finish()
        finally:
            progress.close()
        return _summary(plan.n_trains, progress, output)


def _summary(n_trains: int, progress: Progress, output: Path) -> dict:
    seconds = time.perf_counter() - progress.start
    return {"n_trains": n_trains, "nbytes": progress.done, "seconds": seconds,
            "trains_per_s": n_trains / max(seconds, 1e-9),
            "mb_per_s": progress.done / 1e6 / max(seconds, 1e-9), "output": str(output)}


def _convert_part_task(run_path: str, out: str, fmt: str, part: tuple[int, int],
                       kwargs: dict) -> int:
    """One part on a worker, written by the worker itself: returns the bytes written."""
    res = convert(run_path, out, fmt, part=part, quiet=True, **kwargs)
    return res["nbytes"]


def _local_pool(n: int):
    """A pool of ``n`` worker processes, forked where the platform allows it."""
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    # Ctrl-C reaches the whole process group; the parent alone handles it (and stops
    # the workers), so that it is reported once and cleaned up in one place.
    return multiprocessing.get_context(method).Pool(n, initializer=mark_worker)


def _convert_parallel(cls, plan: ConversionPlan, output: Path, overwrite: bool, quiet: bool,
                      workers: int | None, scheduler: str | None, pool, kwargs: dict) -> dict:
    """Convert consecutive parts of the trains on ``pool`` or ``scheduler``'s workers.

    Each worker writes its share itself -- straight into the output where the format
    allows (:attr:`Writer.direct_parallel`), else into a part output, merged at the end
    -- so no array data goes through this process or the scheduler.
    """
    progress = Progress(plan.nbytes, plan.n_trains, quiet, desc=f"-> {cls.name}")
    try:
        if pool is not None and cls.direct_parallel:
            _convert_direct(cls, plan, output, overwrite, pool, workers, progress, kwargs)
        else:
            _convert_parts(cls, plan, output, overwrite, pool, workers, scheduler, progress,
                           kwargs)
        progress.finish()
    except DiskFullError as exc:  # a worker's message names its part: name the output
        raise DiskFullError(disk_full_message(exc.errno, output), exc.errno) from None
    finally:
        progress.close()
    return _summary(plan.n_trains, progress, output)


def _convert_parts(cls, plan: ConversionPlan, output: Path, overwrite: bool, pool,
                   workers: int | None, scheduler: str | None, progress: Progress,
                   kwargs: dict) -> None:
    """Part outputs converted by the workers, then merged into ``output``."""
    tmpdir = parts_folder(output)
    try:
        if pool is not None:
            n_parts = max(1, min(workers, plan.n_trains))
            outs = _part_names(tmpdir, n_parts, output.suffix)
            with _workers_stopped_on_error(pool):
                results = [pool.apply_async(_convert_part_task, (plan.run_path, out, cls.name,
                                                                 (i, n_parts), kwargs))
                           for i, out in enumerate(outs, 1)]
                for res in results:
                    progress.update(_part_result(plan, res.ready, res.get))
        else:
            outs = _convert_on_scheduler(cls, plan, tmpdir, output.suffix, workers, scheduler,
                                         progress, kwargs)
        with atomic_output(output, overwrite, directory=cls.directory) as tmp:
            cls.merge([Path(p) for p in outs], tmp, Progress(0, 0, quiet=True))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _convert_direct(cls, plan: ConversionPlan, output: Path, overwrite: bool, pool,
                    workers: int, progress: Progress, kwargs: dict) -> None:
    """Local workers writing their rows straight into one preallocated output."""
    import importlib

    direct = importlib.import_module(cls.direct_parallel)
    n_parts = max(1, min(workers, plan.n_trains))
    with atomic_output(output, overwrite, directory=cls.directory) as tmp, \
            _workers_stopped_on_error(pool):
        state = direct.prepare(plan, tmp, n_parts, progress)
        pending = [pool.apply_async(_direct_part_task, (plan.run_path, str(tmp), cls.name,
                                                        (i, n_parts), kwargs, targets))
                   for i, targets in enumerate(state.targets, 1)]
        results = []
        for res in pending:
            results.append(_part_result(plan, res.ready, res.get))
            progress.update(results[-1]["nbytes"])
        direct.finish(state, tmp, results)


@contextmanager
def _workers_stopped_on_error(pool) -> Iterator[None]:
    """On an error or Ctrl-C, terminate the pool's workers and wait for them to be gone,
    so that none writes again after the caller has removed their files."""
    try:
        yield
    except BaseException:
        pool.terminate()
        pool.join()
        raise


def _direct_part_task(run_path: str, out: str, fmt: str, part: tuple[int, int],
                      kwargs: dict, targets: dict) -> dict:
    """One part on a worker, written into the shared output: returns a small summary."""
    import importlib

    kwargs = dict(kwargs)
    plan = build_plan(open_input(run_path), kwargs.pop("select"), kwargs.pop("trains"), part,
                      kwargs.pop("append_detector_modules"), fmt, kwargs.pop("block_bytes"),
                      run_path)
    return importlib.import_module(writer_class(fmt).direct_parallel).write_part(
        plan, out, targets)


def _part_names(tmpdir: Path, n_parts: int, suffix: str) -> list[str]:
    return [str(tmpdir / f"part-{i:04d}{suffix}") for i in range(1, n_parts + 1)]


def _part_result(plan: ConversionPlan, ready, get):
    """A worker's result (``get()`` once ``ready()``), or its failure as a
    :class:`ConversionError`; Ctrl-C stops the wait."""
    while not ready():
        check_interrupt()
        time.sleep(0.05)
    try:
        return get()
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(str(exc), exc.errno) from exc
        raise ConversionError(f"A part of {plan.run_path} failed on a worker: {exc}") from exc


def _convert_on_scheduler(cls, plan: ConversionPlan, tmpdir: Path, suffix: str,
                          workers: int | None, scheduler: str, progress: Progress,
                          kwargs: dict) -> list[str]:
    """Parts on the workers of an existing dask.distributed cluster; their file names."""
    from .base import require

    distributed = require("distributed", "distributed", "--scheduler")
    with distributed.Client(scheduler) as client:
        # With --workers N as well, N parts; else one per worker connected now.
        n_parts = max(1, min(workers or len(client.scheduler_info()["workers"]) or 1,
                             plan.n_trains))
        outs = _part_names(tmpdir, n_parts, suffix)
        futures = [client.submit(_convert_part_task, plan.run_path, out, cls.name,
                                 (i, n_parts), kwargs, pure=False)
                   for i, out in enumerate(outs, 1)]
        try:
            for fut in futures:
                progress.update(_part_result(plan, fut.done, fut.result))
        except BaseException:
            # Parts not started are dropped; a running one cannot be stopped and may
            # leave files after the parts folder is removed: the next conversion to this
            # output removes them once this process has exited.
            client.cancel(futures)
            raise
    return outs


# -- merging ---------------------------------------------------------------------------

