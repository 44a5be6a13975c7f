"""Conversion speed and memory: ``exfel-data convert`` vs plain h5py/numpy, same data.

Writes a raw AGIPD run (plus an XGM) with ``exfel_data.testing.make_run`` and converts the
selection ``*/DET/*[image.data]`` + ``SA1_XTD2_XGM/*`` with:

- ``ours exdf``: ``convert(..., 'exdf')`` -- a valid run folder of the selection.
- ``h5py exdf``: the floor: the same datasets read with h5py block by block and written
  to new HDF5 files with h5py (no INDEX, METADATA or validity checks).
- ``ours npz`` / ``numpy npz``: ``convert(..., 'npz')`` vs the same arrays read with h5py
  and saved with ``np.savez`` (which holds everything in memory).
- ``ours exdf/npz --workers 2``: the same conversions with two local worker processes
  (includes starting them).
- ``ours npz --workers 2, zipfile merge``: the library way instead of the hand-written
  ZIP64 writer (``write/zipstore.py``): workers write part archives, merged with
  ``zipfile`` (what every other format does); kept only while it is slower.
- PNG encoding (``write/png.py``, zlib + struct) against Pillow (the ``plot`` extra) on
  the same 8-bit images, per image: the hand-written encoder is kept only while faster.

Every measurement runs in a fresh process (peak memory is its own; imports are done before
the clock starts), the files are in the page cache (one warm-up read), the best of
``--repeat`` runs is reported with the peak resident memory of the measuring process (the
``--workers`` rows: the largest of the parent and its worker processes).
Target: ours >= 70% of the floor's throughput; ``--workers 2`` no slower than one worker.

Run ``python -m benchmarks.bench_convert`` (``--quick`` for a short run). The table is
appended to ``docs/benchmarks.md`` under ``## Conversion`` unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELECT = ["*/DET/*[image.data]", "SA1_XTD2_XGM/*"]
CASES = {
    "h5py_exdf": "plain h5py read + h5py write (floor for exdf)",
    "ours_exdf": "exfel-data convert --to exdf",
    "ours_exdf_w2": "exfel-data convert --to exdf --workers 2",
    "numpy_npz": "plain h5py read + np.savez (floor for npz)",
    "ours_npz": "exfel-data convert --to npz",
    "ours_npz_w2": "exfel-data convert --to npz --workers 2",
    "ours_npz_w2_zipfile": "exfel-data convert --to npz --workers 2, zipfile merge",
}
CONFIGS = {
    # modules, frames per train, module shape, trains
    "full": dict(modules=8, frames=32, shape=(512, 128), n_trains=24),
    "quick": dict(modules=4, frames=16, shape=(256, 128), n_trains=12),
}


def make_bench_run(path: Path, cfg: dict) -> Path:
    from exfel_data.testing import AGIPD1M, XGM, make_run

    devices = [XGM(), *AGIPD1M(frames_per_train=cfg["frames"], module_shape=cfg["shape"],
                               n_modules=cfg["modules"])]
    return make_run(path, n_trains=cfg["n_trains"], trains_per_file=cfg["n_trains"] // 3,
                    devices=devices, progress=False)


def _selected_datasets(run_path: Path) -> list[tuple[Path, str, int, int]]:
    """(file, dataset, first row, stop row) of the selection, read from INDEX with h5py."""
    import h5py

    out = []
    for fname in sorted(run_path.glob("*.h5")):
        with h5py.File(fname, "r") as f:
            def visit(name, obj, f=f, fname=fname):
                if not isinstance(obj, h5py.Dataset):
                    return
                if "/DET/" in name and name.endswith("image/data") or \
                        name.startswith(("CONTROL/SA1_XTD2_XGM", "INSTRUMENT/SA1_XTD2_XGM")):
                    if name.endswith("/trainId"):
                        return
                    parts = name.split("/")
                    sec = parts[0]
                    if sec == "CONTROL":
                        idx = "INDEX/" + "/".join(parts[1:4])
                    else:
                        i = next(i for i, p in enumerate(parts) if ":" in p)
                        idx = "INDEX/" + "/".join(parts[1:i + 2])
                    first, count = f[idx]["first"][()], f[idx]["count"][()]
                    used = count > 0
                    if used.any():
                        a = int(first[used].min())
                        b = int((first + count)[used].max())
                        out.append((fname, name, a, b))
            f.visititems(visit)
    return out


def _h5py_exdf(run_path: Path, out: Path) -> int:
    import h5py

    out.mkdir()
    nbytes = 0
    by_file: dict[Path, list] = {}
    for fname, ds, a, b in _selected_datasets(run_path):
        by_file.setdefault(fname, []).append((ds, a, b))
    for fname, items in by_file.items():
        with h5py.File(fname, "r") as fi, h5py.File(out / fname.name, "w") as fo:
            for ds, a, b in items:
                src = fi[ds]
                dst = fo.create_dataset(ds, (b - a,) + src.shape[1:], dtype=src.dtype,
                                        chunks=src.chunks and tuple(
                                            min(c, max(s, 1)) for c, s in
                                            zip(src.chunks, (b - a,) + src.shape[1:], strict=True)))
                step = max(1, (64 << 20) // max(src[0:1].nbytes, 1))
                for s in range(a, b, step):
                    block = src[s:min(b, s + step)]
                    dst[s - a:s - a + len(block)] = block
                    nbytes += block.nbytes
    return nbytes


def _numpy_npz(run_path: Path, out: Path) -> int:
    import h5py
    import numpy as np

    arrays: dict[str, list] = {}
    for fname, ds, a, b in _selected_datasets(run_path):
        with h5py.File(fname, "r") as f:
            arrays.setdefault(ds, []).append(f[ds][a:b])
    full = {k: np.concatenate(v) for k, v in arrays.items()}
    np.savez(out, **full)
    return sum(v.nbytes for v in full.values())


def _ours(run_path: Path, out: Path, fmt: str, workers: int | None,
          library_zip: bool = False) -> int:
    from exfel_data.write.convert import convert
    from exfel_data.write.npz import NpzWriter

    if library_zip:  # parts written and merged with zipfile, no preallocated archive
        NpzWriter.direct_parallel = None

    res = convert(run_path, out, fmt, select=SELECT, workers=workers)
    return res["nbytes"]


def run_case(case: str, run_path: Path, out_dir: Path) -> dict:
    """One measurement in this process (called in a fresh subprocess)."""
    fmt = "exdf" if "exdf" in case else "npz"
    out = out_dir / ("out" if fmt == "exdf" else "out.npz")
    # Imports are not part of the measurement (exfel_data pulls in xarray, pandas, dask).
    import h5py  # noqa: F401
    import numpy  # noqa: F401

    import exfel_data.write.convert  # noqa: F401
    import exfel_data.write.exdf  # noqa: F401
    import exfel_data.write.npz  # noqa: F401

    t0 = time.perf_counter()
    if case == "h5py_exdf":
        nbytes = _h5py_exdf(run_path, out)
    elif case == "numpy_npz":
        nbytes = _numpy_npz(run_path, out)
    else:
        nbytes = _ours(run_path, out, fmt, 2 if "_w2" in case else None,
                       library_zip=case.endswith("_zipfile"))
    seconds = time.perf_counter() - t0
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"case": case, "seconds": seconds, "nbytes": nbytes, "peak_mb": peak}


def _in_subprocess(case: str, run_path: Path, work: Path) -> dict:
    out_dir = work / f"out-{case}"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    code = ("import json, sys; from pathlib import Path; "
            "from benchmarks.bench_convert import run_case; "
            f"print(json.dumps(run_case({case!r}, Path({str(run_path)!r}), "
            f"Path({str(out_dir)!r}))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    shutil.rmtree(out_dir, ignore_errors=True)
    if res.returncode:
        raise RuntimeError(f"{case} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run, one repeat")
    ap.add_argument("--repeat", type=int, default=None, help="runs per case (best is kept)")
    ap.add_argument("--no-docs", action="store_true", help="do not append to docs/benchmarks.md")
    ap.add_argument("--dir", help="work folder (default: a temporary one)")
    args = ap.parse_args(argv)
    cfg = CONFIGS["quick" if args.quick else "full"]
    repeat = args.repeat or (1 if args.quick else 3)
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        run_path = make_bench_run(work / "r0001", cfg)
        size = sum(f.stat().st_size for f in run_path.glob("*.h5"))
        for f in run_path.glob("*.h5"):  # warm the page cache
            f.read_bytes()
        best: dict[str, dict] = {}
        for _ in range(repeat):
            for case in CASES:
                r = _in_subprocess(case, run_path, work)
                if case not in best or r["seconds"] < best[case]["seconds"]:
                    best[case] = r
                print(f"{case:14s} {r['seconds']:7.2f} s  {r['nbytes'] / r['seconds'] / 1e6:8.1f} "
                      f"MB/s  peak {r['peak_mb']:7.0f} MB", flush=True)
        table = _table(best, cfg, size, repeat) + "\n\n" + png_encoders(repeat)
        print(table)
        if not args.no_docs:
            _append_docs(table)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def _table(best: dict, cfg: dict, size: int, repeat: int) -> str:
    floor = {"exdf": best["h5py_exdf"], "npz": best["numpy_npz"]}
    one = {"exdf": best["ours_exdf"], "npz": best["ours_npz"]}
    lines = [
        f"Run: {cfg['modules']} raw AGIPD modules x {cfg['frames']} frames x "
        f"{cfg['n_trains']} trains, module {cfg['shape']}, + XGM; {size / 1e6:.0f} MB on disk; "
        f"selection {' '.join(SELECT)}; best of {repeat}; "
        f"{time.strftime('%Y-%m-%d')}, {_cpus()} CPUs.",
        "",
        "| case | time (s) | MB/s | vs floor | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for case, label in CASES.items():
        r = best[case]
        fmt = "exdf" if "exdf" in case else "npz"
        rel = floor[fmt]["seconds"] / r["seconds"]
        extra = ""
        if "_w2" in case:
            extra = f" ({one[fmt]['seconds'] / r['seconds']:.2f}x one worker)"
        lines.append(f"| {label} | {r['seconds']:.2f} | {r['nbytes'] / r['seconds'] / 1e6:.0f} | "
                     f"{rel:.0%}{extra} | {r['peak_mb']:.0f} |")
    return "\n".join(lines)


def png_encoders(repeat: int) -> str:
    """Table: ms per image for ``encode_png`` and Pillow, same 8-bit images (a camera-like
    smooth image and detector-like noise), zlib level 6 for both."""
    import io

    import numpy as np
    from PIL import Image

    from exfel_data.write.png import encode_png

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:1024, :1024]
    images = {
        "camera 1024x1024 (smooth)": (128 + 100 * np.sin(xx / 50) * np.cos(yy / 70)
                                      ).astype(np.uint8),
        "module 512x128 (noise)": rng.normal(100, 10, (512, 128)).clip(0, 255).astype(np.uint8),
    }

    def pillow(grey):
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, "PNG", compress_level=6)
        return buf.getvalue()

    lines = ["PNG encoding, ms per image (best of 20 x repeat):", "",
             "| image | write/png.py | Pillow | Pillow / ours |", "|---|---|---|---|"]
    for name, grey in images.items():
        best = {}
        for label, encode in (("ours", encode_png), ("pillow", pillow)):
            times = []
            for _ in range(20 * repeat):
                t0 = time.perf_counter()
                encode(grey)
                times.append(time.perf_counter() - t0)
            best[label] = min(times) * 1e3
        lines.append(f"| {name} | {best['ours']:.2f} | {best['pillow']:.2f} | "
                     f"{best['pillow'] / best['ours']:.2f} |")
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _append_docs(table: str) -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    section = "## Conversion"
    entry = f"\n{table}\n"
    if section in text:
        head, _, rest = text.partition(section)
        nxt = rest.find("\n## ")
        body, tail = (rest, "") if nxt < 0 else (rest[:nxt], rest[nxt:])
        text = head + section + body.rstrip("\n") + "\n" + entry + tail
    else:
        text = text.rstrip("\n") + f"\n\n{section}\n\n`python -m benchmarks.bench_convert` " \
            "(see its docstring for what is measured).\n" + entry
    docs.write_text(text)


if __name__ == "__main__":
    main()
