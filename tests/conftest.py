"""Suite-wide rules: a skipped test fails the run unless its reason is allowed here.

Required test dependencies (the peers extra-data and karabo-bridge, the format and plot
libraries of the ``test`` extra) are imported, never ``importorskip``-ed: a broken install
must fail, not turn into quiet skips. A skip whose reason matches none of ``ALLOWED_SKIPS``
makes pytest exit non-zero and is listed at the end of the report.
"""

import os
import re
import sys

import pytest

# EXtra (the ``field`` extra) builds its pint unit registry with pint's disk cache, which
# records file paths of the environment that wrote it; after that environment is removed
# (another checkout's .venv) ``import extra`` fails (pint issue #1572). A cache per
# environment for the tests and the processes they start.
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(sys.prefix, ".cache"))

# reason pattern -> why such a skip is acceptable. Add an entry only for a condition the
# project cannot fix by installing its test extra (an OS feature, a missing accelerator).
ALLOWED_SKIPS: dict[str, str] = {
    r"^doc block needs ": "a docs snippet marked <!-- needs: ... --> (facility data, a "
                          "batch cluster): the page says what it needs",
    r"^needs root or unprivileged user namespaces to mount": "the full-disk tests mount a "
        "small tmpfs (a real ENOSPC); an OS permission, not a package",
}

_unexpected: list[tuple[str, str]] = []


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _note_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not any(re.search(pattern, reason) for pattern in ALLOWED_SKIPS):
        _unexpected.append((report.nodeid, reason))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _note_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _note_skip(report)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _unexpected:
        terminalreporter.section("skips not allowed (tests/conftest.py ALLOWED_SKIPS)", red=True)
        for nodeid, reason in _unexpected:
            terminalreporter.line(f"{nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
