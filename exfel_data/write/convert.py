"""Converting a selection of a run to another format: planning, parts, workers, merging.

Python API behind ``exfel-data convert`` and ``exfel-data merge``::

    from exfel_data.write.convert import convert, merge
    convert("/data/r0238", "xgm.csv", "csv", select=["SA1_XTD2_XGM/*[*.value]"])

The output is written under a temporary name and renamed when complete (see
:mod:`exfel_data.write.output`). ``part=(i, N)`` converts the i-th of N consecutive
shares of the selected trains into a part output which :func:`merge` joins; ``workers``
/ ``scheduler`` do the same with parts converted in parallel on dask.distributed
workers, then merged.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .base import Progress, Writer
from .output import OutputExistsError, atomic_output, check_output
from .plan import BLOCK_BYTES, ConversionError, ConversionPlan, KeyPlan
from .request import Selection, TrainRange, parse_selection, parse_trains

#: Format name -> ("module:class", one-line description). Writers are imported on use, so
#: optional dependencies stay optional.
FORMATS: dict[str, tuple[str, str]] = {
    "exdf": ("exfel_data.write.exdf:ExdfConverter",
             "run folder (EXDF 1.3 HDF5 files) holding only the selection"),
    "cxi": ("exfel_data.write.cxi:CxiWriter",
            "CXI 1.5 file of detector frames (frames, modules, ss, fs) for CrystFEL & co."),
    "npz": ("exfel_data.write.npz:NpzWriter",
            "NumPy .npz archive: one array per key plus each row's train ID"),
    "mat": ("exfel_data.write.mat:MatWriter",
            "MATLAB .mat (v5), one struct per source (needs scipy: extra 'formats'; < 2 GiB)"),
    "zarr": ("exfel_data.write.zarr:ZarrWriter",
             "Zarr v3 store: one array per key plus row train IDs (extra 'formats')"),
    "csv": ("exfel_data.write.table:CsvWriter",
            "CSV table: one row per train (trainId, timestamp), one column per value"),
    "json": ("exfel_data.write.table:JsonWriter",
             "JSON object whose 'trains' list has one record per train"),
    "png": ("exfel_data.write.png:PngWriter",
            "folder of 8-bit greyscale PNG images, one per train and frame"),
}

__all__ = ["FORMATS", "convert", "merge", "build_plan", "open_input", "writer_class",
           "ConversionError", "OutputExistsError"]


def writer_class(fmt: str) -> type[Writer]:
    """The :class:`Writer` subclass for a format name."""
    try:
        module, cls = FORMATS[fmt][0].split(":")
    except KeyError:
        raise ConversionError(f"Unknown format {fmt!r}; choose from {', '.join(FORMATS)}"
                              ) from None
    return getattr(importlib.import_module(module), cls)


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

def _detector_siblings(run, sources: Iterable[str]) -> set[str]:
    """All module sources of the detectors that ``sources`` include a module of."""
    out = set()
    for modules in run.detector_modules().values():
        if set(modules.values()) & set(sources):
            out |= set(modules.values())
    return out


def _as_selection(item) -> Selection:
    if isinstance(item, Selection):
        return item
    if isinstance(item, tuple):
        return Selection(*item)
    return parse_selection(item)


def select_keys(run, select: Iterable, append_detector_modules: bool = False
                ) -> list[tuple[str, str]]:
    """(source, key) pairs matched by the selection items (all keys if none are given)."""
    items = [_as_selection(s) for s in select] or [Selection("*")]
    sources = sorted(run.all_sources)
    pairs: dict[tuple[str, str], None] = {}
    for sel in items:
        matched = [s for s in sources if fnmatch.fnmatchcase(s, sel.source_glob)]
        if append_detector_modules:
            matched = sorted(set(matched) | _detector_siblings(run, matched))
        if not matched:
            raise ConversionError(
                f"Selection {str(sel)!r} matches no source of {_run_name(run)}. Sources: "
                f"{', '.join(sources[:12])}{' ...' if len(sources) > 12 else ''} "
                "(see 'exfel-data info')")
        n_before = len(pairs)
        for src in matched:
            for key in sorted(run.keys_for_source(src)):
                if fnmatch.fnmatchcase(key, sel.key_glob):
                    pairs[(src, key)] = None
        if len(pairs) == n_before and sel.key_glob != "*":
            keys = sorted(run.keys_for_source(matched[0]))
            raise ConversionError(
                f"Selection {str(sel)!r}: no key matches {sel.key_glob!r} in {matched[0]}"
                f"{' and others' if len(matched) > 1 else ''}. Keys of {matched[0]}: "
                f"{', '.join(keys[:15])}{' ...' if len(keys) > 15 else ''}")
    return list(pairs)


def _run_name(run) -> str:
    files = getattr(run, "files", None) or []
    if files:
        return os.path.dirname(files[0].filename)
    return "the run"


def _select_trains(run, trains: TrainRange | str | None):
    from ..selection import by_id, by_index

    if trains is None:
        return run
    if isinstance(trains, str):
        trains = parse_trains(trains)
    sel = by_id[trains.slice] if trains.by == "id" else by_index[trains.slice]
    return run.select_trains(sel)


def part_slice(n_trains: int, part: tuple[int, int]) -> slice:
    """Positions of the trains in part ``i`` of ``N`` (1-based), consecutive and balanced."""
    i, n = part
    bounds = np.linspace(0, n_trains, n + 1).round().astype(int)
    return slice(int(bounds[i - 1]), int(bounds[i]))


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
                values[src] = dict(getter(src))
            except (KeyError, ValueError, OSError):
                pass
    return values


def build_plan(run, select: Iterable = (), trains: TrainRange | str | None = None,
               part: tuple[int, int] | None = None, append_detector_modules: bool = False,
               fmt: str = "", block_bytes: int = BLOCK_BYTES, run_path: str = "") -> ConversionPlan:
    """Resolve the selection on an opened run into a :class:`ConversionPlan`."""
    select = list(select)
    pairs = select_keys(run, select, append_detector_modules)
    run = _select_trains(run, trains)
    n_all = len(run.train_ids)
    if part is not None:
        sl = part_slice(n_all, part)
        if sl.stop <= sl.start:
            raise ConversionError(f"Part {part[0]}/{part[1]} has no trains: only {n_all} "
                                  "trains are selected; use fewer parts")
        from ..selection import by_index

        run = run.select_trains(by_index[sl])
    if len(run.train_ids) == 0:
        raise ConversionError(f"No trains selected in {run_path or _run_name(run)} "
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
    description = {
        "format": fmt, "run": os.path.abspath(run_path) if run_path else _run_name(run),
        "select": [str(_as_selection(s)) for s in select],
        "trains": str(trains) if trains is not None else None,
        "append_detector_modules": append_detector_modules,
    }
    return ConversionPlan(
        run_path=run_path or _run_name(run), train_ids=np.asarray(run.train_ids, np.uint64),
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
        Convert in parallel on a local dask.distributed cluster with this many workers.
    scheduler : str, optional
        Address of an existing dask.distributed scheduler to convert on.
    options
        Format options (``png_scale``, ...).

    Returns
    -------
    dict
        ``n_trains``, ``nbytes``, ``seconds``, ``trains_per_s``, ``mb_per_s``, ``output``.
    """
    cls = writer_class(fmt)
    output = check_output(output, overwrite)
    run_path = str(run_path)
    run = open_input(run_path)
    plan = build_plan(run, select, trains, part, append_detector_modules, fmt,
                      block_bytes, run_path)
    cls.check(plan, **options)
    if (workers and workers > 1) or scheduler:
        if part is not None:
            raise ConversionError("--part and --workers/--scheduler cannot be combined: "
                                  "each part is already one job")
        return _convert_parallel(cls, plan, output, overwrite, quiet, workers, scheduler,
                                 dict(select=list(select), trains=trains,
                                      append_detector_modules=append_detector_modules,
                                      block_bytes=block_bytes, **options))
    progress = Progress(plan.nbytes, plan.n_trains, quiet, desc=f"-> {fmt}")
    try:
        with atomic_output(output, overwrite, directory=cls.directory) as tmp:
            cls(plan, tmp, progress, **options).write()
        progress.finish()
    finally:
        progress.close()
    return _summary(plan.n_trains, progress, output)


