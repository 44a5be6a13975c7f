"""Start-up time: `import exfel_data`, `import bridge` and `exfel-data --help` against
`import extra_data` and `import karabo_bridge`, each in a fresh interpreter.

Every case runs N times, interleaved (so a busy moment hits all cases alike); the table shows
the fastest wall time and the fastest CPU time (user + system) of each, with `python -c pass`
as the floor. Run ``python -m benchmarks.bench_startup`` (``--quick``: 3 rounds instead of 10).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

CASES = {
    "python -c pass": ["-c", "pass"],
    "import extra_data": ["-c", "import extra_data"],
    "import exfel_data": ["-c", "import exfel_data"],
    "from exfel_data import *": ["-c", "from exfel_data import *"],
    "import karabo_bridge": ["-c", "import karabo_bridge"],
    "import bridge": ["-c", "import bridge"],
    "exfel-data --help": ["-m", "exfel_data", "--help"],
}


def measure(rounds: int) -> dict[str, tuple[float, float]]:
    """Fastest (wall, cpu) seconds of each case over ``rounds`` interleaved rounds."""
    best = {name: (float("inf"), float("inf")) for name in CASES}
    for _ in range(rounds):
        for name, args in CASES.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, check=True)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 10")
    args = parser.parse_args()
    best = measure(3 if args.quick else 10)
    print("| command | fastest wall (s) | fastest CPU (s) |")
    print("|---|---|---|")
    for name, (wall, cpu) in best.items():
        print(f"| `{name}` | {wall:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
