"""CURVE authentication (keys, allowed clients, clear timeouts) and printing network names."""
import os
import re
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
import zmq.auth
from bridge_helpers import CLIENT_FOR, LOOPBACK, XGM, train
from click.testing import CliRunner

from bridge import BridgeTimeout, Client, Server
from bridge.cli import describe_train, main
from bridge.curve import CurveKeyError, generate_keys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Key pairs: the server's, an allowed client's (in allow/) and a stranger's."""
    root = tmp_path_factory.mktemp("keys")
    server = generate_keys(root / "server", "server")
    alice = generate_keys(root / "clients", "alice")
    mallory = generate_keys(root / "strangers", "mallory")
    allow = root / "allow"
    allow.mkdir()
    (allow / "alice.key").write_bytes(alice[0].read_bytes())
    return {"server": server, "alice": alice, "mallory": mallory, "allow": allow}


def _serve_one(server, sock):
    """Feed train 5 (PUB/PUSH: again and again, until the test stops the server)."""
    if sock == "REP":
        server.feed(train(5))
        return None
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            try:
                server.feed(train(5), timeout=0.05)
            except TimeoutError:
                pass
            except RuntimeError:
                return
    thread = threading.Thread(target=feed)
    thread.start()
    return stop, thread


def _receive(server, sock, timeout=5, **client_kw):
    feeder = _serve_one(server, sock)
    try:
        with Client(server.endpoint, sock=CLIENT_FOR[sock], timeout=timeout,
                    tune_malloc=False, **client_kw) as client:
            return client.next()[1][XGM]["timestamp.tid"]
    finally:
        if feeder is not None:
            feeder[0].set()
            server.stop()
            feeder[1].join(10)


# -- key files ---------------------------------------------------------------------------------

def test_keygen_writes_a_private_secret_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["keygen", str(tmp_path / "k"), "server"])
    assert result.exit_code == 0, result.output
    public, secret = tmp_path / "k" / "server.key", tmp_path / "k" / "server.key_secret"
    assert str(public) in result.output and str(secret) in result.output
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "k")) == ["server.key", "server.key_secret"]
    pub_only, none = zmq.auth.load_certificate(public)
    pub, sec = zmq.auth.load_certificate(secret)
    assert none is None and pub == pub_only and zmq.curve_public(sec) == pub

    again = runner.invoke(main, ["keygen", str(tmp_path / "k"), "server"])
    assert again.exit_code == 1 and "exists" in again.output and "--force" in again.output
    assert zmq.auth.load_certificate(secret) == (pub, sec)        # untouched
    forced = runner.invoke(main, ["keygen", str(tmp_path / "k"), "server", "--force"])
    assert forced.exit_code == 0 and zmq.auth.load_certificate(secret)[0] != pub


@pytest.mark.parametrize("kwargs, message", [
    ({"curve_secret_key": "public"}, "holds only a public key"),
    ({"curve_secret_key": "missing"}, "is not a file"),
    ({"curve_secret_key": "garbage"}, "is not a ZeroMQ key file"),
    ({"curve_secret_key": b"short"}, "40 characters"),
    ({"curve_secret_key": "secret", "curve_allow": "empty"}, "holds no public key file"),
    ({"curve_allow": "empty"}, "curve_allow needs curve_secret_key"),
])
def test_bad_server_keys_are_named(keys, tmp_path, kwargs, message):
    paths = {"public": keys["server"][0], "secret": keys["server"][1],
             "missing": tmp_path / "nope.key_secret", "garbage": tmp_path / "garbage",
             "empty": tmp_path / "empty"}
    paths["garbage"].write_text("not a key")
    paths["empty"].mkdir()
    kwargs = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises((CurveKeyError, ValueError), match=message):
        Server(LOOPBACK, **kwargs)


# -- who may connect -------------------------------------------------------------------------

@pytest.mark.parametrize("sock", ["REP", "PUSH", "PUB"])
def test_allowed_client_receives(keys, sock):
    server = Server(LOOPBACK, sock=sock, curve_secret_key=keys["server"][1],
                    curve_allow=keys["allow"])
    assert server.curve_public_key == zmq.auth.load_certificate(keys["server"][0])[0]
    with server:
        assert _receive(server, sock, curve_server_key=keys["server"][0],
                        curve_secret_key=keys["alice"][1]) == 5


