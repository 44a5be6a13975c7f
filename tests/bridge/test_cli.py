"""The exfel-bridge command line: endpoints, help, serve-sim, glimpse, monitor."""

import os
import re
import signal
import subprocess
import sys
import threading

import click
import numpy as np
import pytest
from click.testing import CliRunner

from bridge.cli import RateMeter, client_endpoint, main, server_endpoint
from bridge.simulation import FIRST_TRAIN_ID, Simulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- endpoints ---------------------------------------------------------------------------------

def test_server_endpoint_bare_port_binds_loopback_and_says_how_to_open():
    assert server_endpoint("4545") == ("tcp://127.0.0.1:4545", True)


@pytest.mark.parametrize("value", ["tcp://*:4545", "tcp://127.0.0.1:0", "ipc:///tmp/x"])
def test_server_endpoint_passes_addresses(value):
    assert server_endpoint(value) == (value, False)


@pytest.mark.parametrize("value, expected", [
    ("4545", "tcp://127.0.0.1:4545"), ("exflong:4545", "tcp://exflong:4545"),
    ("tcp://10.0.0.1:4545", "tcp://10.0.0.1:4545"), ("ipc:///tmp/x", "ipc:///tmp/x"),
])
def test_client_endpoint(value, expected):
    assert client_endpoint(value) == expected


@pytest.mark.parametrize("func", [server_endpoint, client_endpoint])
def test_bad_endpoint(func):
    with pytest.raises(click.BadParameter, match="not an endpoint"):
        func("http://host/4545")


# -- help ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("command, words", [
    ([], ["serve-sim", "serve-run", "glimpse", "monitor"]),
    (["serve-sim"], ["--detector", "AGIPDModule", "JUNGFRAU", "--raw", "--data-like",
                     "--pulses", "--rate", "-z", "loopback"]),
    (["serve-run"], ["--source", "--key", "--trains", "--append-detector-modules",
                     "--dummy-timestamps", "--loop", "--rate"]),
    (["glimpse"], ["dtype", "delay", "-z"]),
    (["monitor"], ["--count", "trains/s", "age"]),
])
def test_help(command, words):
    result = CliRunner().invoke(main, command + ["--help"])
    assert result.exit_code == 0, result.output
    for word in words:
        assert word in result.output


def test_serve_sim_rejects_bad_endpoint():
    result = CliRunner().invoke(main, ["serve-sim", "localhost/4545"])
    assert result.exit_code == 2
    assert "not an endpoint" in result.output


# -- servers as subprocesses (python -m bridge) ----------------------------------------------------

