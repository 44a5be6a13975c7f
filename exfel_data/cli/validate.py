"""``exfel-data validate``: named consistency checks on a run's files."""

from __future__ import annotations

import sys

import click

from ..validation import CHECKS, validate_run
from .options import run_location

_CHECK_HELP = "\b\n" + "\n".join(f"  {name:19s} {text}" for name, text in CHECKS.items())


@click.command(help=f"""Check a run folder (or one .h5 file) for structural problems.

Each problem is printed with its check name, the file, the dataset and what to do.
Instead of RUN, --proposal P --run R finds the run as open_run does.
Exit status: 0 when clean, 1 when problems were found, 2 on usage errors.

Checks (names for --skip):

{_CHECK_HELP}
""")
@run_location("run")
@click.argument("run", type=click.Path(exists=True), required=False)
@click.option("--skip", "skip", multiple=True, type=click.Choice(list(CHECKS)),
              metavar="CHECK", help="Do not run this check (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def validate(run: str, skip: tuple[str, ...], quiet: bool) -> None:
    def progress(files):
        from tqdm import tqdm

        return tqdm(files, desc="validating", unit="file", file=sys.stderr, disable=quiet,
                    leave=False)

    try:
        problems = validate_run(run, skip=skip, progress=progress)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if not problems:
        click.echo(f"No problems found in {run}"
                   + (f" (skipped: {', '.join(skip)})" if skip else ""))
        return
    for p in problems:
        click.echo(str(p))
    n_files = len({p.file for p in problems})
    by_check: dict[str, int] = {}
    for p in problems:
        by_check[p.check] = by_check.get(p.check, 0) + 1
    summary = ", ".join(f"{n} {c}" for c, n in by_check.items())
    click.echo(f"\n{len(problems)} problem(s) in {n_files} file(s): {summary}")
    sys.exit(1)
