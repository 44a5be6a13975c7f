"""``exfel-data info``: the summary users print first (like ``lsxfel``)."""

from __future__ import annotations

import datetime
import fnmatch
import re
from pathlib import Path

import click
import numpy as np

from .convert import conversion_errors
from .options import run_location


def _natural(name: str) -> list:
    """Sort key putting module 2 before module 10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _duration(run) -> str:
    tids = np.asarray(run.train_ids)
    if len(tids) == 0:
        return "0:00:00"
    return str(datetime.timedelta(seconds=round((int(tids[-1]) - int(tids[0]) + 1) / 10)))


def _entries_range(counts: np.ndarray) -> str | None:
    """``'4'`` or ``'1-4'``: entries per train, when some train has more than one."""
    if not counts.size or counts.max() <= 1:
        return None
    lo, hi = int(counts.min()), int(counts.max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _key_lines(run, source: str) -> list[str]:
    """dtype, entry shape and trains with data of each key of a source."""
    n = len(run.train_ids)
    out = []
    for key in sorted(run.keys_for_source(source)):
        kd = run[source, key]
        counts = np.asarray(kd.data_counts(labelled=False))
        shape = "(" + ", ".join(map(str, kd.entry_shape)) + \
            ("," if len(kd.entry_shape) == 1 else "") + ")"
        dtype = "str" if kd.dtype.kind == "O" else str(kd.dtype)
        units = f" [{kd.units}]" if kd.units else ""
        per = _entries_range(counts)
        per = f", {per} entries/train" if per else ""
        out.append(f"    - {key}: {dtype} {shape}{units}, data in {int((counts > 0).sum())}/{n}"
                   f" trains{per}")
    return out


def _count_line(run, source: str) -> str:
    """Trains with data (and entries per train, for fast data) of one source."""
    n = len(run.train_ids)
    groups: dict[str, str] = {}
    for key in sorted(run.keys_for_source(source)):
        groups.setdefault(key.partition(".")[0] if ":" in source else "", key)
    parts = []
    for group, key in groups.items():
        counts = np.asarray(run[source, key].data_counts(labelled=False))
        text = f"{int((counts > 0).sum())}/{n} trains"
        if per := _entries_range(counts):
            text += f", {per} per train"
        parts.append((f"{group}: " if group else "") + text)
    return f"  - {source}: " + "; ".join(parts)


def run_summary(run, detail: str | None = None, counts: bool = False) -> str:
    """The text ``exfel-data info`` prints for one run or file."""
    from ..summary import format_info

    lines = [format_info(run)]
    if counts:
        lines += ["", "Trains with data (entries per train):"]
        lines += [_count_line(run, s) for s in sorted(run.all_sources, key=_natural)]
    if detail:
        matched = [s for s in sorted(run.all_sources) if fnmatch.fnmatchcase(s, detail)]
        if not matched:
            raise click.ClickException(f"--detail {detail!r} matches no source")
        for src in matched:
            kind = "control" if src in run.control_sources else "instrument"
            lines += ["", f"{src} ({kind}):"] + _key_lines(run, src)
    return "\n".join(lines)


def _run_folders(path: Path) -> list[Path]:
    """Subfolders holding .h5 files, if ``path`` is a folder of runs (else [])."""
    if not path.is_dir() or any(path.glob("*.h5")):
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("*.h5")))


RUN_LINE_HEADER = (f"{'run':10s} {'trains':>8s} {'train IDs':>23s} {'duration':>9s} "
                   f"{'sources':>7s} {'files':>6s} {'size':>10s}")


def run_line(path: Path) -> str:
    """One line per run for a folder of runs (columns of :data:`RUN_LINE_HEADER`)."""
    from ..write.convert import open_input

    try:
        run = open_input(path)
    except Exception as exc:  # one broken run must not hide the others
        return f"{path.name:10s} cannot open: {type(exc).__name__}: {exc}"
    tids = np.asarray(run.train_ids)
    files = list(path.glob("*.h5"))
    size = sum(f.stat().st_size for f in files)
    ids = f"{int(tids[0])}-{int(tids[-1])}" if len(tids) else "-"
    return (f"{path.name:10s} {len(tids):8d} {ids:>23s} {_duration(run):>9s} "
            f"{len(run.all_sources):7d} {len(files):6d} {size / 1e9:7.2f} GB")


@click.command()
@run_location("path")
@click.argument("path", type=click.Path(exists=True), required=False)
@click.option("--detail", metavar="GLOB",
              help="For sources matching GLOB, list each key's dtype, entry shape, units "
                   "and how many trains hold data.")
@click.option("--counts", is_flag=True,
              help="Show how many trains each source has data for.")
def info(path: str, detail: str | None, counts: bool) -> None:
    """Summarise a run folder or file: trains, duration, detectors and sources.

    PATH may also be a folder of runs (e.g. a proposal's raw/ folder): then one
    line per run is printed. Instead of PATH, --proposal P --run R finds the run in the
    facility's folder layout (as open_run does).
    """
    from ..write.convert import open_input

    runs = _run_folders(Path(path))
    if runs:
        click.echo(RUN_LINE_HEADER)
        for r in runs:
            click.echo(run_line(r))
        return
    with conversion_errors(path):
        run = open_input(path)
        click.echo(run_summary(run, detail, counts))
