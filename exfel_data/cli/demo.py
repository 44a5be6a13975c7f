"""``exfel-data demo``: write a sample run and show the main operations on it."""

import click


@click.command()
@click.option("--out", type=click.Path(file_okay=False), default="demo-data",
              show_default=True, help="Folder to write the sample run into.")
def demo(out: str) -> None:
    """Write a small sample run, print its summary, iterate trains and read a key."""
    raise click.ClickException("demo is not implemented yet")