def _popen_bridge(args):
    """``python -m bridge ARGS`` with unbuffered text output."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "bridge", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _ctrl_c(proc):
    """Send SIGINT; return the rest of stdout once the process ended cleanly."""
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out


def _start(args):
    proc = _popen_bridge(args)
    line = proc.stdout.readline()
    match = re.match(r"Serving on (\S+)", line)
    if not match:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"server did not start: {line}{out}{err}")
    return proc, match.group(1)


def test_serve_sim_subprocess_read_by_karabo_bridge():
    import karabo_bridge
    proc, endpoint = _start(["serve-sim", "tcp://127.0.0.1:0", "-d", "AGIPDModule", "--raw",
                             "--data-like", "file", "-n", "3", "--ntrains", "2"])
    try:
        ref = Simulator("AGIPDModule", raw=True, data_like="file", pulses=3)
        source = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
        with karabo_bridge.Client(endpoint, timeout=20) as client:
            for i in range(2):
                data, meta = client.next()
                assert meta[source]["timestamp.tid"] == FIRST_TRAIN_ID + i
                assert data[source]["image.data"].shape == (3, 2, 512, 128)
                np.testing.assert_array_equal(data[source]["image.data"],
                                              ref.train(i)[0][source]["image.data"])
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Done: Sent 2/2 trains" in out


def test_serve_sim_bare_port_and_ctrl_c():
    proc, endpoint = _start(["serve-sim", "0", "-d", "XGM", "--rate", "20", "-z", "PUB"])
    try:
        assert endpoint.startswith("tcp://127.0.0.1:")
        port = endpoint.rsplit(":", 1)[1]
        assert f"tcp://*:{port}" in proc.stdout.readline()   # how to accept remote clients
    except BaseException:
        proc.kill()
        raise
    assert "Stopped: Sent" in _ctrl_c(proc)


# -- clients against an in-process server ----------------------------------------------------------

@pytest.fixture
def xgm_server():
    """A REP server that keeps feeding simulated XGM trains until the test ends."""
    from bridge.server import Server

    stop = threading.Event()
    with Server("tcp://127.0.0.1:0", sock="REP", policy="wait") as server:
        def feed():
            for data, meta in Simulator("XGM"):
                if stop.is_set():
                    return
                try:
                    server.feed(data, meta, timeout=0.2)
                except TimeoutError:
                    continue
                except RuntimeError:
                    return

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        yield server
        stop.set()
        thread.join(10)


def test_glimpse(xgm_server):
    result = CliRunner().invoke(main, ["glimpse", xgm_server.endpoint, "--timeout", "20"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Train ID: {FIRST_TRAIN_ID}" in out
    assert "SA1_XTD2_XGM/XGM/DOOCS:output" in out
    assert re.search(r"data\.intensityTD\s+float32 \(1000,\)", out)
    assert re.search(r"pulseEnergy\.photonFlux\.value\s+float", out)
    assert "delay:" in out


def test_glimpse_timeout_says_what_to_check():
    result = CliRunner().invoke(main, ["glimpse", "tcp://127.0.0.1:9", "--timeout", "0.2"])
    assert result.exit_code == 1
    assert "No train from tcp://127.0.0.1:9 within 0.2 s" in result.output


def test_monitor_count(xgm_server):
    result = CliRunner().invoke(main, ["monitor", str(xgm_server.port), "--count", "20",
                                       "--interval", "0.1", "--no-tune-malloc"])
    assert result.exit_code == 0, result.output
    assert "Received 20 trains" in result.output
    assert "0 train IDs missing." in result.output
    assert "trains/s" in result.output


def test_monitor_tunes_malloc_unless_told(xgm_server):
    # A subprocess: the tuning is process-wide. monitor owns its process, so it tunes.
    code = ("import sys, bridge.malloc\n"
            "from bridge.cli import main\n"
            "main(sys.argv[1:], standalone_mode=False)\n"
            "print('tuned:', bridge.malloc._tuned)\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("EXFEL_BRIDGE_TUNE_MALLOC", None)
    for flags, expected in (([], "tuned: True"), (["--no-tune-malloc"], "tuned: None")):
        result = subprocess.run(
            [sys.executable, "-c", code, "monitor", xgm_server.endpoint, "--count", "2",
             "--interval", "0.1", *flags], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        assert "Received 2 trains" in result.stdout
        assert result.stdout.strip().endswith(expected)


@pytest.mark.parametrize("sock", ["REP", "PUSH"])
def test_monitor_fast(make_server, sock):
    server = make_server(sock=sock, policy="wait")
    stop = threading.Event()

    def produce():
        sim = Simulator(detector="XGM")
        tid = 0
        while not stop.is_set():
            try:
                server.feed(*sim.train(tid), timeout=0.1)
                tid += 1
            except TimeoutError:
                pass
            except RuntimeError:
                return  # server stopped

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        result = CliRunner().invoke(main, ["monitor", server.endpoint, "-z", sock, "--fast",
                                           "--count", "30", "--interval", "0.1",
                                           "--no-tune-malloc"])
    finally:
        stop.set()
        thread.join(10)
    assert result.exit_code == 0, result.output
    assert "Received 30 trains" in result.output and "0 train IDs missing." in result.output


def test_monitor_stops_cleanly_on_ctrl_c(xgm_server):
    proc = _popen_bridge(["monitor", xgm_server.endpoint, "--interval", "0.1"])
    try:
        assert proc.stdout.readline().startswith("Monitoring ")
        assert "trains/s" in proc.stdout.readline()     # a first status line
    except BaseException:
        proc.kill()
        raise
    assert "Received " in _ctrl_c(proc)


def test_rate_meter_counts_gaps_and_age():
    meter = RateMeter()
    for tid in (10, 11, 14, 13):
        meta = {"S": {"timestamp.tid": tid, "timestamp": 100.0}}
        meter.add({"S": {"a": np.zeros(10, np.uint8)}}, meta, received_at=100.5)
    assert meter.trains == 4 and meter.nbytes == 40
    assert meter.missing == 2 and meter.out_of_order == 1
    line = meter.line()
    assert "2 missing, 1 out of order" in line
    assert "age 500 ms" in line


@pytest.fixture
def garbage_server():
    """A raw REP socket answering every request with a malformed message, then a real train."""
    import zmq

    from bridge.protocol import serialize
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()
    good = serialize({"A/B/C:out": {"x": np.arange(3)}}, {"A/B/C:out": {"timestamp.tid": 7}})

    def serve():
        n = 0
        while not stop.is_set():
            if sock.poll(50):
                sock.recv_multipart()
                # Every other reply is bad: a header that is not msgpack, then a good train.
                sock.send_multipart([b"\xc1not msgpack"] if n % 2 == 0 else good)
                n += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{port}"
    stop.set()
    thread.join(5)
    sock.close(linger=0)
    ctx.term()


def test_glimpse_malformed_message_is_a_clear_error(garbage_server):
    result = CliRunner().invoke(main, ["glimpse", garbage_server, "--timeout", "5"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert re.search(rf"not a valid Karabo bridge message from {garbage_server}", result.output)


def test_monitor_counts_malformed_messages_and_goes_on(garbage_server):
    result = CliRunner().invoke(main, ["monitor", garbage_server, "--count", "3",
                                       "--interval", "0.1", "--no-tune-malloc"])
    assert result.exit_code == 0, result.output
    assert "Received 3 trains" in result.output
    assert re.search(r"[34] malformed messages? skipped", result.output)