def _summary(n_trains: int, progress: Progress, output: Path) -> dict:
    import time

    seconds = time.perf_counter() - progress.start
    return {"n_trains": n_trains, "nbytes": progress.done, "seconds": seconds,
            "trains_per_s": n_trains / max(seconds, 1e-9),
            "mb_per_s": progress.done / 1e6 / max(seconds, 1e-9), "output": str(output)}


def _convert_part_task(run_path: str, out: str, fmt: str, part: tuple[int, int],
                       kwargs: dict) -> int:
    """One part on a worker: returns the bytes written."""
    res = convert(run_path, out, fmt, part=part, quiet=True, **kwargs)
    return res["nbytes"]


def _convert_parallel(cls, plan: ConversionPlan, output: Path, overwrite: bool, quiet: bool,
                      workers: int | None, scheduler: str | None, kwargs: dict) -> dict:
    from .base import require

    distributed = require("distributed", "distributed", plan.description["format"])
    n_parts = max(1, min(workers or 0, plan.n_trains)) if not scheduler else None
    progress = Progress(plan.nbytes, plan.n_trains, quiet, desc=f"-> {cls.name}")
    # Part outputs live next to the output so that renaming them stays on one file system.
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{output.name}.parts-", dir=output.parent))
    cluster = None
    try:
        if scheduler:
            client = distributed.Client(scheduler)
            n_parts = max(1, min(len(client.scheduler_info()["workers"]) or 1, plan.n_trains))
        else:
            cluster = distributed.LocalCluster(n_workers=n_parts, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
            client = distributed.Client(cluster)
        with client:
            suffix = output.suffix
            futures = {}
            for i in range(1, n_parts + 1):
                out = str(tmpdir / f"part-{i:04d}{suffix}")
                fut = client.submit(_convert_part_task, plan.run_path, out, cls.name,
                                    (i, n_parts), kwargs, pure=False)
                futures[fut] = out
            for fut in distributed.as_completed(futures):
                try:
                    progress.update(fut.result())
                except Exception as exc:
                    raise ConversionError(f"A part of {plan.run_path} failed on a worker: "
                                          f"{exc}") from exc
        parts = sorted(futures.values())
        with atomic_output(output, overwrite, directory=cls.directory) as tmp:
            cls.merge([Path(p) for p in parts], tmp, Progress(0, 0, quiet=True))
        progress.finish()
    finally:
        progress.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
        if cluster is not None:
            cluster.close()
    return _summary(plan.n_trains, progress, output)


# -- merging ---------------------------------------------------------------------------

def detect_format(path: Path) -> str:
    """Guess the format of a part output from its name and contents."""
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zgroup").exists():
            return "zarr"
        if any(path.glob("*.h5")):
            return "exdf"
        if (path / PNG_PART_FILE).exists():
            return "png"
        raise ConversionError(f"{path}: not an exdf, png or zarr output folder")
    by_suffix = {".npz": "npz", ".csv": "csv", ".json": "json", ".mat": "mat",
                 ".cxi": "cxi", ".h5": "cxi", ".zarr": "zarr"}
    if path.suffix.lower() in by_suffix:
        return by_suffix[path.suffix.lower()]
    raise ConversionError(f"{path}: cannot tell the format from the name; expected one of "
                          f"{', '.join(sorted(by_suffix))} or a folder")


PNG_PART_FILE = "exfel-data-part.json"


def merge(parts: Sequence[str | os.PathLike], output: str | os.PathLike, *,
          overwrite: bool = False, quiet: bool = True) -> dict:
    """Join the part outputs of one ``--part i/N`` job into one output.

    All N parts must be given (in any order), made by the same job (same run,
    selection, trains and format).
    """
    output = check_output(output, overwrite)
    paths = [Path(p) for p in parts]
    if not paths:
        raise ConversionError("merge needs at least one part")
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"Part {p} does not exist")
    fmts = {detect_format(p) for p in paths}
    if len(fmts) > 1:
        raise ConversionError(f"Parts are in different formats: {', '.join(sorted(fmts))}")
    cls = writer_class(fmts.pop())
    infos = []
    for p in paths:
        try:
            infos.append(cls.read_part_info(p))
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"Cannot read part information from {p}: {exc}") from exc
    order = _check_parts(paths, infos)
    ordered = [paths[i] for i in order]
    total = sum(_size(p) for p in ordered)
    progress = Progress(total, sum(i["n_trains"] for i in infos), quiet, desc="merging")
    try:
        with atomic_output(output, overwrite, directory=cls.directory) as tmp:
            cls.merge(ordered, tmp, progress)
        progress.finish()
    finally:
        progress.close()
    return {"parts": len(paths), "n_trains": sum(i["n_trains"] for i in infos),
            "output": str(output)}


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def _check_parts(paths: list[Path], infos: list[dict]) -> list[int]:
    """Check the parts form one complete job; return their order."""
    jobs = {i["job"] for i in infos}
    if len(jobs) > 1:
        desc = "; ".join(f"{p}: {json.dumps({k: i.get(k) for k in ('run', 'select', 'trains')})}"
                         for p, i in zip(paths, infos, strict=True))
        raise ConversionError(f"Parts come from different conversions: {desc}")
    n = infos[0]["of"]
    numbers = [i["part"] for i in infos]
    dupes = sorted({x for x in numbers if numbers.count(x) > 1})
    if dupes:
        raise ConversionError(f"Part(s) {dupes} given more than once")
    missing = sorted(set(range(1, n + 1)) - set(numbers))
    if missing:
        raise ConversionError(f"Missing part(s) {', '.join(f'{m}/{n}' for m in missing)}; "
                              "merge needs all parts of the job")
    return sorted(range(len(infos)), key=lambda k: numbers[k])
