"""Analysis runners: live worker scaling, hand-over cost, reducer rate, offline engines.

Measured (each prints one table row; the figures go to ``docs/benchmarks.md`` by hand):

1. ``scaling``: ``LiveRunner`` (policy ``wait``) on an in-memory stream of small trains
   with a ``process`` burning ~40 ms of CPU per train (and, to separate the runner from
   the machine's load, sleeping 40 ms), 1 and 2 workers: results/s over the second half
   of the results (worker start-up excluded). Target: 2 workers >= 1.8x.
2. ``handover``: the same with a trivial ``process`` (returns a float) on small trains
   (one XGM-like source, ~4 kB): wall time per train, end to end, and the CPU time the
   runner process spends per train (all its threads), both over the second half of the
   trains (start-up excluded). Target <= 100 us. Two inputs: a bridge
   stream (``client_trains``: another process PUSHes the encoded trains, the runner
   reads them in its dispatch loop and passes the frames on undecoded; the live case),
   and a Python iterable of train dicts (read in a feeder thread, pickled).
3. ``reducer``: the runner's result path alone (unpickling a result + ``Reducer.add``),
   and ``add`` alone, for both recipes: results/s. Target >= 5,000/s.
4. ``offline``: the mean-image recipe with ~10 ms of extra CPU per train over a
   generated run: a plain ``for tid, data in run.trains()`` loop, ``run_offline`` in
   process, with a local pool of 2 and on a dask.distributed ``LocalCluster`` (2 worker
   processes; cluster start-up excluded).

Run ``python -m benchmarks.bench_process`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BURN = """
import os
import time
import numpy as np
PARAMS = {"burn_s": 0.04, "sleep_s": 0.0}

def process(train_id, data, params):
    end = time.thread_time() + params["burn_s"]
    while time.thread_time() < end:
        pass
    if params["sleep_s"]:
        time.sleep(params["sleep_s"])
    return {"x": float(train_id), "pid": os.getpid(), "cpu": time.process_time()}

