"""Mean detector image over a run with dask, one module plotted to a PNG.

Generates a small corrected AGIPD-1M run in a temporary folder (``make_run``), opens the
detector, computes the mean image per module over all trains and pulses with dask (a
local ``dask.distributed`` cluster if ``--cluster`` is given), and plots one module.

    python recipes/detector_mean_image.py --out mean_module3.png --module 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use('Agg')  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

from exfel_data import RunDirectory  # noqa: E402
from exfel_data.detectors import AGIPD1M  # noqa: E402
from exfel_data.testing import AGIPD1M as SimulatedAGIPD  # noqa: E402
from exfel_data.testing import make_run  # noqa: E402


def mean_image(run_dir: Path, chunk_bytes: int):
    """Mean over trains and pulses of each module: DataArray (module, slow_scan, fast_scan)."""
    det = AGIPD1M(RunDirectory(run_dir))
    print(det)
    lazy = det.get_dask_array('image.data', chunk_bytes=chunk_bytes)
    print(f"lazy array {dict(lazy.sizes)}, {lazy.data.npartitions} chunks")
    return lazy.mean(dim=('train', 'pulse')).compute()


def plot_module(mean, module: int, out: Path):
    fig, ax = plt.subplots(figsize=(5, 8))
    img = ax.imshow(mean.sel(module=module).values, origin='lower', cmap='viridis')
    ax.set_title(f"AGIPD module {module}\nmean of {mean.attrs.get('frames', 'all')} frames")
    ax.set_xlabel('fast scan (px)')
    ax.set_ylabel('slow scan (px)')
    fig.colorbar(img, ax=ax, label='mean signal')
    fig.tight_layout()
    tmp = out.with_name(out.name + '.tmp.png')
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)  # complete file or none


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, default=Path('detector_mean_module.png'))
    ap.add_argument('--module', type=int, default=3)
    ap.add_argument('--trains', type=int, default=20)
    ap.add_argument('--cluster', action='store_true',
                    help='compute on a local dask.distributed cluster')
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_run(Path(tmp) / 'r0001', n_trains=args.trains, progress=False,
                           devices=list(SimulatedAGIPD(raw=False, frames_per_train=8,
                                                       module_shape=(128, 64),
                                                       corrected_naming='output')))
        if args.cluster:
            from dask.distributed import Client, LocalCluster
            with LocalCluster(n_workers=2, threads_per_worker=1,
                              dashboard_address=':0') as cluster, Client(cluster):
                mean = mean_image(run_dir, chunk_bytes=1 << 20)
        else:
            mean = mean_image(run_dir, chunk_bytes=1 << 20)
    mean.attrs['frames'] = args.trains * 8
    plot_module(mean, args.module, args.out)
    print(f"mean image {mean.shape}; module {args.module} plotted to {args.out}")


if __name__ == '__main__':
    main()
