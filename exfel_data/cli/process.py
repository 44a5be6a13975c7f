"""``exfel-data process`` / ``process-merge``: run an analysis file over a run's files."""

from __future__ import annotations

import click

from .convert import conversion_errors
from .options import PART, SELECTION, TRAINS

PARAM_HELP = ("Parameter name=value (repeatable); the value is a Python literal (3, 0.5, "
              "True, '[0, 10]') or else a string. Names are checked against the analysis' "
              "PARAMS.")


@click.command()
@click.argument("run", type=click.Path(exists=True))
@click.argument("analysis")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@click.option("-s", "--select", "select", multiple=True, type=SELECTION,
              help="Read only these sources/keys: 'SRC_GLOB' or 'SRC_GLOB[KEY_GLOB]' "
                   "(repeatable; default: everything).")
@click.option("--trains", type=TRAINS,
              help="Train positions START:STOP[:STEP] or train IDs id:FIRST:STOP[:STEP].")
@click.option("--workers", type=click.IntRange(1), metavar="N",
              help="N local worker processes (default: this process only).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run on an existing dask.distributed cluster (tcp://host:8786); its "
                   "workers must see RUN.")
@click.option("--part", type=PART,
              help="Only part i of N of the trains (e.g. $SLURM_ARRAY_TASK_ID/8); --out is "
                   "then a part file; join them with `exfel-data process-merge`.")
@click.option("-o", "--out", type=click.Path(), help="Write the final result to this HDF5 "
              "file (with the parameters and the analysis file's sha256).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def process(run, analysis, params, select, trains, workers, scheduler, part, out, overwrite,
            quiet) -> None:
    """Run ANALYSIS (a .py file or module, see docs/analysis.md) over the trains of RUN.

    ANALYSIS provides process(train_id, data, params) and a Reducer class; the same
    file runs live with `exfel-bridge process`. Workers read their own trains from
    the files; only results travel.

    \b
    Examples:
      exfel-data process r0238 recipes/analysis_scan.py -p bins='[0, 10, 50]' -o scan.h5
      exfel-data process r0238 ana.py --workers 4 --select '*/DET/*[image.data]'
      exfel-data process r0238 ana.py --part 3/8 -o part-3.h5   # then process-merge
    """
    from ..analysis import run_offline

    if part and not out:
        raise click.UsageError("--part needs --out (the part file to merge later)")
    with conversion_errors():
        result = run_offline(run, analysis, params, select=list(select), trains=trains,
                             workers=workers, scheduler=scheduler, part=part, out=out,
                             overwrite=overwrite, progress=not quiet)
    if not quiet:
        click.echo(result.stats.summary() + (f"; written to {out}" if out else ""), err=True)
        if not out:
            _print(result.data)


def _print(data: dict) -> None:
    import numpy as np

    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.size > 10:
            click.echo(f"{key}: {value.dtype} {value.shape}, mean {np.nanmean(value):g}")
        else:
            click.echo(f"{key}: {value}")


@click.command("process-merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("output", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def process_merge(parts, output, overwrite) -> None:
    """Join the part files of `exfel-data process --part i/N` into OUTPUT.

    All N parts (any order) of one run of one analysis with the same parameters; the
    Reducer's merge() joins them.

    \b
    Example (SLURM array job, then merge):
      sbatch --array=1-8 --wrap 'exfel-data process RUN ana.py \\
          --part $SLURM_ARRAY_TASK_ID/8 -o part-$SLURM_ARRAY_TASK_ID.h5'
      exfel-data process-merge part-*.h5 result.h5
    """
    from ..analysis import merge_parts

    with conversion_errors():
        result = merge_parts(parts, output, overwrite=overwrite)
    click.echo(f"Merged {len(parts)} parts into {output}: {result.stats.summary()}", err=True)
