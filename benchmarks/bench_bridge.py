"""Streaming throughput over loopback: our bridge vs karabo-bridge vs raw pyzmq.

Each server runs in its own process (as in real use: the GIL is not shared), the client in this
one. For every train size and socket pattern the three implementations send the same train:

- ``raw``: pyzmq sending pre-serialized frames (``send_multipart(copy=False)``) and receiving
  them (``recv_multipart(copy=False)``) without decoding: the transport's ceiling.
- ``karabo``: karabo-bridge 0.7 ``ServerInThread.feed`` and ``karabo_bridge.Client.next``.
- ``ours``: ``bridge.Server.feed`` (policy ``wait``) and ``bridge.Client.next`` (default
  settings plus ``tune_malloc=True``: glibc tuned for frames above 32 MiB).
- ``ours-untuned``: the same with ``Client(tune_malloc=False)``.
- ``ours-fast``: our client's opt-in settings for throughput over freshness:
  ``prefetch=True`` (REQ: the next request leaves as soon as a train arrives) and
  ``receive_ahead=100`` (PULL: ZeroMQ may hold 100 trains instead of 2).

Run ``python -m benchmarks.bench_bridge`` (``--quick`` for a short run, ``--help`` for options).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import signal
import sys
import time
from dataclasses import dataclass

TRAINS = {
    # name: (Simulator arguments, label)
    "xgm": ({"detector": "XGM"}, "25 kB (XGM-like, 6 arrays)"),
    "module": ({"detector": "AGIPDModule", "raw": True, "data_like": "file"},
               "16.8 MB (one AGIPD module)"),
    "agipd": ({"detector": "AGIPD"}, "268 MB (16-module AGIPD)"),
}
PATTERNS = {"REQ": ("REP", "REQ"), "PUSH": ("PUSH", "PULL")}
IMPLS = ("ours", "ours-fast", "ours-untuned", "karabo", "raw")
# Our client tunes glibc (process-wide) unless told not to: these windows run in a separate
# client process, so that the tuning does not speed up the other clients.
_TUNED = ("ours", "ours-fast")

# Targets from the issue, as ratios of ours to raw pyzmq (or to karabo-bridge for 'agipd').
TARGETS = {"xgm": ("raw", 0.80), "module": ("raw", 0.95), "agipd": ("karabo", 2.5)}


def _make_train(name: str) -> tuple[dict, dict]:
    from bridge.simulation import Simulator

    kwargs, _ = TRAINS[name]
    data, metadata = Simulator(**kwargs).train(0)
    return data, metadata


def _strip_metadata(data: dict) -> dict:
    # The reference serializer would send a nested 'metadata' dict as data.
    return {src: {k: v for k, v in d.items() if k != "metadata"} for src, d in data.items()}


def _serve(impl: str, train: str, sock: str, conn, profile_path: str | None) -> None:
    """Server process: bind a free loopback port, report it, send the train forever."""
    import zmq

    impl = "ours" if impl.startswith("ours") else impl
    data, metadata = _make_train(train)
    if profile_path:
        sampler = _StackSampler()

        def dump_and_exit(signum, frame):
            sampler.stop()
            with open(profile_path, "w") as f:
                json.dump(sampler.report(), f)
            os._exit(0)

        signal.signal(signal.SIGTERM, dump_and_exit)
        sampler.start()

    if impl == "raw":
        from karabo_bridge.serializer import serialize

        frames = serialize(_strip_metadata(data), metadata)
        ctx = zmq.Context()
        s = ctx.socket(getattr(zmq, sock))
        s.bind("tcp://127.0.0.1:0")
        conn.send(s.getsockopt_string(zmq.LAST_ENDPOINT))
        while True:
            if sock == "REP":
                s.recv()
            s.send_multipart(frames, copy=False)

    elif impl == "karabo":
        from karabo_bridge import ServerInThread

        server = ServerInThread("tcp://127.0.0.1:0", sock=sock)
        server.start()
        conn.send(server.endpoint.replace(os.uname().nodename, "127.0.0.1"))
        plain = _strip_metadata(data)
        while True:
            server.feed(plain, metadata)

    else:
        from bridge.server import Server

        with Server("tcp://127.0.0.1:0", sock=sock, policy="wait") as server:
            conn.send(server.endpoint)
            while True:
                server.feed(data, metadata)


class _StackSampler:
    """Where each thread of this process spends its time: samples of the innermost frames.

    cProfile sees only the thread it runs in; a server's sending thread needs sampling.
    """

    def __init__(self, interval: float = 0.001) -> None:
        import threading

        self.interval = interval
        self.samples: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import threading
        import traceback

        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = traceback.extract_stack(frame)[-3:]
                where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}"
                                    for f in reversed(stack))
                per_thread = self.samples.setdefault(names.get(ident, str(ident)), {})
                per_thread[where] = per_thread.get(where, 0) + 1

    def report(self, top: int = 12) -> dict[str, list]:
        return {thread: sorted(counts.items(), key=lambda kv: -kv[1])[:top]
                for thread, counts in self.samples.items()}


def _client(impl: str, endpoint: str, sock: str):
    """A callable returning one received train (as each implementation's user would get it)."""
    import zmq

    if impl == "raw":
        ctx = zmq.Context()
        s = ctx.socket(getattr(zmq, sock))
        s.connect(endpoint)
        if sock == "REQ":
            def receive():
                s.send(b"next")
                return s.recv_multipart(copy=False)
        else:
            def receive():
                return s.recv_multipart(copy=False)
        return receive, ctx.destroy
    if impl == "karabo":
        from karabo_bridge import Client as KClient

        client = KClient(endpoint, sock=sock)
        return client.next, lambda: client.__exit__(None, None, None)
    from bridge.client import Client

    fast = {"REQ": {"prefetch": True}, "PULL": {"receive_ahead": 100}}
    client = Client(endpoint, sock=sock, tune_malloc=impl in _TUNED,
                    **(fast[sock] if impl == "ours-fast" else {}))
    client.__enter__()
    return client.next, lambda: client.__exit__(None, None, None)


@dataclass
class Result:
    train: str
    pattern: str
    impl: str
    trains_per_s: float
    gb_per_s: float
    cpu_per_train: float    # seconds, server + client processes


def _start_server(impl: str, train: str, pattern: str, profile: bool):
    """Start a server process; return (process, endpoint, profile path or None)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    prof_path = f"/tmp/bench_bridge_server_{os.getpid()}_{impl}.prof" if profile else None
    proc = ctx.Process(target=_serve,
                       args=(impl, train, PATTERNS[pattern][0], child, prof_path), daemon=True)
    proc.start()
    if not parent.poll(120):
        proc.terminate()
        raise RuntimeError(f"{impl} server for {train} did not start")
    return proc, parent.recv(), prof_path


def _cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), all its threads."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _window(impl: str, endpoint: str, pattern: str, duration: float, min_trains: int = 3,
            profiler: cProfile.Profile | None = None,
            server_pid: int | None = None, work: float = 0.0) -> tuple[float, tuple[float, float]]:
    """Connect a fresh client, warm up, then receive for ``duration`` s.

    ``work``: seconds the client spends on each train after receiving it (sleeping, as
    code waiting for a GPU or a disk would), to show what overlaps with the transfer.

    Returns trains/s and CPU seconds per train of the (server, client) processes (server 0
    without ``server_pid``): the CPU cost hardly depends on what else runs on the machine,
    the rate does.
    """
    receive, close = _client(impl, endpoint, PATTERNS[pattern][1])
    try:
        warm_until = time.monotonic() + min(1.0, duration / 3)
        receive()
        while time.monotonic() < warm_until:
            receive()
        if profiler:
            profiler.enable()
        client0, server0 = _cpu_seconds(), _cpu_seconds(server_pid) if server_pid else 0.0
        n, t0 = 0, time.perf_counter()
        while n < min_trains or time.perf_counter() - t0 < duration:
            msg = receive()
            del msg
            if work:
                time.sleep(work)
            n += 1
        elapsed = time.perf_counter() - t0
        client = _cpu_seconds() - client0
        server = (_cpu_seconds(server_pid) - server0) if server_pid else 0.0
        if profiler:
            profiler.disable()
    finally:
        close()
    return n / elapsed, (server / n, client / n)


def _window_in_subprocess(impl: str, endpoint: str, pattern: str, duration: float,
                          server_pid: int, work: float) -> tuple[float, tuple[float, float]]:
    """:func:`_window` in a fresh client process (for process-wide client settings)."""
    import subprocess

    code = ("import sys; from benchmarks.bench_bridge import _window; "
            "rate, (server, client) = _window(sys.argv[1], sys.argv[2], sys.argv[3], "
            "float(sys.argv[4]), server_pid=int(sys.argv[5]), work=float(sys.argv[6])); "
            "print(rate, server, client)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code, impl, endpoint, pattern, str(duration),
                          str(server_pid), str(work)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{impl} client failed: {out.stderr[-2000:]}")
    rate, server, client = map(float, out.stdout.split()[-3:])
    return rate, (server, client)


def measure_case(train: str, pattern: str, impls: list[str], nbytes: int, duration: float,
                 repeat: int = 3, profile: bool = False, work: float = 0.0) -> list[Result]:
    """Measure all implementations for one (train, pattern), best of ``repeat`` windows.

    The servers run side by side and the measurement windows alternate between
    implementations, so that load from other processes affects them alike.
    """
    servers = {}
    try:
        for impl in impls:
            servers[impl] = _start_server(impl, train, pattern, profile)
        rates: dict[str, list[float]] = {impl: [] for impl in impls}
        cpus: dict[str, list[tuple[float, float]]] = {impl: [] for impl in impls}
        profiler = cProfile.Profile() if profile else None
        for _ in range(repeat):
            for impl in impls:
                if impl in _TUNED and not profile:
                    rate, cpu = _window_in_subprocess(impl, servers[impl][1], pattern,
                                                      duration, servers[impl][0].pid, work)
                else:
                    rate, cpu = _window(impl, servers[impl][1], pattern, duration,
                                        profiler=profiler if impl == "ours" else None,
                                        server_pid=servers[impl][0].pid, work=work)
                rates[impl].append(rate)
                cpus[impl].append(cpu)
        if profiler:
            _print_profile(f"client (ours, {train}, {pattern})", profiler)
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.join(10)
    if profile:
        _, _, path = servers["ours"]
        if path and os.path.exists(path):
            with open(path) as f:
                report = json.load(f)
            os.remove(path)
            print(f"\n--- server samples (ours, {train}, {pattern}): innermost 3 frames, "
                  "per thread ---")
            for thread, rows in report.items():
                total = sum(n for _, n in rows) or 1
                print(f"[{thread}]")
                for where, n in rows:
                    print(f"  {100 * n / total:5.1f}%  {where}")
    results = []
    for impl in impls:
        best = max(rates[impl])
        server_cpu, client_cpu = min(cpus[impl], key=sum)
        cpu = server_cpu + client_cpu
        windows = ", ".join(f"{r:.1f}" for r in rates[impl])
        print(f"{train:>6} {pattern:<4} {impl:<10} {best:10.1f} trains/s "
              f"{best * nbytes / 1e9:6.2f} GB/s  CPU/train: server {_fmt_cpu(server_cpu)} + "
              f"client {_fmt_cpu(client_cpu)}  (windows: {windows})", flush=True)
        results.append(Result(train, pattern, impl, best, best * nbytes / 1e9, cpu))
    return results


def cross_case(train: str, pattern: str, impls: list[str], duration: float,
               repeat: int) -> None:
    """Every client against every server: shows whether a loss is on the sending or the
    receiving side (a raw client only receives frames, a raw server only sends them)."""
    servers = {}
    try:
        for impl in impls:
            servers[impl] = _start_server(impl, train, pattern, False)
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeat):
            for server in impls:
                for client in impls:
                    rate, _ = _window(client, servers[server][1], pattern, duration)
                    rates.setdefault((server, client), []).append(rate)
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.join(10)
    print(f"\n{train} {pattern}: best trains/s, rows = server, columns = client")
    print("server \\ client | " + " | ".join(impls))
    for server in impls:
        print(f"{server:>15} | " + " | ".join(f"{max(rates[server, c]):8.1f}" for c in impls))


_ALLOCATOR_CLIENT = r"""
import ctypes, os, sys, time
if sys.argv[2] == "tuned":
    # glibc: never mmap, never trim, one arena, so that a freed 268 MB buffer is reused
    # instead of unmapped and page-faulted in again for the next message.
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
    libc.mallopt(M_MMAP_MAX, 0); libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    libc.mallopt(M_ARENA_MAX, 1)
import zmq
s = zmq.Context().socket(zmq.PULL); s.connect(sys.argv[1]); s.recv_multipart(copy=False)
c0, n, t0 = os.times(), 0, time.perf_counter()
while time.perf_counter() - t0 < float(sys.argv[3]):
    s.recv_multipart(copy=False); n += 1
c = os.times()
print(n / (time.perf_counter() - t0), (c.user + c.system - c0.user - c0.system) / n)
"""


def allocator_experiment(duration: float, repeat: int) -> None:
    """Raw PUSH/PULL of the 268 MB train, client with and without glibc malloc tuning."""
    import subprocess

    proc, endpoint, _ = _start_server("raw", "agipd", "PUSH", False)
    rates: dict[str, list[tuple[float, float]]] = {"default": [], "tuned": []}
    try:
        for _ in range(repeat):
            for mode in rates:
                out = subprocess.run([sys.executable, "-c", _ALLOCATOR_CLIENT, endpoint, mode,
                                      str(duration)], capture_output=True, text=True, check=True)
                rate, cpu = map(float, out.stdout.split())
                rates[mode].append((rate, cpu))
    finally:
        proc.terminate()
        proc.join(10)
    print("\n268 MB train, raw PULL client: glibc allocator default vs tuned "
          "(mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2**31-1, M_ARENA_MAX=1)")
    for mode, values in rates.items():
        print(f"  {mode:>7}: {max(r for r, _ in values):5.2f} trains/s, client CPU "
              f"{min(c for _, c in values) * 1e3:.0f} ms/train")


def _print_profile(title: str, prof) -> None:
    out = io.StringIO()
    stats = prof if isinstance(prof, pstats.Stats) else pstats.Stats(prof, stream=out)
    stats.stream = out
    stats.sort_stats("tottime").print_stats(15)
    print(f"\n--- profile: {title} (by own time) ---")
    print("\n".join(out.getvalue().splitlines()[:40]))


def _fmt_cpu(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us" if seconds < 0.01 else f"{seconds * 1e3:.0f} ms"


def format_table(results: list[Result]) -> str:
    """Markdown table: one row per (train, pattern), columns per implementation."""
    by_key = {(r.train, r.pattern, r.impl): r for r in results}
    impls = [i for i in IMPLS if any(r.impl == i for r in results)]
    head = "| train | socket | " + " | ".join(impls) + " | ours / raw | ours / karabo |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for train in TRAINS:
        for pattern in PATTERNS:
            row = [by_key.get((train, pattern, i)) for i in impls]
            if not any(row):
                continue
            cells = [f"{r.trains_per_s:,.1f}/s ({r.gb_per_s:.2f} GB/s, "
                     f"{_fmt_cpu(r.cpu_per_train)} CPU)" if r else "-" for r in row]
            ours, raw, kb = (by_key.get((train, pattern, i)) for i in ("ours", "raw", "karabo"))
            ratio_raw = f"{ours.trains_per_s / raw.trains_per_s:.2f}" if ours and raw else "-"
            ratio_kb = f"{ours.trains_per_s / kb.trains_per_s:.2f}" if ours and kb else "-"
            label = TRAINS[train][1]
            lines.append(f"| {label} | {pattern} | " + " | ".join(cells)
                         + f" | {ratio_raw} | {ratio_kb} |")
    return "\n".join(lines)


def check_targets(results: list[Result]) -> list[str]:
    """One line per target: met or missed, with the measured ratio."""
    by_key = {(r.train, r.pattern, r.impl): r for r in results}
    lines = []
    for train, (versus, target) in TARGETS.items():
        for pattern in PATTERNS:
            for name in ("ours", "ours-fast", "ours-untuned"):
                ours = by_key.get((train, pattern, name))
                other = by_key.get((train, pattern, versus))
                if not (ours and other):
                    continue
                ratio = ours.trains_per_s / other.trains_per_s
                verdict = "met" if ratio >= target else "MISSED"
                lines.append(f"{train:>6} {pattern:<4}: {name}/{versus} = {ratio:.2f} "
                             f"(target >= {target}) {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_bridge",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--trains", default=",".join(TRAINS),
                    help=f"comma-separated train sizes among {', '.join(TRAINS)}")
    ap.add_argument("--patterns", default=",".join(PATTERNS),
                    help="comma-separated socket patterns among REQ, PUSH")
    ap.add_argument("--impls", default=",".join(IMPLS),
                    help=f"comma-separated implementations among {', '.join(IMPLS)}")
    ap.add_argument("--duration", type=float, default=2.0,
                    help="seconds per measurement window (default 2)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="measurement windows per implementation and case; the best counts "
                         "(default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="1 window of 1 s per case, small and module trains only, unless "
                         "--trains is given")
    ap.add_argument("--allocator", action="store_true",
                    help="only compare a raw client receiving 268 MB trains with and without "
                         "glibc malloc tuning")
    ap.add_argument("--work", type=float, default=0.0, metavar="MS",
                    help="the client sleeps MS milliseconds per train after receiving it, as "
                         "if processing it (shows what prefetch=True overlaps); default 0")
    ap.add_argument("--cross", action="store_true",
                    help="also measure every client against every server (where is a loss?)")
    ap.add_argument("--profile", action="store_true",
                    help="profile our server and client (one case; use with --trains/--patterns)")
    args = ap.parse_args(argv)

    trains = args.trains.split(",")
    if args.quick:
        args.duration, args.repeat = 1.0, 1
        if args.trains == ap.get_default("trains"):
            trains = ["xgm", "module"]
    patterns = args.patterns.split(",")
    impls = ["ours"] if args.profile else args.impls.split(",")
    for name, valid in ((trains, TRAINS), (patterns, PATTERNS), (impls, IMPLS)):
        bad = [x for x in name if x not in valid]
        if bad:
            ap.error(f"unknown {bad}; choose among {', '.join(valid)}")

    if args.allocator:
        allocator_experiment(args.duration, args.repeat)
        return 0
    nbytes = {}
    for t in trains:
        from bridge.simulation import Simulator

        nbytes[t] = Simulator(**TRAINS[t][0]).nbytes
    print(f"Load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"best of {args.repeat} windows of {args.duration:g} s per case")
    results = []
    for t in trains:
        for p in patterns:
            results += measure_case(t, p, impls, nbytes[t], args.duration, args.repeat,
                                    profile=args.profile, work=args.work / 1000)
            if args.cross:
                cross_case(t, p, impls, args.duration, args.repeat)
    print()
    print(format_table(results))
    print()
    print("\n".join(check_targets(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
