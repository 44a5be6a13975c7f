"""Servers stop on signals, PUB waits for a subscriber, and counts are of trains sent."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from bridge_helpers import CLIENT_FOR, XGM, train, wait_until

from bridge import Client
from bridge.cli import _Progress
from bridge.simulation import FIRST_TRAIN_ID, serve_simulation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """6 trains of an XGM and a camera, in 2 files."""
    from exfel_data.testing import XGM as XGMDevice
    from exfel_data.testing import Camera, RunPlan

    plan = RunPlan(n_trains=6, first_train_id=10000, trains_per_file=4,
                   devices=[XGMDevice(), Camera(shape=(16, 8))])
    return str(plan.write(tmp_path_factory.mktemp("runs") / "r0001"))


def _start_bridge(args):
    """``python -m bridge ARGS``; returns (process, endpoint) once it serves."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "bridge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    match = re.match(r"Serving on (\S+)", line)
    if not match:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"server did not start: {line}{out}{err}")
    return proc, match.group(1)


class _Reader:
    """A client reading trains in a thread until closed."""

    def __init__(self, endpoint, sock):
        self.trains = []
        self._done = threading.Event()
        self._client = Client(endpoint, sock=CLIENT_FOR[sock], timeout=0.2, tune_malloc=False)
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self):
        while not self._done.is_set():
            try:
                _, meta = self._client.next()
            except TimeoutError:
                continue
            self.trains.append(next(iter(meta.values()))["timestamp.tid"])

    def close(self):
        self._done.set()
        self._thread.join(10)
        self._client.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("sock", ["REP", "PUB", "PUSH"])
@pytest.mark.parametrize("command", ["serve-sim", "serve-run"])
def test_server_commands_stop_within_a_second(tiny_run, command, sock, sig):
    """While streaming to a client, each server command stops within 1 s of the signal."""
    args = (["serve-sim", "tcp://127.0.0.1:0", "-d", "XGM"] if command == "serve-sim"
            else ["serve-run", tiny_run, "tcp://127.0.0.1:0", "--loop"])
    proc, endpoint = _start_bridge([*args, "-z", sock])
    reader = None
    try:
        reader = _Reader(endpoint, sock)
        wait_until(lambda: len(reader.trains) >= 3, timeout=30)
        sent_at = time.monotonic()
        proc.send_signal(sig)
        stopped_after = None
        for line in proc.stdout:
            if line.startswith("Stopped: Sent "):
                stopped_after = time.monotonic() - sent_at
        proc.wait(30)
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.communicate()
        if reader is not None:
            reader.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert stopped_after is not None and stopped_after < 1.0


def test_second_signal_is_not_needed_but_works(tiny_run):
    """SIGINT twice in a row still ends cleanly (the second raises KeyboardInterrupt)."""
    proc, _ = _start_bridge(["serve-run", tiny_run, "tcp://127.0.0.1:0", "--loop", "-z", "PUB"])
    try:
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Stopped: Sent 0 trains" in out


# -- PUB: waits for its first subscriber under 'wait' ----------------------------------------------

def test_pub_wait_holds_trains_until_a_subscriber_comes(make_server):
    server = make_server(sock="PUB", policy="wait", max_queue=5)
    for tid in range(3):
        server.feed(train(tid))
    time.sleep(0.2)
    assert server.stats["sent"] == 0 and server.stats["queued"] == 3
    with pytest.raises(TimeoutError):
        for tid in range(3, 6):
            server.feed(train(tid), timeout=0.2)   # the 6th finds the queue full
    with Client(server.endpoint, sock="SUB", timeout=5) as client:
        got = [client.next()[1][XGM]["timestamp.tid"] for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert server.last_sent_train_id == 4


def test_pub_drop_counts_trains_nobody_subscribed_to(make_server):
    server = make_server(sock="PUB", policy="drop")
    for tid in range(3):
        server.feed(train(tid))
    wait_until(lambda: server.stats["dropped"] == 3)
    assert server.stats["sent"] == 0
    with Client(server.endpoint, sock="SUB", timeout=5) as client:
        wait_until(lambda: server._topics)   # the subscription arrived
        server.feed(train(7))
        assert client.next()[1][XGM]["timestamp.tid"] == 7
    assert server.stats["sent"] == 1


def test_pub_waits_again_after_the_last_subscriber_left(make_server):
    server = make_server(sock="PUB", policy="wait")
    with Client(server.endpoint, sock="SUB", timeout=5) as client:
        server.feed(train(1))
        assert client.next()[1][XGM]["timestamp.tid"] == 1
    wait_until(lambda: not server._topics)
    server.feed(train(2))
    time.sleep(0.1)
    assert server.stats["queued"] == 1 and server.stats["sent"] == 1


def test_serve_run_pub_waits_for_a_subscriber(tiny_run):
    proc, endpoint = _start_bridge(["serve-run", tiny_run, "tcp://127.0.0.1:0", "-z", "PUB"])
    try:
        time.sleep(0.5)
        assert proc.poll() is None                   # no subscriber yet: nothing sent
        with Client(endpoint, sock="SUB", timeout=10) as client:
            got = [next(iter(client.next()[1].values()))["timestamp.tid"] for _ in range(6)]
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert got == list(range(10000, 10006))
    assert "Done: Sent 6/6 trains" in out


# -- ntrains: returns once clients took them -------------------------------------------------------

@pytest.mark.parametrize("sock", ["REP", "PUB", "PUSH"])
def test_serve_simulation_ntrains_counts_trains_taken(sock):
    """Paced (policy drop), with the client connecting late: still N trains delivered."""
    servers, result = [], []
    thread = threading.Thread(target=lambda: result.append(serve_simulation(
        "tcp://127.0.0.1:0", "XGM", sock=sock, rate=50, ntrains=5,
        on_ready=servers.append)))
    thread.start()
    try:
        wait_until(lambda: servers, timeout=20)
        time.sleep(0.3)                                   # trains dropped meanwhile
        assert servers[0].stats["dropped"] > 0
        got = []
        with Client(servers[0].endpoint, sock=CLIENT_FOR[sock], timeout=10) as client:
            for _ in range(5):
                got.append(next(iter(client.next()[1].values()))["timestamp.tid"])
        thread.join(20)
    finally:
        if servers:
            servers[0].stop()
    assert not thread.is_alive() and result == [5]
    assert len(got) == 5 and got == sorted(got) and got[0] > FIRST_TRAIN_ID


# -- the status line ------------------------------------------------------------------------------

def test_status_line_reports_trains_sent_not_queued(make_server, capsys):
    server = make_server(sock="REP", policy="queue")
    progress = _Progress(loopback_only=False, total=3)
    progress.ready(server)
    with Client(server.endpoint, timeout=5) as client:
        server.feed(train(10))
        client.next()
        wait_until(lambda: server.stats["sent"] == 1)   # counted just after sending
        for tid in (11, 12):
            server.feed(train(tid))
        progress._last -= 2                          # a status line is due
        progress(12)
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("Sent 1/3 trains, last train ID 10,")
