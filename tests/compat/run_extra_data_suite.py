"""Run EXtra-data's own tests against exfel_data and count what passes.

    python tests/compat/run_extra_data_suite.py [TEST_MODULE ...] [-- PYTEST_ARGS]

Each of EXtra-data 1.25's test modules for the reader, keys, sources, bad trains, aliases,
writing, auxiliary (REDUCTION / ERRATA) sources, components, stacking and slicing (shipped
in its wheel as ``extra_data.tests``) runs with ``extra_data`` aliased onto ``exfel_data``
(``extra_data_alias.py``); the script prints passed / failed / errors per module and in
total. docs/compat.md lists the figures and the deliberate
differences. Needs the test extra (``pip install '.[test]'``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

MODULES = ["test_reader_mockdata", "test_keydata", "test_sourcedata", "test_bad_trains",
           "test_aliases", "test_writer", "test_auxiliary", "test_open_run", "test_display",
           "test_lsxfel",
           "test_components", "test_stacking", "test_slice_objs"]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_COUNT = re.compile(r"(\d+) (passed|failed|error|errors|skipped)")


def run_module(name: str, extra: list[str]) -> dict[str, int]:
    """Counts of one EXtra-data test module run against exfel_data."""
    cmd = [sys.executable, "-m", "pytest", "-p", "extra_data_alias",
           "-p", "no:cacheprovider", "-q", "--timeout", "300", "--pyargs",
           f"extra_data.tests.{name}", *extra]
    # The plugin by its file's folder: a dependency (mpl_interactions) installs a
    # top-level ``tests`` package that hides ours, so ``tests.compat...`` may not import
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env).stdout
    last = out.strip().splitlines()[-1] if out.strip() else ""
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for n, what in _COUNT.findall(last):
        counts["error" if what.startswith("error") else what] += int(n)
    return counts


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    names = [a for a in (argv[:argv.index("--")] if "--" in argv else argv)] or MODULES
    total = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    print(f"{'module':24} {'passed':>7} {'failed':>7} {'errors':>7} {'skipped':>7}")
    for name in names:
        counts = run_module(name, extra)
        for k in total:
            total[k] += counts[k]
        print(f"{name:24} {counts['passed']:7} {counts['failed']:7} {counts['error']:7} "
              f"{counts['skipped']:7}", flush=True)
    print(f"{'total':24} {total['passed']:7} {total['failed']:7} {total['error']:7} "
          f"{total['skipped']:7}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
