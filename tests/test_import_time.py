"""`import exfel_data`, `import bridge` and `exfel-data --help` stay light (issue 9 §3).

Which modules get imported is checked with ``python -X importtime`` in a fresh interpreter;
speed figures themselves belong in benchmarks, not here.
"""

import os
import subprocess
import sys

import click
import pytest

HEAVY = ("pandas", "xarray", "dask")


def imported_modules(*args: str) -> set[str]:
    """Names of the modules a fresh interpreter imports running ``python -X importtime ARGS``."""
    res = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


@pytest.mark.parametrize("statement", [
    "import exfel_data; from exfel_data import *",
    "import bridge; from bridge import *",
])
def test_import_loads_no_pandas_xarray_dask(statement):
    loaded = top_level(imported_modules("-c", statement))
    assert statement.split()[1].rstrip(";") in loaded
    assert not loaded & set(HEAVY), f"{statement!r} imports {sorted(loaded & set(HEAVY))}"


def test_cli_help_loads_no_numeric_libraries():
    loaded = top_level(imported_modules("-m", "exfel_data", "--help"))
    heavy = loaded & {*HEAVY, "numpy", "h5py"}
    assert not heavy, f"`exfel-data --help` imports {sorted(heavy)}"


def test_lazy_command_help_lines_match_the_commands():
    from exfel_data.cli import LAZY_COMMANDS, main

    ctx = click.Context(main)
    for name, (_, line) in LAZY_COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == line


def test_lazy_names_resolve():
    import importlib

    import exfel_data

    for name in exfel_data.__all__:
        module = importlib.import_module(f"exfel_data.{exfel_data._EXPORTS[name]}")
        assert getattr(exfel_data, name) is getattr(module, name)
    assert set(exfel_data.__all__) <= set(dir(exfel_data))
    with pytest.raises(AttributeError, match="has no attribute 'RunDir'"):
        exfel_data.RunDir  # noqa: B018


def test_lazy_help_reads_as_with_every_command_loaded():
    """`exfel-data --help` before and after the commands are imported: the same text."""
    loaded = ("import click, sys; from exfel_data.cli import LAZY_COMMANDS, main; "
              "ctx = click.Context(main); [main.get_command(ctx, n) for n in LAZY_COMMANDS]; "
              "sys.argv = ['exfel-data', '--help']; main(prog_name='exfel-data')")
    outputs = [subprocess.run([sys.executable, *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "COLUMNS": "100"}).stdout
               for args in (["-c", "from exfel_data.cli import main; "
                                   "main(['--help'], prog_name='exfel-data')"],
                            ["-c", loaded])]
    assert "Commands:" in outputs[0] and "validate" in outputs[0]
    assert outputs[0] == outputs[1]
