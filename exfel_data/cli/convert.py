"""``exfel-data convert``: write a selection of a run to another format."""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..write.base import MissingDependencyError
from ..write.convert import FORMATS
from ..write.convert import convert as run_convert
from ..write.output import OutputExistsError
from ..write.plan import BLOCK_BYTES, ConversionError
from .options import PART, SELECTION, TRAINS, location_options, resolve_run


@contextmanager
def conversion_errors(context: str = "") -> Iterator[None]:
    """Turn expected failures into one clear message and a non-zero exit status."""
    from ..exceptions import ExfelDataError

    prefix = f"{context}: " if context else ""
    try:
        with _notes_shown():
            yield
    except KeyboardInterrupt as exc:
        from ..signals import Interrupted

        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        what = "Interrupted" if signum == signal.SIGINT else signal.Signals(signum).name
        click.echo(f"\n{what}: no output was written (partial data removed).", err=True)
        sys.exit(128 + signum)
    except (ConversionError, OutputExistsError, MissingDependencyError, FileNotFoundError,
            ExfelDataError) as exc:
        raise click.ClickException(prefix + str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{prefix}{type(exc).__name__}: {exc}") from None


@contextmanager
def _notes_shown() -> Iterator[None]:
    """Print what the conversion tells the user it did (stale outputs removed) as a plain
    line, not as a Python warning."""
    from ..write.output import StaleOutputRemoved

    with warnings.catch_warnings():
        show = warnings.showwarning

        def show_note(message, category, *args, **kwargs):
            if issubclass(category, StaleOutputRemoved):
                click.echo(f"Note: {message}", err=True)
            else:
                show(message, category, *args, **kwargs)

        warnings.simplefilter("always", StaleOutputRemoved)
        warnings.showwarning = show_note
        yield


def _format_help() -> str:
    return "\n".join(f"  {name:5s} {summary}" for name, (_, summary) in FORMATS.items())


@click.command(help=f"""Convert a selection of RUN (a run folder or one .h5 file) to OUTPUT.

\b
Formats (--to); layouts in docs/formats.md:
{_format_help()}

Data is read and written block by block (memory stays near --block-mb), OUTPUT is
written under a temporary name and renamed when complete (Ctrl-C leaves nothing that
looks complete), and RUN is only read.

\b
Examples:
  exfel-data convert r0238 xgm.csv --to csv --select 'SA1_XTD2_XGM/XGM/DOOCS[*.value]'
  exfel-data convert r0238 agipd.cxi --to cxi --select '*/DET/*' --trains 0:100
  exfel-data convert r0238 small --to exdf --select 'SA1_*' --select '*CAM*[data.*]'
  exfel-data convert r0238 out.npz --to npz --workers 4
  exfel-data convert r0238 part-3.npz --to npz --part 3/8   # then: exfel-data merge
  exfel-data convert --proposal 1234 --run 42 xgm.csv --to csv --select '*XGM*'

With --proposal P --run R, give only OUTPUT: the run is found as open_run finds it.
""")
@click.argument("paths", nargs=-1, required=True, metavar="[RUN] OUTPUT",
                type=click.Path())
@location_options
@click.option("--to", "fmt", required=True, type=click.Choice(list(FORMATS)),
              help="Output format.")
@click.option("-s", "--select", "select", multiple=True, type=SELECTION,
              help="Sources and keys to convert: 'SRC_GLOB' or 'SRC_GLOB[KEY_GLOB]' "
                   "(repeatable; default: everything).")
@click.option("--trains", type=TRAINS,
              help="Train positions START:STOP[:STEP] (like Python slicing) or train IDs "
                   "id:FIRST:STOP[:STEP].")
@click.option("--append-detector-modules", is_flag=True,
              help="If one module of a multi-module detector is selected, select all of its "
                   "modules (same keys).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--workers", type=click.IntRange(1), metavar="N",
              help="Convert in parallel with N local worker processes, each writing "
                   "its share of the trains (npz: into OUTPUT directly; other formats: "
                   "parts, then merged).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Convert on an existing dask.distributed cluster (e.g. dask-jobqueue on "
                   "SLURM, tcp://host:8786): one part per connected worker, or N parts with "
                   "--workers N. Workers must see RUN and OUTPUT's folder.")
@click.option("--part", type=PART,
              help="Convert only part i of N (1-based) of the selected trains, e.g. "
                   "$SLURM_ARRAY_TASK_ID/8; join the parts with `exfel-data merge`.")
@click.option("--png-scale", default="minmax", show_default=True, metavar="SCALE",
              help="png grey scaling: 'minmax', 'percentile [LOW HIGH]' (default 1 99) or "
                   "'fixed LOW HIGH'.")
@click.option("--block-mb", type=click.IntRange(1), default=BLOCK_BYTES // 2**20,
              show_default=True, help="Size of the blocks read and written at once (MiB).")
def convert(paths, proposal, run_number, data_folder, data_root, fmt, select, trains,
            append_detector_modules, overwrite, quiet, workers, scheduler, part, png_scale,
            block_mb) -> None:
    if len(paths) > 2:
        raise click.UsageError(f"Expected RUN OUTPUT, got {len(paths)} paths: "
                               f"{' '.join(paths)}")
    if len(paths) == 1 and proposal is None and run_number is None:
        raise click.UsageError(f"Missing OUTPUT after RUN {paths[0]} (or name the run with "
                               "--proposal P --run R and give only OUTPUT).")
    *given, output = paths
    run = resolve_run(given[0] if given else None, proposal, run_number, data_folder,
                      data_root)
    options = {}
    if fmt == "png":
        from ..write.png import parse_png_scale

        try:
            options["png_scale"] = parse_png_scale(png_scale)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--png-scale") from None
    with conversion_errors(run):
        res = run_convert(run, output, fmt, select=list(select), trains=trains, part=part,
                          append_detector_modules=append_detector_modules,
                          overwrite=overwrite, quiet=quiet, workers=workers,
                          scheduler=scheduler, block_bytes=block_mb * 2**20, **options)
    if not quiet:
        click.echo(f"Wrote {res['output']}: {res['n_trains']} trains, "
                   f"{res['nbytes'] / 1e6:.1f} MB in {res['seconds']:.1f} s "
                   f"({res['trains_per_s']:.1f} trains/s, {res['mb_per_s']:.1f} MB/s)",
                   err=True)
