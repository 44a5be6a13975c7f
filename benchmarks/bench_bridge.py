"""Streaming throughput over loopback: our bridge vs karabo-bridge vs raw pyzmq.

Each server runs in its own process (as in real use: the GIL is not shared), the client in this
one. For every train size and socket pattern the three implementations send the same train:

- ``raw``: pyzmq sending pre-serialized frames (``send_multipart(copy=False)``) and receiving
  them (``recv_multipart(copy=False)``) without decoding: the transport's ceiling.
- ``karabo``: karabo-bridge 0.7 ``ServerInThread.feed`` and ``karabo_bridge.Client.next``.
- ``ours``: ``bridge.Server.feed`` (policy ``wait``) and ``bridge.Client.next``.

Run ``python -m benchmarks.bench_bridge`` (``--quick`` for a short run, ``--help`` for options).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import pstats
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
IMPLS = ("ours", "karabo", "raw")

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

    data, metadata = _make_train(train)
    profiler = cProfile.Profile() if profile_path else None

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
            if profiler:
                profiler.enable()
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline:
                    server.feed(data, metadata)
                profiler.disable()
                profiler.dump_stats(profile_path)
            while True:
                server.feed(data, metadata)


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

    client = Client(endpoint, sock=sock)
    client.__enter__()
    return client.next, lambda: client.__exit__(None, None, None)


@dataclass
class Result:
    train: str
    pattern: str
    impl: str
    trains_per_s: float
    gb_per_s: float


def measure(impl: str, train: str, pattern: str, nbytes: int, duration: float,
            min_trains: int = 3, profile: bool = False) -> Result:
    """Start a server process, receive for ``duration`` seconds, return the rate."""
    server_sock, client_sock = PATTERNS[pattern]
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    prof_server = f"/tmp/bench_bridge_server_{os.getpid()}.prof" if profile else None
    proc = ctx.Process(target=_serve, args=(impl, train, server_sock, child, prof_server),
                       daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError(f"{impl} server for {train} did not start")
        endpoint = parent.recv()
        receive, close = _client(impl, endpoint, client_sock)
        try:
            warm_until = time.monotonic() + min(1.0, duration / 3)
            receive()
            while time.monotonic() < warm_until:
                receive()
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            n, t0 = 0, time.perf_counter()
            while n < min_trains or time.perf_counter() - t0 < duration:
                msg = receive()
                del msg
                n += 1
            elapsed = time.perf_counter() - t0
            if profiler:
                profiler.disable()
                _print_profile(f"client ({impl}, {train}, {pattern})", profiler)
        finally:
            close()
    finally:
        if profile and prof_server:
            time.sleep(9)  # the server profiles its first 8 s
        proc.terminate()
        proc.join(10)
    if profile and prof_server and os.path.exists(prof_server):
        _print_profile(f"server ({impl}, {train}, {pattern})", pstats.Stats(prof_server))
        os.remove(prof_server)
    rate = n / elapsed
    return Result(train, pattern, impl, rate, rate * nbytes / 1e9)


def _print_profile(title: str, prof) -> None:
    out = io.StringIO()
    stats = prof if isinstance(prof, pstats.Stats) else pstats.Stats(prof, stream=out)
    stats.stream = out
    stats.sort_stats("tottime").print_stats(15)
    print(f"\n--- profile: {title} (by own time) ---")
    print("\n".join(out.getvalue().splitlines()[:40]))


def format_table(results: list[Result], nbytes: dict[str, int]) -> str:
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
            cells = [f"{r.trains_per_s:,.1f}/s ({r.gb_per_s:.2f} GB/s)" if r else "-"
                     for r in row]
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
            ours, other = by_key.get((train, pattern, "ours")), by_key.get((train, pattern, versus))
            if not (ours and other):
                continue
            ratio = ours.trains_per_s / other.trains_per_s
            verdict = "met" if ratio >= target else "MISSED"
            lines.append(f"{train:>6} {pattern:<4}: ours/{versus} = {ratio:.2f} "
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
    ap.add_argument("--duration", type=float, default=4.0,
                    help="seconds of measurement per case (default 4)")
    ap.add_argument("--quick", action="store_true",
                    help="1 s per case, small and module trains only, unless --trains is given")
    ap.add_argument("--profile", action="store_true",
                    help="profile our server and client (one case; use with --trains/--patterns)")
    args = ap.parse_args(argv)

    trains = args.trains.split(",")
    if args.quick:
        args.duration = 1.0
        if args.trains == ap.get_default("trains"):
            trains = ["xgm", "module"]
    patterns = args.patterns.split(",")
    impls = ["ours"] if args.profile else args.impls.split(",")
    for name, valid in ((trains, TRAINS), (patterns, PATTERNS), (impls, IMPLS)):
        bad = [x for x in name if x not in valid]
        if bad:
            ap.error(f"unknown {bad}; choose among {', '.join(valid)}")

    nbytes = {}
    for t in trains:
        from bridge.simulation import Simulator

        nbytes[t] = Simulator(**TRAINS[t][0]).nbytes
    results = []
    for t in trains:
        for p in patterns:
            for impl in impls:
                r = measure(impl, t, p, nbytes[t], args.duration, profile=args.profile)
                print(f"{t:>6} {p:<4} {impl:<6} {r.trains_per_s:10.1f} trains/s "
                      f"{r.gb_per_s:6.2f} GB/s", flush=True)
                results.append(r)
    print()
    print(format_table(results, nbytes))
    print()
    print("\n".join(check_targets(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
