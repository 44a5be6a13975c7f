"""``exfel-data info``: the summary users print first (like ``lsxfel``)."""

from __future__ import annotations

import datetime
import fnmatch
from pathlib import Path

import click
import numpy as np

from .convert import conversion_errors


def _duration(run) -> str:
    tids = np.asarray(run.train_ids)
    if len(tids) == 0:
        return "0:00:00"
    try:
        ts = np.asarray(run.train_timestamps()).astype("datetime64[ns]")
        ts = ts[~np.isnat(ts)]
    except (AttributeError, KeyError, ValueError, OSError):
        ts = np.array([], dtype="datetime64[ns]")
    if len(ts) >= 2:
        seconds = (ts[-1] - ts[0]) / np.timedelta64(1, "s") + 0.1
    else:  # 10 Hz trains
        seconds = (int(tids[-1]) - int(tids[0]) + 1) / 10
    return str(datetime.timedelta(seconds=round(seconds, 1)))


def _detectors(run) -> dict[str, list[str]]:
    """Detector name -> its module sources in the run."""
    from ..detectors.identify import find_detectors

    found = find_detectors(run.instrument_sources)
    return {name: sorted([*d.corr.values(), *d.raw.values()])
            for (_, name), d in sorted(found.items())}


def _main_key(run, source: str) -> str | None:
    keys = set(run.keys_for_source(source))
    for k in ("image.data", "data.adc"):
        if k in keys:
            return k
    return None


def _frames(run, source: str) -> str:
    key = _main_key(run, source)
    if key is None:
        return "no image data"
    kd = run[source, key]
    counts = np.asarray(kd.data_counts(labelled=False))
    shape = " x ".join(map(str, kd.entry_shape))
    if counts.size == 0:
        return f"{shape} {kd.dtype}, no trains"
    lo, hi = int(counts.min()), int(counts.max())
    per = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{per} frames/train, {int(counts.sum())} frames, {shape} {kd.dtype}"


def _train_counts(run, source: str) -> str:
    """Trains with data of a source (per index group)."""
    groups: dict[str, str] = {}
    for key in sorted(run.keys_for_source(source)):
        groups.setdefault(key.partition(".")[0] if ":" in source else "", key)
    n = len(run.train_ids)
    parts = []
    for group, key in groups.items():
        with_data = int((np.asarray(run[source, key].data_counts(labelled=False)) > 0).sum())
        parts.append((f"{group}: " if group else "") + f"{with_data}/{n} trains")
    return ", ".join(parts)


def _source_lines(run, sources, counts: bool, detail: str | None) -> list[str]:
    lines = []
    for src in sorted(sources):
        line = f"  - {src}"
        if counts:
            line += f"  ({_train_counts(run, src)})"
        lines.append(line)
        if detail and fnmatch.fnmatchcase(src, detail):
            lines += _key_lines(run, src)
    return lines


def _key_lines(run, source: str) -> list[str]:
    n = len(run.train_ids)
    out = []
    for key in sorted(run.keys_for_source(source)):
        kd = run[source, key]
        counts = np.asarray(kd.data_counts(labelled=False))
        shape = "(" + ", ".join(map(str, kd.entry_shape)) + ("," if len(kd.entry_shape) == 1
                                                             else "") + ")"
        per = ""
        if counts.size and counts.max() > 1:
            per = f", {int(counts.min())}-{int(counts.max())} entries/train"
        out.append(f"      {key}: {kd.dtype} {shape}, data in {int((counts > 0).sum())}/{n} "
                   f"trains{per}")
    return out


def run_summary(run, path: str, detail: str | None = None, counts: bool = False) -> str:
    """The text ``exfel-data info`` prints for one run or file."""
    tids = np.asarray(run.train_ids)
    files = getattr(run, "files", [])
    lines = [f"{path}: {len(files)} file(s)",
             f"# of trains:    {len(tids)}",
             f"Duration:       {_duration(run)}",
             f"First train ID: {int(tids[0]) if len(tids) else '-'}",
             f"Last train ID:  {int(tids[-1]) if len(tids) else '-'}", ""]
    dets = _detectors(run)
    in_det = {s for mods in dets.values() for s in mods}
    for name, mods in dets.items():
        lines.append(f"{name}: {len(mods)} detector module(s)")
        for src in mods:
            lines.append(f"  - {src}: {_frames(run, src)}")
            if detail and fnmatch.fnmatchcase(src, detail):
                lines += _key_lines(run, src)
        lines.append("")
    inst = sorted(set(run.instrument_sources) - in_det)
    lines.append(f"{len(inst)} instrument source(s) (excluding detectors):")
    lines += _source_lines(run, inst, counts, detail)
    lines.append("")
    ctrl = sorted(run.control_sources)
    lines.append(f"{len(ctrl)} control source(s):")
    lines += _source_lines(run, ctrl, counts, detail)
    return "\n".join(lines)


def _run_folders(path: Path) -> list[Path]:
    """Subfolders holding .h5 files, if ``path`` is a folder of runs (else [])."""
    if not path.is_dir() or any(path.glob("*.h5")):
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("*.h5")))


def run_line(path: Path) -> str:
    """One line per run for a folder of runs."""
    from ..write.convert import open_input

    try:
        run = open_input(path)
    except Exception as exc:  # one broken run must not hide the others
        return f"{path.name:10s}  cannot open: {type(exc).__name__}: {exc}"
    tids = np.asarray(run.train_ids)
    size = sum(f.stat().st_size for f in path.glob("*.h5"))
    if not len(tids):
        return f"{path.name:10s}  no trains"
    return (f"{path.name:10s}  {len(tids):7d} trains  {int(tids[0])}-{int(tids[-1])}  "
            f"{_duration(run):>10s}  {len(run.all_sources):4d} sources  "
            f"{len(list(path.glob('*.h5'))):4d} files  {size / 1e9:8.2f} GB")


@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--detail", metavar="GLOB",
              help="For sources matching GLOB, list each key's dtype, entry shape and how "
                   "many trains hold data.")
@click.option("--counts", is_flag=True,
              help="Show how many trains each source has data for.")
def info(path: str, detail: str | None, counts: bool) -> None:
    """Summarise a run folder or file: trains, duration, detectors and sources.

    PATH may also be a folder of runs (e.g. a proposal's raw/ folder): then one
    line per run is printed.
    """
    from ..write.convert import open_input

    runs = _run_folders(Path(path))
    if runs:
        click.echo(f"{'run':10s}  {'trains':>13s}  {'train IDs':>17s}  {'duration':>10s}")
        for r in runs:
            click.echo(run_line(r))
        return
    with conversion_errors(path):
        run = open_input(path)
        click.echo(run_summary(run, path, detail, counts))