class Reducer:
    def __init__(self, params):
        self.times = []

    def add(self, train_id, result):
        # Wall time, CPU time of the runner process (this one: all its threads) and of
        # the worker process.
        self.times.append((time.perf_counter(), time.process_time(), result["pid"],
                           result["cpu"]))

    def partial(self):
        # The second half only: every worker has started by then.
        half = self.times[len(self.times) // 2:] or [(0.0, 0.0, 0, 0.0)]
        workers = {}
        for _, _, pid, cpu in half:
            workers.setdefault(pid, []).append(cpu)
        worker_cpu = sum(c[-1] - c[0] for c in workers.values())
        return {"n": len(half), "first": half[0][0], "last": half[-1][0],
                "cpu": half[-1][1] - half[0][1], "worker_cpu": worker_cpu}
"""


def _small_trains(n: int):
    from bridge.simulation import Simulator

    data, meta = Simulator("XGM").train(0)
    src = "SA1_XTD2_XGM/XGM/DOOCS:output"
    small = {src: {"data.intensityTD": data[src]["data.intensityTD"],
                   "metadata": dict(meta[src])}}
    for i in range(n):
        m = dict(small[src]["metadata"], **{"timestamp.tid": 10000 + i})
        yield {src: {**small[src], "metadata": m}}, {src: m}


PUSHER = """
import sys
import zmq
from bridge.protocol import serialize
sys.path.insert(0, sys.argv[3])
from benchmarks.bench_process import _small_trains

n = int(sys.argv[2])
messages = [serialize(data, meta) for data, meta in _small_trains(n)]
sock = zmq.Context().socket(zmq.PUSH)
sock.bind(sys.argv[1])
for frames in messages:
    sock.send_multipart(frames)
sys.stdin.read()  # connected until the runner is done: a client drops what it holds
sock.close(linger=-1)  # when its server disconnects
"""


def _pushed_trains(n: int):
    """The trains of :func:`_small_trains`, encoded and PUSHed by another process."""
    import socket
    import subprocess

    from bridge.process import client_trains

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    proc = subprocess.Popen([sys.executable, "-c", PUSHER, endpoint, str(n), str(ROOT)],
                            stdin=subprocess.PIPE)
    return client_trains([endpoint], sock="PULL", timeout=60), proc


def _live_rate(analysis: Path, n: int, workers: int, burn_s: float, sleep_s: float = 0.0,
               bridge_input: bool = False) -> tuple[float, float, float, float]:
    """(results/s, seconds per train, CPU seconds per train of the runner process and of
    the workers), over the second half of the results (start-up excluded)."""
    from bridge.process import LiveRunner

    proc = None
    if bridge_input:
        source, proc = _pushed_trains(n)
    else:
        source = _small_trains(n)
    runner = LiveRunner(source, analysis, {"burn_s": burn_s, "sleep_s": sleep_s},
                        workers=workers, policy="wait", report=lambda m: None, max_trains=n)
    res = runner.run()
    if proc is not None:
        proc.communicate(timeout=30)
    span = res.data["last"] - res.data["first"]
    per = res.data["n"] - 1
    return per / span, span / per, res.data["cpu"] / per, res.data["worker_cpu"] / per


def bench_scaling(analysis: Path, n: int) -> list[str]:
    rows = []
    for what, burn, sleep in (("burns 40 ms CPU", 0.04, 0.0), ("sleeps 40 ms", 0.0, 0.04)):
        one = _live_rate(analysis, n, 1, burn, sleep)[0]
        two = _live_rate(analysis, n, 2, burn, sleep)[0]
        rows += [f"| live, process {what}/train, 1 worker | {one:.1f} trains/s | |",
                 f"| live, same, 2 workers | {two:.1f} trains/s | {two / one:.2f}x "
                 "(target >= 1.8x) |"]
    return rows


def bench_handover(analysis: Path, n: int) -> list[str]:
    rows = []
    for bridge_input, what in ((True, "bridge stream"), (False, "Python iterable")):
        for workers in (1, 2):
            rate, per, cpu, wcpu = _live_rate(analysis, n, workers, 0.0,
                                              bridge_input=bridge_input)
            rows.append(f"| live hand-over, {what} of small trains, trivial process, "
                        f"{workers} worker(s): wall per train (CPU per train: runner; "
                        f"workers) | {per * 1e6:.0f} us ({cpu * 1e6:.0f} us; "
                        f"{wcpu * 1e6:.0f} us), {rate:.0f} trains/s | target <= 100 us |")
    return rows


def bench_reducer(n: int) -> list[str]:
    import zmq

    from bridge import process_worker as pw
    from bridge.process import LiveRunner
    from bridge.process_reduce import LiveReduction
    from exfel_data.analysis import load_analysis
    from exfel_data.analysis.stats import RunStats

    rows = []
    cases = {
        "analysis_scan.py": ({"bins": [0.0, 10.0, 50]},
                             lambda i: {"position": (i % 100) / 10, "intensity": 1.0 * i}),
        "analysis_mean_image.py": ({}, lambda i: {"image": np.full((64, 64), 1.0),
                                                  "roi_norm": 0.5}),
    }
    for name, (params, make) in cases.items():
        path = ROOT / "recipes" / name
        analysis = load_analysis(path)
        reducer = analysis.make_reducer(params | (analysis.defaults or {}) | params)
        results = [make(i) for i in range(n)]
        t0 = time.perf_counter()
        for i, r in enumerate(results):
            reducer.add(10000 + i, r)
        add_rate = n / (time.perf_counter() - t0)
        runner = LiveRunner([], path, params)
        reduction = LiveReduction(runner.analysis, runner.spec, runner.params, RunStats(),
                                  [], None, print)
        frames = []
        for r in results:
            bufs: list = []
            p = pickle.dumps(r, protocol=5, buffer_callback=bufs.append)
            frames.append([zmq.Frame(p)] + [zmq.Frame(b.raw()) for b in bufs])
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            reduction.deliver(i, 10000 + i, pw.RESULT, f)
        path_rate = n / (time.perf_counter() - t0)
        rows.append(f"| reducer {name}: unpickle + add (runner path) / add alone | "
                    f"{path_rate:,.0f} / {add_rate:,.0f} results/s | target >= 5,000/s |")
    return rows


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_offline(n_trains: int, tmp: Path) -> list[str]:
    from exfel_data import RunDirectory
    from exfel_data.analysis import load_analysis, run_offline
    from exfel_data.testing import XGM, Camera, Motor, make_run

    run = make_run(tmp / "run", n_trains=n_trains, trains_per_file=max(1, n_trains // 4),
                   devices=[XGM(n_samples=100), Motor(), Camera(shape=(256, 256))],
                   progress=False)
    ana = tmp / "heavy_mean.py"
    ana.write_text((ROOT / "recipes" / "analysis_mean_image.py").read_text().replace(
        "def process(train_id, data, params):",
        "def process(train_id, data, params):\n    import time\n"
        "    end = time.thread_time() + 0.01\n    while time.thread_time() < end:\n"
        "        pass"))
    loaded = load_analysis(ana)
    params = dict(loaded.defaults)
    rows = []
    cpu0 = _cpu()
    t0 = time.perf_counter()
    reducer = loaded.make_reducer(params)
    for tid, data in RunDirectory(str(run)).trains():
        result = loaded.process(tid, data, params)
        if result is not None:
            reducer.add(tid, result)
    reducer.partial()
    plain = time.perf_counter() - t0
    cpu = (_cpu() - cpu0) / n_trains
    rows.append(f"| offline, {n_trains} trains (256x256 camera, ~10 ms CPU/train): plain "
                f"loop | {n_trains / plain:.1f} trains/s, {cpu * 1e3:.1f} ms CPU/train | "
                "1.00x |")
    for label, kwargs in [("run_offline in process", {}),
                          ("run_offline --workers 2 (local pool)", {"workers": 2})]:
        cpu0 = _cpu()
        t0 = time.perf_counter()
        run_offline(run, ana, progress=False, **kwargs)
        dt = time.perf_counter() - t0
        cpu = (_cpu() - cpu0) / n_trains
        rows.append(f"| offline: {label} | {n_trains / dt:.1f} trains/s, {cpu * 1e3:.1f} ms "
                    f"CPU/train (all processes) | {plain / dt:.2f}x |")
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(lambda: None)
        t0 = time.perf_counter()
        run_offline(run, ana, scheduler=client, progress=False)
        dt = time.perf_counter() - t0
    rows.append(f"| offline: run_offline on a dask LocalCluster (2 processes) | "
                f"{n_trains / dt:.1f} trains/s | {plain / dt:.2f}x |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer trains (a minute or so)")
    args = ap.parse_args(argv)
    quick = args.quick
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        analysis = tmp / "burn.py"
        analysis.write_text(textwrap.dedent(BURN))
        rows = ["| measurement | result | vs / target |", "|---|---|---|"]
        for part in (lambda: bench_scaling(analysis, 40 if quick else 150),
                     lambda: bench_handover(analysis, 500 if quick else 3000),
                     lambda: bench_reducer(5000 if quick else 50000),
                     lambda: bench_offline(40 if quick else 160, tmp)):
            for row in part():
                rows.append(row)
                print(row, flush=True)
    load = os.getloadavg()[0]
    print(f"\n{os.cpu_count()} CPUs, load average {load:.1f} at the end "
          f"(python {sys.version.split()[0]})")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
