"""Every ```python block of README.md and docs/*.md runs, on the run `make demo` writes.

A page's blocks run in order in one namespace (a block may use names an earlier block of the
same page defined), in a folder holding ``demo-data/r0001`` (the demo run: 50 trains, an
AGIPD-1M of 16 raw modules of 64x32 pixels, an XGM, motors, a camera). An HTML comment on the
line just before a block's fence changes how it runs:

- ``<!-- needs: WHAT -->``: the block needs other data (a facility path, a cluster); it is
  reported as skipped with that reason, and the page says WHAT in the same words.
- ``<!-- live: ENDPOINT DETECTOR -->``: a simulator (``serve_simulation``, REP) is started on
  a free loopback port for the block, and ENDPOINT in the block is replaced by its address.
- ``<!-- free port: 4545 -->``: the block binds a server itself; 4545 is replaced by a free
  port (and ``tcp://*`` by the loopback address, as everywhere in these tests).
- ``<!-- client: 4545 -->``: as ``free port``, and a REQ client reads from that port while
  the block runs (for blocks that serve until clients took the trains).
- ``<!-- file: NAME -->``: the block is the content of file NAME (e.g. an analysis file the
  page's later blocks use); it is written, not run.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
# Pages whose examples have a test of their own (run there on several kinds of runs).
TESTED_ELSEWHERE = {"detectors.md": "tests/detectors/test_docs_detectors.py"}
PAGES = [ROOT / "README.md", *(p for p in sorted((ROOT / "docs").glob("*.md"))
                               if p.name not in TESTED_ELSEWHERE)]
MARKERS = "needs|live|free port|client|file"
MARKER = re.compile(rf"^<!--\s*({MARKERS})\s*:?\s*(.*?)\s*-->$")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    marker: str = ""
    argument: str = ""

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of a markdown page, with the marker comment before each (and
    blocks of any language marked ``file:``, e.g. a YAML file a later block reads)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = MARKER.match(lines[i - 1].strip()) if i else None
        marker, argument = match.groups() if match else ("", "")
        fence = lines[i].strip()
        if fence == "```python" or (marker == "file" and fence.startswith("```")
                                    and len(fence) > 3):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            blocks.append(Block(page, i + 1, "\n".join(lines[i + 1:end]) + "\n", marker,
                                argument))
            i = end
        i += 1
    return blocks


BLOCKS = [b for page in PAGES for b in python_blocks(page)]


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A folder holding demo-data/r0001, written by `exfel-data demo` as `make demo` does."""
    from exfel_data.cli import main

    folder = tmp_path_factory.mktemp("docs")
    res = CliRunner().invoke(main, ["demo", "--out", str(folder / "demo-data")])
    assert res.exit_code == 0, res.output
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Simulator:
    """serve_simulation on a free loopback port in a thread; stopped on exit."""

    def __init__(self, detector: str):
        self.detector, self.stop = detector, threading.Event()

    def __enter__(self) -> str:
        from bridge.simulation import serve_simulation

        ready: list[str] = []
        started = threading.Event()

        def on_ready(server):
            ready.append(server.endpoint)
            started.set()

        self.thread = threading.Thread(target=serve_simulation, daemon=True, kwargs=dict(
            endpoint="tcp://127.0.0.1:0", detector=self.detector, stop=self.stop,
            on_ready=on_ready, pulses=4))
        self.thread.start()
        assert started.wait(30), "the simulator did not start"
        return ready[0]

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)


class Reader:
    """A REQ client taking trains from ``endpoint`` in a thread until the block is done."""

    def __init__(self, endpoint: str):
        self.endpoint, self.done, self.received = endpoint, threading.Event(), 0

    def _read(self) -> None:
        from bridge import Client

        with Client(self.endpoint, timeout=0.5) as client:
            while not self.done.is_set():
                try:
                    client.next()
                    self.received += 1
                except TimeoutError:
                    pass

    def __enter__(self) -> Reader:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join(30)
        assert exc[0] is not None or self.received, "the block served no train"


_namespaces: dict[Path, tuple[dict, list[int]]] = {}


def run_block(block: Block) -> None:
    # tests bind and connect on the loopback interface only
    code = block.code.replace("tcp://*:", "tcp://127.0.0.1:")
    if block.marker in ("free port", "client"):
        port = free_port()
        code = code.replace(block.argument, str(port))
    if block.marker == "client":
        with Reader(f"tcp://127.0.0.1:{port}"):
            exec(compile(code, block.id, "exec"), namespace_of(block.page))
        return
    if block.marker == "file":
        Path(block.argument).write_text(code, encoding="utf-8")
        return
    if block.marker == "live":
        endpoint, _, detector = block.argument.partition(" ")
        with Simulator(detector.strip() or "AGIPD") as real:
            exec(compile(code.replace(endpoint, real), block.id, "exec"),
                 namespace_of(block.page))
        return
    exec(compile(code, block.id, "exec"), namespace_of(block.page))


def namespace_of(page: Path) -> dict:
    return _namespaces.setdefault(page, ({"__name__": "__docs__"}, []))[0]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_block_runs(block: Block, demo_dir, monkeypatch):
    if block.marker == "needs":
        pytest.skip(f"doc block needs {block.argument}")
    monkeypatch.chdir(demo_dir)
    namespace, done = _namespaces.setdefault(block.page, ({"__name__": "__docs__"}, []))
    # the page's earlier blocks first (when this one is run alone, e.g. with -k)
    for earlier in python_blocks(block.page):
        if earlier.line >= block.line:
            break
        if earlier.line not in done and earlier.marker != "needs":
            done.append(earlier.line)
            run_block(earlier)
    done.append(block.line)
    run_block(block)


def test_markers_are_well_formed():
    """A comment meant as a marker but misspelt would silently run the block unmarked."""
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            if re.match(rf"^<!--\s*({MARKERS})\b", line.strip()):
                assert MARKER.match(line.strip()), f"{page.name}: bad marker {line!r}"
                if "needs" in line:
                    assert MARKER.match(line.strip()).group(2), f"{page.name}: needs what?"


def test_pages_tested_elsewhere_have_their_test():
    for page, test in TESTED_ELSEWHERE.items():
        assert (ROOT / "docs" / page).exists() and (ROOT / test).exists(), (page, test)
        assert page in (ROOT / test).read_text()  # that test reads this page
