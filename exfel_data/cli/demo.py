"""``exfel-data demo``: write a sample run and show the main operations on it."""

from pathlib import Path

import click


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="demo-data",
              show_default=True, help="Folder to write the sample run into (as OUT/r0001).")
@click.option("--trains", "n_trains", type=click.IntRange(1, 10_000), default=50,
              show_default=True, help="Number of trains in the sample run.")
def demo(out: Path, n_trains: int) -> None:
    """Write a small sample run, print its summary, iterate trains and read a key.

    The run has an XGM, two motors, a camera and a raw AGIPD-1M with small modules; the
    same calls work on real runs (see docs/reading.md).
    """
    import numpy as np

    from exfel_data import AGIPD1M, RunDirectory, by_index
    from exfel_data.testing import default_devices, make_run

    run_dir = out / "r0001"
    if run_dir.exists():
        click.echo(f"Reusing the sample run in {run_dir} (delete it to write a new one)")
    else:
        click.echo(f"Writing a sample run of {n_trains} trains to {run_dir} ...")
        devices = default_devices(frames_per_train=4, module_shape=(64, 32),
                                  camera_shape=(32, 32))
        make_run(run_dir, n_trains=n_trains, devices=devices, trains_per_file=20)

    with RunDirectory(run_dir) as run:
        click.secho("\n$ run.info()", bold=True)
        run.info()

        click.secho("\n$ for train_id, data in run.select('*XGM*').trains(): ...", bold=True)
        xgm_run = run.select("*XGM*")
        for i, (train_id, data) in enumerate(xgm_run.trains()):
            if i == 3:
                break
            for source, values in data.items():
                keys = [k for k in values if k != "metadata"]
                more = f", ... ({len(keys)} keys)" if len(keys) > 3 else ""
                click.echo(f"  train {train_id}  {source}: {', '.join(keys[:3])}{more}")

        click.secho("\n$ run['SA1_XTD2_XGM/XGM/DOOCS:output', 'data.intensityTD'].xarray()",
                    bold=True)
        intensity = run["SA1_XTD2_XGM/XGM/DOOCS:output", "data.intensityTD"].xarray()
        click.echo(intensity)
        click.echo(f"  mean pulse energy of the first 10 pulses per train: "
                   f"{np.asarray(intensity[:, :10].mean()):.4g}")

        click.secho("\n$ AGIPD1M(run, raw=True).get_array('image.data', "
                    "pulses=by_index[:2])", bold=True)
        frames = AGIPD1M(run, raw=True).get_array("image.data", pulses=by_index[:2])
        click.echo(f"  dims {frames.dims}\n  shape {frames.shape}, dtype {frames.dtype}")
