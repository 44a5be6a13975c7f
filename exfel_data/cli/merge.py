"""``exfel-data merge``: join the part outputs of ``convert --part i/N`` jobs."""

from __future__ import annotations

import click

from ..write.convert import merge as merge_parts
from .convert import conversion_errors


@click.command()
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("output", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def merge(parts: tuple[str, ...], output: str, overwrite: bool, quiet: bool) -> None:
    """Join PARTS written by `convert --part i/N` into one OUTPUT.

    All N parts of one job must be given (any order; a shell glob is fine). The
    format is recognised from the parts; OUTPUT is written under a temporary name
    and renamed when complete. Parts are left untouched (exdf and png files are
    hard-linked when possible, so merging those costs no copy).

    \b
    Example (SLURM array job, then merge):
      sbatch --array=1-8 --wrap 'exfel-data convert RUN part-$SLURM_ARRAY_TASK_ID.npz \\
          --to npz --part $SLURM_ARRAY_TASK_ID/8'
      exfel-data merge part-*.npz all.npz
    """
    with conversion_errors():
        res = merge_parts(parts, output, overwrite=overwrite, quiet=quiet)
    if not quiet:
        click.echo(f"Merged {res['parts']} parts ({res['n_trains']} trains) into "
                   f"{res['output']}", err=True)
