"""Fuzz the bridge decoder: only ProtocolError, each message quickly, memory flat.

Feeds ``bridge.deserialize`` hostile messages (``tests/bridge/bridge_fuzz.py``:
real messages of every format with extreme values put inside their msgpack
structure, bytes flipped, cut or inserted, frames dropped, doubled, swapped or
random), a share of them as ``zmq.Frame`` objects as a client receives them, and
reports:

- outcomes: decoded / ProtocolError / anything else (must be 0);
- decode time per message: median, 99.9th percentile, maximum, count over 100 ms,
  in wall-clock and in CPU time (on a shared machine, other jobs' load adds to the
  first), and the slowest messages timed again;
- resident memory after the first 10% of messages (caches warm) and at the end.

Then decodes the worst messages for the limits (as many lists or maps as the
budget of decoded values allows, in every way of splitting them over frames)
with their CPU time and peak Python memory, and times ``deserialize`` on small
well-formed trains (the per-train cost that matters for streaming thousands of
small trains per second).

Run ``python -m benchmarks.fuzz_decoder`` (``--messages N``, ``--seed S``);
exit status 1 if any message raised something else than ProtocolError or the
memory grew. Figures are in docs/benchmarks.md (section *Decoder fuzzing*).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import tracemalloc
from pathlib import Path

import msgpack
import numpy as np
import zmq
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'bridge'))
from bridge_fuzz import hostile_message, seed_messages  # noqa: E402

from bridge import ProtocolError, deserialize, serialize  # noqa: E402
from bridge.limits import MAX_DECODED_ITEMS  # noqa: E402
from bridge.simulation import Simulator  # noqa: E402

SLOW_S = 0.1


def rss_mb() -> float:
    """Resident memory of this process now (not the peak), in MB."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6


def fuzz(n: int, seed: int, zmq_share: float) -> bool:
    rng = np.random.default_rng(seed)
    seeds = seed_messages()
    outcomes: collections.Counter = collections.Counter()
    others: dict[str, str] = {}
    times = np.empty(n)
    cpu_times = np.empty(n)
    slowest: list[tuple[float, list, str]] = []
    rss_warm = None
    rss_start = rss_mb()
    try:
        for i in tqdm(range(n), desc='hostile messages', unit='msg', mininterval=1):
            frames = hostile_message(rng, seeds)
            if rng.random() < zmq_share:
                frames = [zmq.Frame(f) for f in frames]
            start, cpu_start = time.perf_counter(), time.thread_time()
            try:
                deserialize(frames)
                outcome = 'decoded'
            except ProtocolError as e:
                outcome = 'ProtocolError'
                detail = str(e)[:120]
            except BaseException as e:  # what this script looks for
                if isinstance(e, KeyboardInterrupt):
                    raise
                outcome = type(e).__name__
                others.setdefault(outcome, repr(e)[:300])
            times[i] = elapsed = time.perf_counter() - start
            cpu_times[i] = time.thread_time() - cpu_start
            outcomes[outcome] += 1
            if elapsed > SLOW_S:
                slowest.append((elapsed, frames,
                                detail if outcome == 'ProtocolError' else outcome))
            if i == n // 10:
                rss_warm = rss_mb()
    except KeyboardInterrupt:
        n = i
        times, cpu_times = times[:n], cpu_times[:n]
        print(f'Interrupted after {n} messages.')
    rss_end = rss_mb()
    print(f'\n{n} hostile messages (seed {seed}, {zmq_share:.0%} as zmq.Frame):')
    for outcome, count in outcomes.most_common():
        print(f'  {outcome:14s} {count:8d}')
    for outcome, text in others.items():
        print(f'  first {outcome}: {text}')
    for name, values in (('wall-clock', times), ('CPU', cpu_times)):
        if n:
            print(f'decode time ({name}): median {np.median(values) * 1e6:.0f} us, 99.9% '
                  f'{np.percentile(values, 99.9) * 1e3:.2f} ms, max {values.max() * 1e3:.1f} ms;'
                  f' {(values > SLOW_S).sum()} over {SLOW_S * 1e3:.0f} ms')
    for elapsed, frames, what in sorted(slowest, key=lambda s: s[0], reverse=True)[:5]:
        print(f'  {elapsed * 1e3:.0f} ms (again: {best_time(frames) * 1e3:.1f} ms): frames of '
              f'{[len(f) for f in frames][:8]} bytes: {what}')
    grown = rss_end - (rss_warm or rss_start)
    print(f'RSS: {rss_start:.0f} MB at start, {rss_warm or 0:.0f} MB after 10%, '
          f'{rss_end:.0f} MB at the end ({grown:+.1f} MB)')
    return not others and grown < 20


