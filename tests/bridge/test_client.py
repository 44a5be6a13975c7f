"""Client: receiving, timeouts, recovery, malformed messages, size limit."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from bridge_helpers import CLIENT_FOR, XGM, train, wait_until

from bridge import BridgeTimeout, Client, ProtocolError, Server, serialize

BRIDGE_ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def raw_socket():
    """``raw_socket(zmq.PUSH)`` -> (socket bound on a free loopback port, endpoint)."""
    ctx = zmq.Context()

    def make(kind):
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        port = s.bind_to_random_port('tcp://127.0.0.1')
        return s, f'tcp://127.0.0.1:{port}'

    yield make
    ctx.destroy(linger=0)


def test_next_iter_and_context_manager(make_server):
    server = make_server(sock='REP', policy='queue')
    for tid in range(3):
        server.feed(train(tid))
    with Client(server.endpoint, timeout=5) as client:
        data, meta = client.next()
        assert meta[XGM]['timestamp.tid'] == 0
        assert data[XGM]['metadata'] is meta[XGM]
        np.testing.assert_array_equal(data[XGM]['data.intensityTD'], [0, 1, 2])
        assert iter(client) is client
        rest = [next(client)[1][XGM]['timestamp.tid'] for _ in range(2)]
        assert rest == [1, 2]
        assert 'REQ' in repr(client)
    with pytest.raises(RuntimeError, match='closed'):
        client.next()
    client.close()  # twice is fine


def test_bad_arguments():
    with pytest.raises(ValueError, match='Unknown socket type'):
        Client('tcp://127.0.0.1:5555', sock='DEALER')
    with pytest.raises(ValueError, match='timeout'):
        Client('tcp://127.0.0.1:5555', timeout=0)
    with pytest.raises(ValueError, match='Cannot connect'):
        Client('nonsense://x')
    with pytest.raises(ValueError, match='prefetch applies to REQ'):
        Client('tcp://127.0.0.1:5555', sock='PULL', prefetch=True)
    with pytest.raises(ValueError, match='receive_ahead applies to SUB and PULL'):
        Client('tcp://127.0.0.1:5555', receive_ahead=5)
    with pytest.raises(ValueError, match='positive number of trains, not 0'):
        Client('tcp://127.0.0.1:5555', sock='SUB', receive_ahead=0)


def test_receive_ahead_sets_the_receive_high_water_mark(make_server):
    server = make_server(sock='PUSH', policy='wait')
    with Client(server.endpoint, sock='PULL', timeout=5, receive_ahead=100) as client:
        assert client._socket.getsockopt(zmq.RCVHWM) == 100
        for tid in range(3):
            server.feed(train(tid))
        assert [client.next()[1][XGM]['timestamp.tid'] for _ in range(3)] == [0, 1, 2]
    with Client(server.endpoint, sock='PULL') as client:
        assert client._socket.getsockopt(zmq.RCVHWM) == 2


def test_prefetch_asks_for_the_next_train_on_arrival(make_server):
    server = make_server(sock='REP', policy='wait')
    with Client(server.endpoint, timeout=5, prefetch=True) as client:
        for tid in range(4):
            server.feed(train(tid))
        data, meta = client.next()
        assert meta[XGM]['timestamp.tid'] == 0
        # The request for train 1 left with the arrival of train 0.
        wait_until(lambda: server.stats['sent'] == 2)
        assert server.stats['requests'] == 2
        rest = [client.next() for _ in range(3)]
        assert [m[XGM]['timestamp.tid'] for _, m in rest] == [1, 2, 3]
        np.testing.assert_array_equal(rest[-1][0][XGM]['data.intensityTD'], [3, 4, 5])


@pytest.mark.parametrize('sock', ['REQ', 'SUB', 'PULL'])
def test_timeout_error_names_endpoint_and_duration(make_server, sock):
    server = make_server(sock={'REQ': 'REP', 'SUB': 'PUB', 'PULL': 'PUSH'}[sock])
    with Client(server.endpoint, sock=sock, timeout=0.2) as client:
        start = time.monotonic()
        with pytest.raises(BridgeTimeout) as info:
            client.next()
        assert 0.19 < time.monotonic() - start < 2
    assert isinstance(info.value, TimeoutError)
    assert server.endpoint in str(info.value) and '0.2 s' in str(info.value)


def test_req_asks_again_after_timeout(make_server):
    server = make_server(sock='REP')
    with Client(server.endpoint, timeout=0.2) as client:
        with pytest.raises(TimeoutError, match='re-sent'):
            client.next()
        # The abandoned request is still queued in the server until it notices
        # the old connection closed (about a millisecond); a train handed to it
        # before that would be lost.
        time.sleep(0.1)
        server.feed(train(5))
        _, meta = client.next()
    assert meta[XGM]['timestamp.tid'] == 5
    # The train was not lost on the abandoned request.
    assert server.stats['sent'] == 1 and server.stats['queued'] == 0


def test_req_recovers_after_server_restart():
    server = Server('tcp://127.0.0.1:0', sock='REP')
    port = server.port
    restarted = []
    try:
        with Client(server.endpoint, timeout=10) as client:
            server.feed(train(1))
            assert client.next()[1][XGM]['timestamp.tid'] == 1

            def restart():
                # The client's next request reaches this server, which then dies.
                wait_until(lambda: server.stats['waiting_clients'] == 1)
                server.stop()
                new = Server(f'tcp://127.0.0.1:{port}', sock='REP')
                restarted.append(new)
                new.feed(train(2))

            t = threading.Thread(target=restart)
            t.start()
            _, meta = client.next()  # no timeout: recovered by re-sending
            t.join()
        assert meta[XGM]['timestamp.tid'] == 2
    finally:
        server.stop()
        for s in restarted:
            s.stop()


class _Feeder:
    """Feeds ``train(tid)`` to a server every 10 ms in a thread (PUB/PUSH clients that
    connect late miss earlier trains, so a test waits for one of a stream)."""

    def __init__(self, server, tid):
        self.server, self.tid, self.done = server, tid, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.01):
            self.server.feed(train(self.tid))

    def stop(self):
        self.done.set()
        self.thread.join(5)


@pytest.mark.parametrize('sock', ['PUB', 'PUSH'])
def test_sub_and_pull_recover_after_server_restart(sock):
    """A SUB or PULL client keeps receiving when the server restarts on the same port."""
    server = Server('tcp://127.0.0.1:0', sock=sock, policy='drop')
    port, servers, feeders = server.port, [server], []
    try:
        with Client(server.endpoint, sock=CLIENT_FOR[sock], timeout=10) as client:
            feeders.append(_Feeder(server, 1))
            assert client.next()[1][XGM]['timestamp.tid'] == 1
            feeders[-1].stop()
            server.stop()
            new = Server(f'tcp://127.0.0.1:{port}', sock=sock, policy='drop')
            servers.append(new)
            feeders.append(_Feeder(new, 2))
            # trains of the old server still buffered in the client come first
            tids = {1}
            while 2 not in tids:
                tids.add(client.next()[1][XGM]['timestamp.tid'])  # BridgeTimeout: failed
        assert tids == {1, 2}
    finally:
        for feeder in feeders:
            feeder.stop()
        for s in servers:
            s.stop()


def test_malformed_message_raises_and_client_survives(raw_socket):
    push, endpoint = raw_socket(zmq.PUSH)
    good = serialize({'S': {'x': 1, 'metadata': {'timestamp.tid': 3}}})
    with Client(endpoint, sock='PULL', timeout=5) as client:
        push.send_multipart([b'\x92', b'\x00', b'odd'])
        with pytest.raises(ProtocolError, match='3 frames'):
            client.next()
        push.send_multipart(good[:1] + [b'\xc1'])
        with pytest.raises(ProtocolError, match='not valid msgpack'):
            client.next()
        push.send_multipart(good)
        assert client.next()[1]['S']['timestamp.tid'] == 3


def test_req_malformed_reply_then_recovers(raw_socket):
    rep, endpoint = raw_socket(zmq.REP)
    good = serialize({'S': {'x': 1, 'metadata': {'timestamp.tid': 4}}})

    def serve():
        assert rep.recv() == b'next'
        rep.send_multipart([b'junk', b'more', b'odd'])
        assert rep.recv() == b'next'
        rep.send_multipart(good)

    t = threading.Thread(target=serve)
    t.start()
    with Client(endpoint, timeout=5) as client:
        with pytest.raises(ProtocolError, match='Message has 3 frames'):
            client.next()
        assert client.next()[1]['S']['timestamp.tid'] == 4
    t.join()


def test_max_message_size_refuses_big_frames(make_server):
    server = make_server(sock='PUSH', policy='queue')
    with Client(server.endpoint, sock='PULL', timeout=0.5, max_message_size=10_000) as client:
        server.feed({'A': {'big': np.zeros(100_000)}}, train_id=1)
        with pytest.raises(BridgeTimeout, match='max_message_size=10000 bytes .* pass a bigger'):
            client.next()
        server.feed({'A': {'small': np.zeros(10)}}, train_id=2)
        assert client.next()[1]['A']['timestamp.tid'] == 2


def test_max_message_size_default_and_none(make_server):
    server = make_server(sock='PUSH', policy='queue')
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        # Set by default (was unset), above any detector's train in one array.
        assert client._socket.getsockopt(zmq.MAXMSGSIZE) == 4 * 2**30
        server.feed({'A': {'big': np.zeros(100_000)}}, train_id=1)
        assert client.next()[0]['A']['big'].shape == (100_000,)
    with Client(server.endpoint, sock='PULL', max_message_size=None) as client:
        assert client._socket.getsockopt(zmq.MAXMSGSIZE) == -1  # ZeroMQ: no limit
    for bad in (0, -5, 1.5, '4G'):
        with pytest.raises(ValueError, match='max_message_size must be a positive number'):
            Client(server.endpoint, max_message_size=bad)


def test_shared_context():
    ctx = zmq.Context()
    try:
        with Server('tcp://127.0.0.1:0', sock='PUSH') as server:
            with Client(server.endpoint, sock='PULL', timeout=5, context=ctx) as client:
                server.feed(train(1))
                assert client.next()[1][XGM]['timestamp.tid'] == 1
        assert not ctx.closed  # a given context is not the client's to close
    finally:
        ctx.term()


def test_tune_malloc_in_a_fresh_process():
    # A subprocess: the tuning is process-wide and would outlive this test.
    code = (
        'import numpy as np, bridge\n'
        'assert bridge.tune_malloc() is True and bridge.tune_malloc() is True\n'
        "with bridge.Server('tcp://127.0.0.1:0', sock='PUSH') as s:\n"
        "    with bridge.Client(s.endpoint, sock='PULL', timeout=10, tune_malloc=True) as c:\n"
        "        s.feed({'A': {'x': np.arange(10_000_000)}}, train_id=1)\n"
        "        data, meta = c.next()\n"
        "assert data['A']['x'][-1] == 9_999_999 and meta['A']['timestamp.tid'] == 1\n"
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, 'PYTHONPATH': BRIDGE_ROOT})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('tune, env, expected', [
    (None, None, 'None'),  # off by default: process-wide and lasting (issue 9)
    (None, '1', 'True'), (None, 'yes', 'True'), (None, '0', 'None'), (None, '', 'None'),
    (True, None, 'True'), (False, '1', 'None'),  # the option wins over the environment
    (None, 'maybe', "ValueError: EXFEL_BRIDGE_TUNE_MALLOC='maybe': use 1"),
])
def test_client_tunes_malloc_only_when_asked(tune, env, expected):
    # A subprocess: the tuning is process-wide and would outlive this test.
    args = '' if tune is None else f', tune_malloc={tune}'
    code = (
        'import bridge, bridge.malloc\n'
        'try:\n'
        f"    with bridge.Client('tcp://127.0.0.1:9', timeout=1{args}):\n"
        '        pass\n'
        'except ValueError as e:\n'
        "    print('ValueError:', e)\n"
        'else:\n'
        '    print(bridge.malloc._tuned)\n'
    )
    environ = {k: v for k, v in os.environ.items() if k != 'EXFEL_BRIDGE_TUNE_MALLOC'}
    if env is not None:
        environ['EXFEL_BRIDGE_TUNE_MALLOC'] = env
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60, env={**environ, 'PYTHONPATH': BRIDGE_ROOT})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(expected)
