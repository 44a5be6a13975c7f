"""click parameter types for the options shared by several commands."""

from __future__ import annotations

import functools

import click

from ..selection import parse_trains
from ..write.request import parse_part, parse_selection


class _ParserType(click.ParamType):
    def __init__(self, name: str, parser):
        self.name = name
        self._parser = parser

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self._parser(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SELECTION = _ParserType("SRC_GLOB[KEY_GLOB]", parse_selection)
TRAINS = _ParserType("SLICE", parse_trains)
PART = _ParserType("i/N", parse_part)


def run_location(argument: str):
    """Add ``--proposal P --run R [--data raw|proc|...] [--root DIR]`` to a command taking RUN.

    The command's ``argument`` (RUN, optional) becomes the run's folder (found as ``open_run``
    finds it: ``<root>/<INSTRUMENT>/<CYCLE>/p<NNNNNN>/<data>/r<NNNN>``, root from
    ``--root``, ``$EXFEL_DATA_ROOT`` or ``/gpfs/exfel/exp``) when RUN itself is not given.
    """
    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, proposal, run_number, data_folder, data_root, **kwargs):
            kwargs[argument] = resolve_run(kwargs.get(argument), proposal, run_number,
                                           data_folder, data_root)
            return command(*args, **kwargs)

        return location_options(wrapper)

    return decorate


def location_options(command):
    """Add the options of :func:`run_location` only (the command calls resolve_run)."""
    for option in reversed(_LOCATION_OPTIONS):
        command = option(command)
    return command


_LOCATION_OPTIONS = [
    click.option("--proposal", metavar="P",
                 help="Proposal number: with --run, name the run as open_run does instead "
                      "of giving its path."),
    click.option("--run", "run_number", metavar="R", help="Run number (with --proposal)."),
    click.option("--data", "data_folder", default="raw", show_default=True, metavar="FOLDER",
                 help="Data folder of the proposal (with --proposal): raw, proc, ..."),
    click.option("--root", "data_root", type=click.Path(file_okay=False),
                 help="Data root holding the instrument folders (with --proposal) "
                      "[default: $EXFEL_DATA_ROOT or /gpfs/exfel/exp]."),
]


def resolve_run(path: str | None, proposal: str | None, run_number: str | None,
                data_folder: str = "raw", data_root: str | None = None) -> str:
    """RUN as given, or the folder of run ``run_number`` of ``proposal``."""
    if proposal is None and run_number is None:
        if path is None:
            raise click.UsageError("Give RUN (a run folder or .h5 file), or --proposal P "
                                   "--run R.")
        return path
    if path is not None:
        raise click.UsageError(f"Give either RUN ({path}) or --proposal/--run, not both.")
    if proposal is None or run_number is None:
        raise click.UsageError("--proposal and --run go together (e.g. --proposal 1234 "
                               "--run 42).")
    if not run_number.lstrip("r").isdigit():
        raise click.BadParameter(f"{run_number!r} is not a run number (e.g. 42 or r0042)",
                                 param_hint="--run")
    if not proposal.lstrip("p").isdigit():
        raise click.BadParameter(f"{proposal!r} is not a proposal number (e.g. 1234 or "
                                 "p001234)", param_hint="--proposal")
    from ..opening import run_folder

    try:
        return run_folder(int(proposal.lstrip("p")), int(run_number.lstrip("r")),
                          data_folder, data_root)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
