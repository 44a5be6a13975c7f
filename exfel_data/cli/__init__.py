"""The ``exfel-data`` command line (also ``python -m exfel_data``).

Each command lives in its own module and is registered on :data:`main` here.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, one-line help). A command's module (and numpy, h5py... with it) is
# imported only when that command runs or shows its own help, so `exfel-data --help`
# starts fast. tests/test_import_time.py checks the lines match the commands.
LAZY_COMMANDS = {
    "demo": ("demo", "Write a small sample run, print its summary, iterate trains and read "
                     "a key."),
    "info": ("info", "Summarise a run folder or file: trains, duration, detectors and "
                     "sources."),
    "validate": ("validate", "Check a run folder (or one .h5 file) for structural problems."),
    "convert": ("convert", "Convert a selection of RUN (a run folder or one .h5 file) to "
                           "OUTPUT."),
    "merge": ("merge", "Join PARTS written by `convert --part i/N` into one OUTPUT."),
    "process": ("process", "Run ANALYSIS (a .py file or module, see docs/analysis.md) over the "
                           "trains of RUN."),
    "process-merge": ("process", "Join the part files of `exfel-data process --part i/N` into "
                                 "OUTPUT."),
}


class LazyGroup(click.Group):
    """A command group that imports a command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module = importlib.import_module(f"exfel_data.cli.{LAZY_COMMANDS[name][0]}")
            self.add_command(getattr(module, name.replace("-", "_")))
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in self.commands or name not in LAZY_COMMANDS:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                # a stand-in command shortens the line exactly as the real one would
                stand_in = click.Command(name, help=LAZY_COMMANDS[name][1])
                rows.append((name, stand_in.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exfel-data")
def main() -> None:
    """Inspect, validate and convert European XFEL-style HDF5 runs."""
