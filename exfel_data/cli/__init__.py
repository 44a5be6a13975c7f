"""The ``exfel-data`` command line (also ``python -m exfel_data``).

Each command lives in its own module and is registered on :data:`main` here.
"""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exfel-data")
def main() -> None:
    """Inspect, validate and convert European XFEL-style HDF5 runs."""


def _register() -> None:
    # Imported here so that `import exfel_data.cli` stays cheap and free of cycles.
    from exfel_data.cli import convert, demo, info, merge, process, validate

    main.add_command(demo.demo)
    main.add_command(info.info)
    main.add_command(validate.validate)
    main.add_command(convert.convert)
    main.add_command(merge.merge)
    main.add_command(process.process)
    main.add_command(process.process_merge)


_register()
