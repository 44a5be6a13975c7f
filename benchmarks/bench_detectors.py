"""Multi-module detector reads: exfel_data vs EXtra-data vs plain h5py, same generated run.

Writes a 16-module corrected AGIPD run with ``exfel_data.testing.make_run`` and measures:

- ``get_array``: a labelled array (module, train, pulse, ss, fs) of a selection of trains
  (~1 GiB, ``--quick``: ~128 MiB) with exfel_data, with EXtra-data's default labelled path
  (``extra_data.components.AGIPD1M(...).get_array``, which unstacks pulses), and the same
  bytes read with plain h5py ``read_direct`` into one preallocated array (the floor).
- ``dask mean``: mean image per module over all frames of the run, with our
  ``get_dask_array`` and with EXtra-data's ``get_dask_array`` (threaded scheduler).

Every measurement runs in a fresh process (so peak memory is its own), files are in the
page cache (one warm-up pass), the best of ``--repeat`` runs is reported with the peak
resident memory above the process's baseline.

Run ``python -m benchmarks.bench_detectors`` (``--quick`` for a short run). The table is
appended to ``docs/benchmarks.md`` under ``## Detectors`` unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

DET = 'SPB_DET_AGIPD1M-1'
KEY = 'image.data'
CASES = ('h5py', 'ours', 'extra', 'ours_dask', 'extra_dask')
LABELS = {
    'h5py': 'plain h5py read_direct (same bytes, no labels)',
    'ours': 'exfel_data AGIPD1M.get_array',
    'extra': 'extra_data AGIPD1M.get_array (default, unstacked)',
    'ours_dask': 'exfel_data get_dask_array().mean()',
    'extra_dask': 'extra_data get_dask_array().mean()',
}
CONFIGS = {
    # frames per train, module shape, trains in run, trains selected for get_array
    'full': dict(frames=32, shape=(512, 128), n_trains=24, n_sel=8),
    'quick': dict(frames=16, shape=(256, 128), n_trains=12, n_sel=4),
}


def make_bench_run(path: Path, cfg: dict) -> Path:
    from exfel_data.testing import AGIPD1M, make_run
    devices = list(AGIPD1M(raw=False, frames_per_train=cfg['frames'], module_shape=cfg['shape'],
                           corrected_naming='output'))
    return make_run(path, n_trains=cfg['n_trains'], trains_per_file=cfg['n_trains'] // 3,
                    devices=devices, progress=True)


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1024 ** 2


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _h5py_read(run_path: Path, train_ids) -> object:
    """Read the selected trains of every module with h5py only (the floor)."""
    import h5py
    import numpy as np
    mods = []
    for m in range(16):
        files = sorted(run_path.glob(f'*-AGIPD{m:02d}-S*.h5'))
        mods.append(files)
    src = f'{DET}/CORR/{{}}CH0:output'
    with h5py.File(mods[0][0], 'r') as f:
        ds = f[f'INSTRUMENT/{src.format(0)}/image/data']
        entry, dtype = ds.shape[1:], ds.dtype
    plans = []
    for m, files in enumerate(mods):
        for fn in files:
            f = h5py.File(fn, 'r')
            tids = f['INDEX/trainId'][:]
            first = f[f'INDEX/{src.format(m)}/image/first'][:]
            count = f[f'INDEX/{src.format(m)}/image/count'][:]
            sel = np.isin(tids, train_ids) & (count > 0)
            if sel.any():
                a = int(first[sel][0])
                b = int(first[sel][-1] + count[sel][-1])
                plans.append((m, f[f'INSTRUMENT/{src.format(m)}/image/data'], a, b))
    n_frames = sum(b - a for (m, _, a, b) in plans if m == 0)
    out = np.empty((16, n_frames) + entry, dtype=dtype)
    cursor = [0] * 16
    for m, ds, a, b in plans:
        ds.read_direct(out[m, cursor[m]:cursor[m] + b - a], source_sel=np.s_[a:b])
        cursor[m] += b - a
    return out


def run_case(case: str, run_path: Path, n_sel: int) -> dict:
    """Run one measurement in this process; return timings and memory."""
    warnings.simplefilter('ignore')
    import dask.array  # noqa: F401  (imports are not what we measure)
    import numpy as np
    import xarray  # noqa: F401
    base = _rss_mb()
    t_setup = time.perf_counter()
    if case in ('ours', 'ours_dask'):
        from exfel_data import RunDirectory, by_index
        from exfel_data.detectors import AGIPD1M
        det = AGIPD1M(RunDirectory(run_path))
        if case == 'ours':
            det = det.select_trains(by_index[:n_sel])
    elif case in ('extra', 'extra_dask'):
        import extra_data
        from extra_data.components import AGIPD1M
        det = AGIPD1M(extra_data.RunDirectory(str(run_path)))
        if case == 'extra':
            det = det.select_trains(extra_data.by_index[:n_sel])
    else:
        import h5py  # noqa: F401

        from exfel_data import RunDirectory
        train_ids = np.asarray(RunDirectory(run_path).train_ids[:n_sel])
    setup = time.perf_counter() - t_setup
    base = max(base, _rss_mb())

    t0 = time.perf_counter()
    if case == 'h5py':
        res = _h5py_read(run_path, train_ids)
    elif case in ('ours', 'extra'):
        res = det.get_array(KEY)
    elif case == 'ours_dask':
        res = det.get_dask_array(KEY).data.mean(axis=(1, 2)).compute()
    else:
        res = det.get_dask_array(KEY).mean('train_pulse').compute()
    elapsed = time.perf_counter() - t0
    nbytes = int(res.nbytes)
    return {'case': case, 'seconds': elapsed, 'setup_seconds': setup, 'nbytes': nbytes,
            'peak_extra_mb': _peak_mb() - base, 'dtype': str(res.dtype),
            'shape': list(res.shape)}


def measure(case: str, run_path: Path, n_sel: int, repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, '-m', 'benchmarks.bench_detectors', '--one', case,
             '--run', str(run_path), '--n-sel', str(n_sel)],
            capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(f"{case} failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or res['seconds'] < best['seconds']:
            best = res
    return best


def warm_cache(run_path: Path):
    for fn in run_path.glob('*.h5'):
        with open(fn, 'rb') as f:
            while f.read(64 * 1024 ** 2):
                pass


def format_table(results: dict, cfg: dict, run_bytes: int) -> str:
    sel_gib = results['ours']['nbytes'] / 1024 ** 3
    lines = [
        f"Run: 16-module corrected AGIPD, {cfg['n_trains']} trains x {cfg['frames']} frames, "
        f"module {cfg['shape'][0]}x{cfg['shape'][1]} float32 ({run_bytes / 1024 ** 3:.2f} GiB "
        f"of files); `get_array` of {cfg['n_sel']} trains ({sel_gib:.2f} GiB). "
        f"Page cache warm, best of the repeats, each in a fresh process; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
        f"(a shared machine: compare the ratios, absolute times vary).",
        '',
        '| operation | time (s) | vs ours | peak extra memory (MiB) | output |',
        '|---|---|---|---|---|',
    ]
    for group in (('h5py', 'ours', 'extra'), ('ours_dask', 'extra_dask')):
        ref = results[group[1] if group[0] == 'h5py' else group[0]]['seconds']
        for case in group:
            r = results[case]
            lines.append(
                f"| {LABELS[case]} | {r['seconds']:.3f} | {r['seconds'] / ref:.2f}x | "
                f"{r['peak_extra_mb']:.0f} | {tuple(r['shape'])} {r['dtype']} |")
    o, e, h = (results[c]['seconds'] for c in ('ours', 'extra', 'h5py'))
    od, ed = results['ours_dask']['seconds'], results['extra_dask']['seconds']
    lines += [
        '',
        f"- get_array: {e / o:.1f}x faster than EXtra-data (target >= 5x); "
        f"{(o / h - 1) * 100:+.0f}% vs plain h5py (target within 20%; faster than h5py's "
        f"defaults because whole-frame reads bypass HDF5's chunk cache).",
        f"- dask mean over all frames: {ed / od:.1f}x faster than EXtra-data "
        f"(peak extra memory {results['ours_dask']['peak_extra_mb']:.0f} MiB vs "
        f"{results['extra_dask']['peak_extra_mb']:.0f} MiB).",
    ]
    return '\n'.join(lines)


def write_docs(table: str, mode: str, docs: Path):
    cmd = 'python -m benchmarks.bench_detectors' + (' --quick' if mode == 'quick' else '')
    section = f"## Detectors\n\n`{cmd}`\n\n{table}\n"
    text = docs.read_text() if docs.exists() else '# Benchmarks\n'
    pattern = re.compile(r'^## Detectors\n.*?(?=^## |\Z)', re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(section + '\n', text).rstrip('\n') + '\n'
    else:
        text = text.rstrip('\n') + '\n\n' + section
    tmp = docs.with_suffix('.md.tmp')
    tmp.write_text(text)
    tmp.replace(docs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='small run (~128 MiB selection)')
    ap.add_argument('--dir', help='where to write the run (default: a temporary folder)')
    ap.add_argument('--keep', action='store_true', help='keep the generated run')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--no-docs', action='store_true', help='do not update docs/benchmarks.md')
    ap.add_argument('--one', choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument('--run', help=argparse.SUPPRESS)
    ap.add_argument('--n-sel', type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one:
        print(json.dumps(run_case(args.one, Path(args.run), args.n_sel)))
        return

    mode = 'quick' if args.quick else 'full'
    cfg = CONFIGS[mode]
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix='bench_det_'))
    run_path = root / f'r_{mode}'
    try:
        if not run_path.exists():
            print(f"Writing {mode} run to {run_path} ...", file=sys.stderr)
            make_bench_run(run_path, cfg)
        run_bytes = sum(f.stat().st_size for f in run_path.glob('*.h5'))
        warm_cache(run_path)
        results = {}
        for case in CASES:
            print(f"  {LABELS[case]} ...", file=sys.stderr, flush=True)
            results[case] = measure(case, run_path, cfg['n_sel'], args.repeat)
        table = format_table(results, cfg, run_bytes)
        print(table)
        if not args.no_docs:
            docs = Path(__file__).resolve().parent.parent / 'docs' / 'benchmarks.md'
            write_docs(table, mode, docs)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
