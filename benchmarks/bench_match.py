"""Train matching and recording: throughput, added latency, and recording vs plain h5py.

Three measurements, senders always in other processes (loopback TCP):

1. **Matching small trains**: 2 streams (PUSH, policy ``wait``, one process each) send
   trains of one small source as fast as they can; ``bridge.TrainMatcher`` (PULL clients,
   ``receive_ahead=100``) matches them. Reported: matched trains/s (best of 3; 2 with
   ``--quick``), against the floor of two plain ``bridge.Client`` threads receiving the same
   streams without matching. Target >= 5,000 matched trains/s.
2. **16 AGIPD modules at 10 Hz**: one process sends each train's 16 module sources (one PUSH
   server per module, ``policy='queue'``) at 10 trains/s, stamped with the time the train's
   sending starts; the matcher joins them. Reported: latency from that time to the matched
   train reaching the caller, median and 95th percentile, against 16 plain Clients (one
   thread each) receiving the same streams: the time the last part of a train arrived
   (transfer alone). Target: added latency < 50 ms.
3. **Recording**: the same trains (an AGIPD module + XGM) written by ``bridge.record.Recorder``
   and by plain h5py into preallocated datasets, best of 4 (alternating), into tmpfs
   (``/dev/shm``) so that the disk's write-back does not decide. Target: ours >= 0.8 of h5py.

Run ``python -m benchmarks.bench_match`` (``--quick`` for a short run). The table goes to
``docs/benchmarks.md`` under ``## Matching and recording`` unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MODULE = "SPB_DET_AGIPD1M-1/CORR/{}CH0:output"
CONFIGS = {
    "full": dict(small_trains=20000, small_repeat=3, module_pulses=64, module_trains=60,
                 rec_trains=100, rec_pulses=32),
    "quick": dict(small_trains=8000, small_repeat=2, module_pulses=16, module_trains=40,
                  rec_trains=60, rec_pulses=16),
}


def _small_train(source: str, tid: int) -> dict:
    return {source: {"data.value": np.arange(16, dtype=np.float32), "data.flag": 1,
                     "metadata": {"source": source, "timestamp.tid": tid}}}


def _small_sender(conn, source: str, n: int) -> None:
    from bridge import Server

    with Server("tcp://127.0.0.1:0", sock="PUSH", max_queue=100) as server:
        conn.send(server.endpoint)
        conn.recv()                       # go
        for tid in range(1, n + 1):
            server.feed(_small_train(source, tid))
        server.drain(60)
        conn.recv()                       # stop


def _start_senders(target, args_list) -> tuple[list, list[str]]:
    ctx = mp.get_context("spawn")
    procs, conns, endpoints = [], [], []
    for args in args_list:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=target, args=(child, *args), daemon=True)
        p.start()
        procs.append(p)
        conns.append(parent)
        endpoints.append(parent.recv())
    return list(zip(procs, conns, strict=True)), endpoints


def _stop_senders(senders) -> None:
    for p, conn in senders:
        try:
            conn.send("stop")
        except OSError:
            pass
        p.join(30)
        if p.is_alive():
            p.terminate()


def bench_small(n: int) -> dict:
    """Matched trains/s for 2 streams of small trains, and the two-client floor."""
    from bridge import Client
    from bridge.match import TrainMatcher

    results = {}
    for mode in ("floor", "matcher"):
        senders, endpoints = _start_senders(_small_sender, [("A/DEV/X:out", n),
                                                            ("B/DEV/Y:out", n)])
        try:
            if mode == "matcher":
                with TrainMatcher([(e, "PULL") for e in endpoints], receive_ahead=100) as m:
                    for _, conn in senders:
                        conn.send("go")
                    m.next()
                    t0 = time.perf_counter()
                    for _ in range(n - 1):
                        m.next(timeout=30)
                    dt = time.perf_counter() - t0
                    st = m.stats
                results[mode] = dict(rate=(n - 1) / dt, matched=st["matched"],
                                     dropped=st["dropped"])
            else:
                clients = [Client(e, sock="PULL", receive_ahead=100, timeout=30)
                           for e in endpoints]
                for _, conn in senders:
                    conn.send("go")
                for c in clients:
                    c.next()
                t0 = time.perf_counter()

                def drain(c):
                    for _ in range(n - 1):
                        c.next()
                threads = [threading.Thread(target=drain, args=(c,)) for c in clients]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                dt = time.perf_counter() - t0
                for c in clients:
                    c.close()
                results[mode] = dict(rate=(n - 1) / dt)
        finally:
            _stop_senders(senders)
    return results


def _module_sender(conn, pulses: int, n_trains: int, modules: int) -> None:
    from bridge import Server
    from bridge.simulation import FIRST_TRAIN_ID, Simulator, make_metadata

    image = Simulator("AGIPDModule", pulses=pulses).train(0)[0]
    props = next(iter(image.values()))
    servers = [Server("tcp://127.0.0.1:0", sock="PUSH", policy="queue", max_queue=4)
               for _ in range(modules)]
    conn.send([s.endpoint for s in servers])
    conn.recv()
    time.sleep(0.5)                        # clients connect
    period, next_t = 0.1, time.monotonic()
    for index in range(n_trains):
        next_t += period
        tid = FIRST_TRAIN_ID + index
        now = time.time()
        for m, server in enumerate(servers):
            source = MODULE.format(m)
            data = {source: {k: v for k, v in props.items() if k != "metadata"}}
            server.feed(data, {source: make_metadata(source, tid, now)})
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(1.0)
    conn.recv()
    for s in servers:
        s.stop()


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(0.95 * len(values)))]


def bench_modules(pulses: int, n_trains: int, modules: int = 16) -> dict:
    """Latency of matched 16-module trains at 10 Hz vs 16 plain clients receiving them."""
    from bridge import Client
    from bridge.match import TrainMatcher

    out = {}
    for mode in ("floor", "matched"):
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_module_sender, args=(child, pulses, n_trains, modules),
                           daemon=True)
        proc.start()
        endpoints = parent.recv()
        latencies = []
        try:
            if mode == "floor":
                # The same 16 streams, one plain client (thread) each: when did the last
                # part of each train arrive? That is transfer alone, without matching.
                arrivals: dict[int, list[float]] = {}
                stamps: dict[int, float] = {}
                clients = [Client(e, sock="PULL", timeout=10) for e in endpoints]

                def receive(client, arrivals=arrivals, stamps=stamps):
                    for _ in range(n_trains):
                        try:
                            _, meta = client.next()
                        except TimeoutError:
                            return
                        now = time.time()
                        m = next(iter(meta.values()))
                        arrivals.setdefault(m["timestamp.tid"], []).append(now)
                        stamps[m["timestamp.tid"]] = m["timestamp"]

                threads = [threading.Thread(target=receive, args=(c,)) for c in clients]
                for t in threads:
                    t.start()
                parent.send("go")
                for t in threads:
                    t.join()
                for c in clients:
                    c.close()
                latencies = [max(arrivals[t]) - stamps[t] for t in sorted(arrivals)
                             if len(arrivals[t]) == modules]
            else:
                with TrainMatcher([(e, "PULL") for e in endpoints], timeout=1.0) as matcher:
                    parent.send("go")
                    for _ in range(n_trains):
                        try:
                            _, meta = matcher.next(timeout=10)
                        except TimeoutError:
                            break
                        latencies.append(time.time() - max(m["timestamp"]
                                                           for m in meta.values()))
                    out["stats"] = matcher.stats
        finally:
            parent.send("stop")
            proc.join(30)
        skip = min(5, len(latencies) // 4)          # connection set-up
        out[mode] = dict(n=len(latencies), p50_p95=_percentiles(latencies[skip:] or [np.nan]))
    return out


def _rec_trains(n: int, pulses: int) -> list[tuple[dict, dict]]:
    from bridge.simulation import Simulator

    sims = [Simulator("AGIPDModule", pulses=pulses), Simulator("XGM")]
    trains = []
    for i in range(n):
        data, meta = {}, {}
        for sim in sims:
            d, m = sim.train(i)
            data.update(d)
            meta.update(m)
        trains.append((data, meta))
    return trains


def _write_h5py(path: Path, trains) -> None:
    import h5py

    first = trains[0][0]
    with h5py.File(path, "w") as f:
        datasets = {}
        for source, props in first.items():
            for key, value in props.items():
                if key == "metadata" or not isinstance(value, np.ndarray):
                    continue
                datasets[source, key] = f.create_dataset(
                    f"{source}/{key}", (len(trains),) + value.shape, dtype=value.dtype)
        for i, (data, _) in enumerate(trains):
            for (source, key), ds in datasets.items():
                ds[i] = data[source][key]


def bench_record(n: int, pulses: int, base: Path) -> dict:
    from bridge.record import Recorder

    trains = _rec_trains(n, pulses)
    nbytes = sum(v.nbytes for d, _ in trains for p in d.values() for v in p.values()
                 if isinstance(v, np.ndarray))
    def ours() -> None:
        with Recorder(base / "rec", sequence_size=max(1, n // 2)) as rec:
            for data, meta in trains:
                rec.add(data, meta)

    cases = {"ours": (ours, lambda: shutil.rmtree(base / "rec")),
             "h5py": (lambda: _write_h5py(base / "plain.h5", trains),
                      lambda: (base / "plain.h5").unlink())}
    times = {"ours": [], "h5py": []}
    for rep in range(4):
        for name in (("ours", "h5py") if rep % 2 else ("h5py", "ours")):   # alternate
            run, clean = cases[name]
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
            clean()
    best = {k: min(v) for k, v in times.items()}
    return dict(nbytes=nbytes, n=n, **{f"{k}_mbps": nbytes / v / 1e6 for k, v in best.items()})


def fmt(small: dict, modules: dict, record: dict, cfg: dict) -> str:
    lines = ["| measurement | ours | reference | ratio | target |", "|---|---|---|---|---|"]
    s_m, s_f = small["matcher"]["rate"], small["floor"]["rate"]
    lines.append(f"| 2 streams x {cfg['small_trains']} small trains (16 floats + 1 int): "
                 f"matched trains/s vs two plain Clients receiving | {s_m:,.0f}/s "
                 f"({small['matcher']['dropped']} dropped) | {s_f:,.0f}/s | "
                 f"{s_m / s_f:.2f} | >= 5,000/s |")
    single, matched = modules["floor"]["p50_p95"], modules["matched"]["p50_p95"]
    mb = 2 * 128 * 512 * cfg["module_pulses"] * 4 / 2 / 1e6
    lines.append(f"| 16 AGIPD module streams ({cfg['module_pulses']} pulses, {mb:.1f} MB "
                 f"each) at 10 Hz: latency train sent -> matched train, median / p95 vs 16 "
                 f"plain clients (last part received) | {matched[0] * 1000:.1f} / "
                 f"{matched[1] * 1000:.1f} ms ({modules['matched']['n']} trains) | "
                 f"{single[0] * 1000:.1f} / "
                 f"{single[1] * 1000:.1f} ms | added {1000 * (matched[0] - single[0]):.1f} ms "
                 "(median) | < 50 ms added |")
    lines.append(f"| recording {record['n']} trains (AGIPD module {cfg['rec_pulses']} pulses + "
                 f"XGM, {record['nbytes'] / 1e6:.0f} MB): Recorder vs plain h5py into "
                 f"preallocated datasets | {record['ours_mbps']:,.0f} MB/s | "
                 f"{record['h5py_mbps']:,.0f} MB/s | "
                 f"{record['ours_mbps'] / record['h5py_mbps']:.2f} | >= 0.8 |")
    return "\n".join(lines)


def write_docs(table: str, header: str, notes: str) -> None:
    doc = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = f"## Matching and recording\n\n{header}\n\n{table}\n\n{notes}\n"
    if "## Matching and recording" in text:
        text = re.sub(r"## Matching and recording\n.*?(?=\n## |\Z)", lambda _: section, text,
                      flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(doc)


NOTES = """\
- **What limits matching small trains**: the Python work per message -- the receiving thread
  decodes it (~30 us for this train) and the matcher's thread files it in the window (~10 us
  per part, ~25 us per matched train of 2 parts) -- and its threads share one interpreter
  lock. The floor column is two plain clients, each in its own thread, only receiving
  and decoding. On the idle machine (2026-11-30) the matcher reached 0.40 of that floor
  (7,400 vs 18,600 trains/s); under load 8-13 from other jobs, single runs ranged from
  1,800 to 6,900 matched trains/s, with the floor itself at ~2,300/s. The table gives the
  best of the repeats.
