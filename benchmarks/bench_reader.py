"""Offline reader: exfel_data vs EXtra-data (and plain h5py) on the same generated runs.

Writes two runs with ``exfel_data.testing.make_run``:

- a ~450-file run (16 AGIPD modules x 25 sequence files of 16 trains, plus DA01/DA02 with an XGM,
  a motor and a camera; small frames), used to time opening the run without any index cache
  ("cold": page cache warm, no run map of either tool), opening it again (each tool's own
  cache in place), ``info()``, iterating over all trains with all sources, and with one
  selected source (the XGM);
- a single-module raw AGIPD run whose ``image.data`` is ~1 GiB (``--quick``: 128 MiB), read
  with ``ndarray()`` by both tools and with plain h5py ``read_direct`` into one preallocated
  array (the floor).

Each measurement runs in a fresh process, the best of ``--repeat`` runs is reported with the
peak resident memory above the process baseline. Run ``python -m benchmarks.bench_reader``
(``--quick`` for a short run). The table is appended to ``docs/benchmarks.md`` under
``## Reader`` unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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

XGM_OUT = 'SA1_XTD2_XGM/XGM/DOOCS:output'
DET_SRC = 'SPB_DET_AGIPD1M-1/DET/0CH0:xtdf'
CASES = {
    # name: (label, which run, which tools)
    'open_cold': ('open the many-file run, no index cache', 'many', ('ours', 'extra')),
    'open_again': ('open it again (own cache present)', 'many', ('ours', 'extra')),
    'info': ('open + info()', 'many', ('ours', 'extra')),
    'iter_all': ('iterate all trains, all sources', 'many', ('ours', 'extra')),
    'iter_one': ('iterate all trains, XGM output only', 'many', ('ours', 'extra')),
    'read_big': ('read detector image.data (ndarray; open not timed)', 'big',
                 ('h5py', 'ours', 'extra')),
}
CONFIGS = {
    # 16 modules x 25 sequence files + DA01 (25) + DA02 (26) = 451 files
    'full': dict(n_trains=400, trains_per_file=16, frames=4, big_trains=64, big_tpf=16),
    'quick': dict(n_trains=64, trains_per_file=8, frames=2, big_trains=8, big_tpf=4),
}


def make_runs(base: Path, cfg: dict) -> dict[str, Path]:
    from exfel_data.testing import AGIPD1M, XGM, Camera, Motor, make_run

    many = make_run(base / 'many' / 'r0001', n_trains=cfg['n_trains'],
                    trains_per_file=cfg['trains_per_file'], progress=True,
                    devices=[XGM(), Motor('SPB_IRU_MOTORS/MOTOR/X'), Camera(shape=(64, 48)),
                             *AGIPD1M(frames_per_train=cfg['frames'], module_shape=(64, 32))])
    big = make_run(base / 'big' / 'r0002', n_trains=cfg['big_trains'],
                   trains_per_file=cfg['big_tpf'], progress=True,
                   devices=[*AGIPD1M(frames_per_train=64, modules=[0])])
    return {'many': many, 'big': big}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _drop_caches(path: Path) -> None:
    for name in ('.exfel_data_map.npz', 'karabo_data_map.json'):
        with contextlib.suppress(FileNotFoundError):
            (path / name).unlink()
    from exfel_data.run_map import RunMap

    for cand in RunMap(str(path)).candidates:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cand)


def _open(tool: str, path: Path):
    if tool == 'ours':
        import exfel_data
        return exfel_data.RunDirectory(path)
    import extra_data
    return extra_data.RunDirectory(path)


def run_case(case: str, tool: str, path: Path) -> dict:
    """Time one case in this process; returns seconds, peak RSS above baseline, detail."""
    warnings.simplefilter('ignore')
    import numpy as np  # noqa: F401  (imported before the baseline)
    if tool == 'ours':
        # exfel_data loads its modules on first use; `import extra_data` loads everything
        # (pandas and xarray too). Load ours before the clock starts, so both are compared
        # on the work and not on import order.
        import pandas  # noqa: F401
        import xarray  # noqa: F401

        import exfel_data.opening  # noqa: F401
        import exfel_data.summary  # noqa: F401
    elif tool == 'extra':
        import extra_data  # noqa: F401
    import h5py

    if case == 'open_cold':
        _drop_caches(path)
    elif case == 'open_again':
        _open(tool, path)  # make sure this tool's cache exists, in this process...
        if tool == 'ours':
            from exfel_data.file_access import handle_pool
            handle_pool.forget_all()
        else:  # ... and that extra-data does not reuse its open FileAccess objects
            import gc

            from extra_data import file_access
            gc.collect()
            file_access.file_access_registry.clear()
    base = _rss_mb()
    detail = ''
    t0 = time.perf_counter()
    if case in ('open_cold', 'open_again'):
        run = _open(tool, path)
        detail = f'{len(run.files)} files'
    elif case == 'info':
        run = _open(tool, path)
        with contextlib.redirect_stdout(io.StringIO()):
            run.info()
    elif case in ('iter_all', 'iter_one'):
        run = _open(tool, path)
        if case == 'iter_one':
            run = run.select(XGM_OUT)
        t0 = time.perf_counter()  # iteration only
        n = sum(1 for _ in run.trains())
        detail = f'{n} trains'
    elif case == 'read_big':
        if tool == 'h5py':
            files = sorted(path.glob('*AGIPD00*.h5'))
            dsets = []
            total = 0
            for f in files:
                h = h5py.File(f, 'r')
                n = int(h[f'INDEX/{DET_SRC}/image/count'][:].sum())
                ds = h[f'INSTRUMENT/{DET_SRC}/image/data']
                dsets.append((h, ds, n))
                total += n
            t0 = time.perf_counter()  # the read only
            out = np.empty((total,) + dsets[0][1].shape[1:], dsets[0][1].dtype)
            pos = 0
            for _h, ds, n in dsets:
                ds.read_direct(out, np.s_[0:n], np.s_[pos:pos + n])
                pos += n
        else:
            kd = _open(tool, path)[DET_SRC, 'image.data']
            t0 = time.perf_counter()  # the read only
            out = kd.ndarray()
        detail = f'{out.nbytes / 2**30:.2f} GiB'
    seconds = time.perf_counter() - t0
    return {'seconds': seconds, 'rss_mb': _rss_mb() - base, 'detail': detail}


def measure(case: str, tool: str, path: Path, repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, '-m', 'benchmarks.bench_reader', '--case', case, '--tool', tool,
             '--path', str(path)],
            capture_output=True, text=True, check=True,
            env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or res['seconds'] < best['seconds']:
            best = res
    return best


def fmt_table(results: dict) -> str:
    lines = ['| task | exfel_data | extra-data | extra-data / exfel_data | h5py floor | detail |',
             '|---|---|---|---|---|---|']
    for case, (label, _run, _tools) in CASES.items():
        r = results.get(case, {})
        ours, extra, h5 = r.get('ours'), r.get('extra'), r.get('h5py')

        def cell(x):
            return f"{x['seconds'] * 1e3:.0f} ms ({x['rss_mb']:.0f} MB)" if x else '-'

        ratio = f"{extra['seconds'] / ours['seconds']:.1f}x" if ours and extra else '-'
        detail = (ours or extra or {}).get('detail', '')
        if case.startswith('iter') and ours:
            n = int(detail.split()[0]) or 1
            detail += f"; {ours['seconds'] / n * 1e3:.2f} vs " \
                      f"{extra['seconds'] / n * 1e3:.2f} ms/train" if extra else ''
        if h5 and ours:
            detail += f"; exfel_data / h5py = {ours['seconds'] / h5['seconds']:.2f}"
        lines.append(f'| {label} | {cell(ours)} | {cell(extra)} | {ratio} | {cell(h5)} | '
                     f'{detail} |')
    return '\n'.join(lines)


def write_docs(table: str, header: str) -> None:
    doc = Path(__file__).resolve().parent.parent / 'docs' / 'benchmarks.md'
    text = doc.read_text() if doc.exists() else '# Benchmarks\n'
    section = f'## Reader\n\n{header}\n\n{table}\n'
    if '## Reader' in text:
        text = re.sub(r'## Reader\n.*?(?=\n## |\Z)', section, text, flags=re.S)
    else:
        text = text.rstrip('\n') + '\n\n' + section
    tmp = doc.with_suffix('.md.tmp')
    tmp.write_text(text)
    tmp.replace(doc)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='small runs (~1 minute)')
    ap.add_argument('--repeat', type=int, default=3, help='best of N runs per case')
    ap.add_argument('--dir', type=Path, help='where to write the runs (default: a temp dir)')
    ap.add_argument('--keep', action='store_true', help='keep the generated runs')
    ap.add_argument('--no-docs', action='store_true', help="don't update docs/benchmarks.md")
    ap.add_argument('--case', help=argparse.SUPPRESS)
    ap.add_argument('--tool', help=argparse.SUPPRESS)
    ap.add_argument('--path', type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.case:  # child process: one measurement, JSON on stdout
        print(json.dumps(run_case(args.case, args.tool, args.path)))
        return

    cfg = CONFIGS['quick' if args.quick else 'full']
    base = Path(tempfile.mkdtemp(prefix='bench_reader_', dir=args.dir))
    try:
        print(f'Writing runs in {base} ...', file=sys.stderr)
        runs = make_runs(base, cfg)
        results: dict[str, dict] = {}
        for case, (label, which, tools) in CASES.items():
            for tool in tools:
                print(f'  {label}: {tool}', file=sys.stderr)
                results.setdefault(case, {})[tool] = measure(case, tool, runs[which],
                                                             args.repeat)
        table = fmt_table(results)
        header = (f"`python -m benchmarks.bench_reader{' --quick' if args.quick else ''}`, "
                  f"best of {args.repeat}, each in a fresh process, files in the page cache; "
                  f"{os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.1f} at the end. Memory: peak RSS above the "
                  "process baseline.")
        print(header)
        print(table)
        if not args.no_docs:
            write_docs(table, header)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