def best_time(frames: list, repeat: int = 5) -> float:
    """Best wall-clock time of decoding ``frames`` (or failing to)."""
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            deserialize(frames)
        except ProtocolError:
            pass
        best = min(best, time.perf_counter() - start)
    return best


def worst_cases() -> None:
    """CPU time and peak memory of the costliest messages the limits let through."""
    def source(name, values):
        return [msgpack.packb({'source': name, 'content': 'msgpack', 'metadata': {}}),
                msgpack.packb(values)]

    n = MAX_DECODED_ITEMS
    cases = {
        '1.0, empty maps': [msgpack.packb({'S': {'x': [{}] * (n // 8)}})],
        '1.0, empty lists': [msgpack.packb({'S': {'x': [[]] * (n // 2)}})],
        '2.2, one frame of empty maps': source('S', {'x': [{}] * n}),
        '2.2, one frame of [0] lists': source('S', {'x': [[0]] * (n // 3)}),
        '2.2, 60 kB frames of empty maps': [
            f for i in range(8) for f in source(f'S{i}', {'x': [{}] * 60_000})],
        '2.2, 60 kB frames of [0] lists': [
            f for i in range(8) for f in source(f'S{i}', {'x': [[0]] * 20_000})],
        '2.2, floats': source('S', {'x': [1.5] * (n - 100)}),
        'nesting 1,000 deep': [b'\x91' * 1000 + b'\xc0', b'\x80'],
    }
    print('\nworst cases for the limits (best of 3, CPU time; peak of traced Python memory):')
    for name, frames in cases.items():
        best = float('inf')
        for _ in range(3):
            start = time.process_time()
            try:
                deserialize(frames)
                outcome = 'decoded'
            except ProtocolError:
                outcome = 'ProtocolError'
            best = min(best, time.process_time() - start)
        tracemalloc.start()
        try:
            deserialize(frames)
        except ProtocolError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f'  {name:34s} {sum(map(len, frames)) / 1e3:6.0f} kB: {best * 1e3:5.1f} ms, '
              f'{peak / 1e6:4.0f} MB, {outcome}')


def micro_timings(repeat: int = 9, number: int = 2000) -> None:
    """Best per-message deserialize time for small well-formed trains."""
    print('\ndeserialize, well-formed trains (best of', repeat, 'x', number, 'calls, CPU time):')
    for detector in ('XGM', 'Camera'):
        data, meta = Simulator(detector).train(0)
        frames = [bytes(f) for f in serialize(data, meta)]
        for kind, make in (('bytes', lambda frames=frames: frames),
                           ('zmq.Frame', lambda frames=frames: [zmq.Frame(f) for f in frames])):
            best = float('inf')
            for _ in range(repeat):
                messages = [make() for _ in range(number)]
                start = time.process_time()
                for message in messages:
                    deserialize(message)
                best = min(best, (time.process_time() - start) / number)
            print(f'  {detector:7s} ({len(frames):2d} frames, {kind:9s}): {best * 1e6:6.1f} us')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--messages', type=int, default=100_000,
                        help='hostile messages to decode (default 100000)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--zmq-share', type=float, default=0.3,
                        help='share of messages given as zmq.Frame objects (default 0.3)')
    parser.add_argument('--no-micro', action='store_true',
                        help='skip the worst cases and the timings of well-formed trains')
    args = parser.parse_args(argv)
    ok = fuzz(args.messages, args.seed, args.zmq_share)
    if not args.no_micro:
        worst_cases()
        micro_timings()
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