- **Big trains** are not limited by the matcher (decoding is zero-copy): with 16 module
  streams it adds under a millisecond to what receiving the 16 streams takes anyway.
  With 64 pulses per module (16.8 MB each, 2.7 GB/s in total) this machine could not move
  the data at 10 Hz at all (plain clients: p95 0.47 s, the senders' queues dropped parts),
  so the 16-pulse figure is the one that isolates the matcher.
- **Recording** writes big entries as raw HDF5 chunks (one chunk per train's entry, no
  filter), which makes growable datasets as fast as plain h5py's preallocated ones; small
  keys are buffered and written in blocks."""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (~1 minute)")
    ap.add_argument("--no-docs", action="store_true", help="don't update docs/benchmarks.md")
    ap.add_argument("--dir", type=Path,
                    help="where to write the recordings (default: /dev/shm if present)")
    args = ap.parse_args(argv)
    cfg = CONFIGS["quick" if args.quick else "full"]

    print("matching small trains ...", file=sys.stderr)
    runs = [bench_small(cfg["small_trains"]) for _ in range(cfg["small_repeat"])]
    small = {mode: max((r[mode] for r in runs), key=lambda x: x["rate"])
             for mode in ("floor", "matcher")}
    print("16 AGIPD module streams at 10 Hz ...", file=sys.stderr)
    modules = bench_modules(cfg["module_pulses"], cfg["module_trains"])
    print("recording ...", file=sys.stderr)
    # tmpfs by default: the comparison is of the software, not of the disk's write-back.
    where = args.dir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    base = Path(tempfile.mkdtemp(prefix="bench_match_", dir=where))
    try:
        record = bench_record(cfg["rec_trains"], cfg["rec_pulses"], base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    table = fmt(small, modules, record, cfg)
    header = (f"`python -m benchmarks.bench_match{' --quick' if args.quick else ''}`: senders "
              f"in other processes over loopback TCP; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f} at the end (the machine is shared: figures vary).")
    print(header)
    print(table)
    print(f"matcher stats of the 16-module run: matched {modules['stats']['matched']}, "
          f"incomplete {modules['stats']['incomplete']}, dropped {modules['stats']['dropped']}")
    if not args.no_docs:
        write_docs(table, header, NOTES)


if __name__ == "__main__":
    main()