@pytest.mark.parametrize("sock", ["REP", "PUSH", "PUB"])
@pytest.mark.parametrize("client, message", [
    ("mallory", "refused this client's CURVE key"),
    ("fresh", "refused this client's CURVE key"),
    ("wrong-server-key", "handshake failed .*wrong CURVE server key"),
    ("plain", "handshake failed .*may require CURVE"),
])
def test_other_clients_get_nothing_and_a_clear_timeout(keys, sock, client, message):
    client_kw = {
        "mallory": {"curve_server_key": keys["server"][0], "curve_secret_key": keys["mallory"][1]},
        "fresh": {"curve_server_key": keys["server"][0]},
        "wrong-server-key": {"curve_server_key": keys["mallory"][0],
                             "curve_secret_key": keys["alice"][1]},
        "plain": {},
    }[client]
    with Server(LOOPBACK, sock=sock, curve_secret_key=keys["server"][1],
                curve_allow=keys["allow"]) as server:
        with pytest.raises(BridgeTimeout, match=message):
            _receive(server, sock, timeout=1.0, **client_kw)
        assert server.stats["sent"] == 0          # nothing went out to them


def test_any_client_allowed_without_allow_directory(keys):
    with Server(LOOPBACK, sock="REP", curve_secret_key=keys["server"][1]) as server:
        assert _receive(server, "REP", curve_server_key=keys["server"][0]) == 5  # fresh key


def test_z85_keys_in_python(keys):
    public, secret = zmq.curve_keypair()
    with Server(LOOPBACK, sock="REP", curve_secret_key=secret) as server:
        assert _receive(server, "REP", curve_server_key=public) == 5


def test_cli_server_and_glimpse_with_keys(keys):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve-sim", "tcp://127.0.0.1:0", "-d", "XGM",
         "--curve-secret-key", str(keys["server"][1]), "--curve-allow", str(keys["allow"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        endpoint = re.match(r"Serving on (\S+)", proc.stdout.readline()).group(1)
        assert "CURVE on" in proc.stdout.readline()
        runner = CliRunner()
        ok = runner.invoke(main, ["glimpse", endpoint, "--timeout", "20",
                                  "--curve-server-key", str(keys["server"][0]),
                                  "--curve-secret-key", str(keys["alice"][1])])
        assert ok.exit_code == 0, ok.output
        assert "SA1_XTD2_XGM/XGM/DOOCS:output" in ok.output
        refused = runner.invoke(main, ["glimpse", endpoint, "--timeout", "1",
                                       "--curve-server-key", str(keys["server"][0]),
                                       "--curve-secret-key", str(keys["mallory"][1])])
        assert refused.exit_code == 1
        assert "No train from" in refused.output and "refused this client's CURVE key" in (
            refused.output)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# -- names from the network are printed escaped -------------------------------------------------

EVIL = "EVIL\x1b[2J\nSRC"


def test_describe_train_escapes_control_characters():
    data = {EVIL: {"k\x07ey\r": np.zeros(3), "metadata": {}}}
    meta = {EVIL: {"source": EVIL, "timestamp.tid": "1\x1b[31m"}}
    text = describe_train(data, meta, 0.0)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "EVIL\\x1b[2J\\nSRC  @ train 1\\x1b[31m" in text
    assert "k\\x07ey\\r" in text
    assert len(text.splitlines()) == 5       # the \n in the name adds no line


def test_glimpse_escapes_names_received(make_server):
    server = make_server(sock="REP")
    server.feed({EVIL: {"ke\ny": 1.5}}, train_id=3)
    result = CliRunner().invoke(main, ["glimpse", server.endpoint, "--timeout", "10"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "EVIL\\x1b[2J\\nSRC  @ train 3" in result.output and "ke\\ny" in result.output


def test_cli_serve_run_and_monitor_with_keys(keys, tmp_path):
    """serve-run's --curve-secret-key/--curve-allow and monitor's client keys."""
    from exfel_data.testing import XGM as XGMDevice
    from exfel_data.testing import make_run

    run_dir = make_run(tmp_path / "r0001", n_trains=5, devices=[XGMDevice()], progress=False)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve-run", str(run_dir), "tcp://127.0.0.1:0",
         "--loop", "--curve-secret-key", str(keys["server"][1]),
         "--curve-allow", str(keys["allow"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        endpoint = re.match(r"Serving on (\S+)", proc.stdout.readline()).group(1)
        assert "CURVE on" in proc.stdout.readline()
        runner = CliRunner()
        ok = runner.invoke(main, ["monitor", endpoint, "--count", "3", "--interval", "0.1",
                                  "--no-tune-malloc",
                                  "--curve-server-key", str(keys["server"][0]),
                                  "--curve-secret-key", str(keys["alice"][1])])
        assert ok.exit_code == 0, ok.output
        assert "Received 3 trains" in ok.output
        refused = runner.invoke(main, ["glimpse", endpoint, "--timeout", "1",
                                       "--curve-server-key", str(keys["server"][0]),
                                       "--curve-secret-key", str(keys["mallory"][1])])
        assert refused.exit_code == 1 and "refused this client's CURVE key" in refused.output
        plain = runner.invoke(main, ["glimpse", endpoint, "--timeout", "1"])
        assert plain.exit_code == 1 and "No train from" in plain.output
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
