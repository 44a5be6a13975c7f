"""Server: endpoints, metadata completion, socket patterns, slow-client policies."""
import sys
import threading
import time

import numpy as np
import pytest
import zmq
from bridge_helpers import CLIENT_FOR, XGM, train, wait_until

import bridge.server_socket as server_socket
from bridge import Client, ProtocolError, Server


def test_endpoint_has_real_port(make_server):
    server = make_server()
    assert server.endpoint.startswith('tcp://127.0.0.1:')
    assert server.port == int(server.endpoint.rsplit(':', 1)[1]) > 0
    assert 'REP' in repr(server)


def test_wildcard_endpoint_and_bare_port(make_server):
    server = make_server(endpoint='tcp://*:0')
    assert server.port > 0 and '0.0.0.0' not in server.endpoint
    with Client(f'tcp://127.0.0.1:{server.port}', timeout=5) as client:
        server.feed(train(1))
        data, _ = client.next()
    assert data[XGM]['metadata']['timestamp.tid'] == 1
    second = make_server(endpoint=0)
    assert second.endpoint == f'tcp://127.0.0.1:{second.port}'  # bare port: loopback only


def test_ipc_endpoint(make_server, tmp_path):
    server = make_server(endpoint=f'ipc://{tmp_path}/bridge', sock='PUSH')
    assert server.port is None
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        server.feed(train(4))
        assert client.next()[1][XGM]['timestamp.tid'] == 4


@pytest.mark.parametrize('kwargs, message', [
    ({'sock': 'ROUTER'}, 'Unknown socket type'),
    ({'policy': 'throw'}, 'Unknown policy'),
    ({'max_queue': 0}, 'at least 1'),
    ({'protocol_version': '2.1'}, 'protocol version'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Server('tcp://127.0.0.1:0', **kwargs)


def test_bind_error_names_endpoint(make_server):
    server = make_server()
    with pytest.raises(OSError, match=server.endpoint):
        Server(server.endpoint)


def test_metadata_completed(make_server):
    server = make_server(sock='PUSH')
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        before = time.time()
        server.feed({'A': {'x': 1},
                     'B': {'y': 2, 'metadata': {'timestamp.tid': np.uint64(77),
                                                'source': 'OLD/NAME'}}})
        data, meta = client.next()
        assert meta['A']['timestamp.tid'] == meta['B']['timestamp.tid'] == 77
        assert type(meta['B']['timestamp.tid']) is int
        for source in 'AB':
            m = meta[source]
            assert m['source'] == source
            assert before - 1 < m['timestamp'] < time.time() + 1
            assert m['timestamp.sec'] == str(int(m['timestamp']))
            assert len(m['timestamp.frac']) == 18
        # Explicit train ID; existing timestamps are kept as they are.
        server.feed({'A': {'x': 1}}, {'A': {'timestamp': 1700000000.5}}, train_id=5)
        _, meta = client.next()
        assert meta['A'] == {'source': 'A', 'timestamp': 1700000000.5, 'timestamp.tid': 5,
                             'timestamp.sec': '1700000000',
                             'timestamp.frac': '500000000000000000'}


def test_no_timestamps_for_file_data(make_server):
    server = make_server(sock='PUSH', timestamps=False)
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        server.feed(train(12))
        _, meta = client.next()
    assert meta[XGM] == {'source': XGM, 'timestamp.tid': 12}


def test_feed_does_not_modify_input(make_server):
    server = make_server(sock='PUSH', policy='drop')
    data = train(3)
    server.feed(data)
    assert data[XGM]['metadata'] == {'source': XGM, 'timestamp.tid': 3}


def test_feed_without_train_id_is_an_error(make_server):
    server = make_server()
    with pytest.raises(ValueError, match="train_id="):
        server.feed({'A': {'x': 1}})
    assert server.stats['fed'] == 0


def test_unsendable_train_raises_in_feed_and_server_survives(make_server):
    server = make_server(sock='PUSH')
    with pytest.raises(ProtocolError, match="'A' key 'bad'"):
        server.feed({'A': {'bad': object()}}, train_id=1)
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        server.feed(train(2))
        assert client.next()[1][XGM]['timestamp.tid'] == 2


def test_copy_protects_reused_buffers(make_server):
    server = make_server(sock='PUSH', policy='queue')
    buf = np.zeros(100_000)
    server.feed({'A': {'x': buf}}, train_id=1, copy=True)
    buf[:] = 1
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        data, _ = client.next()
    assert not data['A']['x'].any()


def test_rep_serves_several_clients_each_train_once(make_server):
    server = make_server(sock='REP', policy='queue', max_queue=100)
    n = 30
    for tid in range(n):
        server.feed(train(tid))
    received = []
    lock = threading.Lock()

    def worker():
        with Client(server.endpoint, timeout=5) as client:
            for _ in range(n // 3):
                _, meta = client.next()
                with lock:
                    received.append(meta[XGM]['timestamp.tid'])

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(received) == list(range(n))
    assert server.stats['sent'] == n


def test_stalled_req_client_does_not_block_others(make_server):
    server = make_server(sock='REP', policy='wait', max_queue=2)
    ctx = zmq.Context()
    try:
        stalled = ctx.socket(zmq.REQ)
        stalled.setsockopt(zmq.LINGER, 0)
        stalled.connect(server.endpoint)
        stalled.send(b'next')  # asks once, never reads the reply
        wait_until(lambda: server.stats['waiting_clients'] == 1)
        server.feed(train(0))  # goes to the stalled client
        with Client(server.endpoint, timeout=5) as client:
            for tid in range(1, 6):
                server.feed(train(tid), timeout=5)
                assert client.next()[1][XGM]['timestamp.tid'] == tid
    finally:
        ctx.destroy(linger=0)


def test_bad_request_gets_single_frame_error(make_server):
    server = make_server(sock='REP')
    ctx = zmq.Context()
    try:
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, 5000)
        req.connect(server.endpoint)
        req.send(b'gimme')
        assert req.recv_multipart() == [b'Error: bad request gimme']
        # The server still serves proper requests on the same connection.
        server.feed(train(9))
        req.send(b'next')
        assert len(req.recv_multipart()) == 6
    finally:
        ctx.destroy(linger=0)
    assert server.stats['bad_requests'] == 1


def test_huge_request_disconnects_only_that_peer(make_server):
    server = make_server(sock='REP', policy='queue')
    ctx = zmq.Context()
    try:
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(server.endpoint)
        rogue.send_multipart([b'', b'x' * 10_000_000])
        time.sleep(0.1)
        assert server.stats['requests'] == 0
        with Client(server.endpoint, timeout=5) as client:
            server.feed(train(1))
            assert client.next()[1][XGM]['timestamp.tid'] == 1
    finally:
        ctx.destroy(linger=0)


def test_pub_copies_to_every_subscriber(make_server):
    server = make_server(sock='PUB', policy='wait')
    clients = [Client(server.endpoint, sock='SUB', timeout=5) for _ in range(2)]
    try:
        time.sleep(0.3)  # subscriptions must arrive before publishing
        for tid in range(3):
            server.feed(train(tid))
        for client in clients:
            assert [client.next()[1][XGM]['timestamp.tid'] for _ in range(3)] == [0, 1, 2]
    finally:
        for client in clients:
            client.close()


def test_push_round_robin(make_server):
    """Each train goes to exactly one PULL client, and connected clients take turns."""
    server = make_server(sock='PUSH', policy='wait', max_queue=100)
    clients = [Client(server.endpoint, sock='PULL', timeout=0.2) for _ in range(2)]
    got: list[list[int]] = [[], []]

    def receive_available():
        for client, ids in zip(clients, got, strict=True):
            while True:
                try:
                    ids.append(client.next()[1][XGM]['timestamp.tid'])
                except TimeoutError:
                    break

    try:
        # Connecting takes a moment (longer on a busy machine): until both
        # clients are connected, every train goes to the first one.
        fed = 0
        deadline = time.monotonic() + 30
        while not (got[0] and got[1]):
            assert time.monotonic() < deadline, f'a client got nothing: {got}'
            server.feed(train(fed))
            fed += 1
            receive_available()
        before = [len(ids) for ids in got]
        for tid in range(fed, fed + 6):
            server.feed(train(tid))
        fed += 6
        wait_until(lambda: receive_available() or sum(map(len, got)) == fed, timeout=10)
    finally:
        for client in clients:
            client.close()
    assert sorted(got[0] + got[1]) == list(range(fed))  # none lost, none twice
    assert len(got[0]) > before[0] and len(got[1]) > before[1]  # both took turns


def _feed_fast(server, stop, fed, nbytes):
    tid = 0
    while not stop.is_set():
        tid += 1
        data = {XGM: {'data': np.zeros(nbytes, np.uint8)}}
        try:
            server.feed(data, train_id=tid)
        except TimeoutError:
            continue
        fed[0] = tid
        time.sleep(0.001)


@pytest.mark.parametrize('sock', ['REP', 'PUSH', 'PUB'])
@pytest.mark.parametrize('policy', ['drop', 'queue'])
def test_slow_client_gets_fresh_data(make_server, sock, policy):
    """Trains fed at ~1 kHz to a client reading at ~20 Hz stay recent."""
    max_queue = 4
    server = make_server(sock=sock, policy=policy, max_queue=max_queue)
    # REP: only our queue stands between feed() and the client, so even tiny
    # trains stay fresh. PUSH/PUB: kernel socket buffers (~100s of kB) hold
    # trains too; with 50 kB trains that is a handful.
    nbytes = 100 if sock == 'REP' else 50_000
    stop, fed = threading.Event(), [0]
    producer = threading.Thread(target=_feed_fast, args=(server, stop, fed, nbytes))
    with Client(server.endpoint, sock=CLIENT_FOR[sock], timeout=5) as client:
        producer.start()
        try:
            ages = []
            for _ in range(10):
                _, meta = client.next()
                ages.append(time.time() - meta[XGM]['timestamp'])
                time.sleep(0.05)
        finally:
            stop.set()
            producer.join()
    stats = server.stats
    if sock == 'REP':
        # At most max_queue trains ahead (drop: none) at ~1 ms each, plus scheduling.
        assert max(ages[2:]) < 0.25
    else:
        assert max(ages) < 1.0
    if sock == 'PUSH':
        # Trains in flight (sent, not yet read) fit in the kernel's socket
        # buffers (~2 MB at most), so the age is bounded.
        assert (stats['sent'] - len(ages)) * nbytes <= 2_000_000
    if sock != 'PUB':  # PUB drops for slow subscribers inside ZeroMQ, uncounted
        assert stats['dropped'] > 0
        assert stats['sent'] + stats['dropped'] + stats['queued'] == stats['fed']


def test_queue_drops_oldest(make_server):
    server = make_server(sock='REP', policy='queue', max_queue=3)
    for tid in range(10):
        server.feed(train(tid))
    assert server.stats['dropped'] == 7 and server.stats['queued'] == 3
    with Client(server.endpoint, timeout=5) as client:
        got = [client.next()[1][XGM]['timestamp.tid'] for _ in range(3)]
    assert got == [7, 8, 9]
    assert server.stats['sent'] == 3


def test_queue_bounded_by_bytes(make_server):
    server = make_server(sock='REP', policy='queue', max_queue=100, max_queue_bytes=3000)
    for tid in range(5):
        server.feed({'A': {'x': np.zeros(1000, np.uint8)}}, train_id=tid)
    stats = server.stats
    assert stats['queued'] == 2 and stats['dropped'] == 3 and stats['queued_bytes'] <= 3000


def test_wait_applies_back_pressure(make_server):
    server = make_server(sock='REP', policy='wait', max_queue=2)
    server.feed(train(0))
    server.feed(train(1))
    start = time.monotonic()
    with pytest.raises(TimeoutError, match='clients are not keeping up'):
        server.feed(train(2), timeout=0.2)
    assert time.monotonic() - start >= 0.2
    assert server.stats['fed'] == 2

    blocked = threading.Thread(target=server.feed, args=(train(2),))
    blocked.start()
    time.sleep(0.1)
    assert blocked.is_alive()  # waiting for room
    with Client(server.endpoint, timeout=5) as client:
        got = [client.next()[1][XGM]['timestamp.tid'] for _ in range(3)]
        blocked.join(5)
    assert got == [0, 1, 2] and not blocked.is_alive()
    assert server.stats['dropped'] == 0 and server.stats['sent'] == 3


def test_drain(make_server):
    server = make_server(sock='REP', policy='queue')
    server.feed(train(0))
    assert server.drain(timeout=0.05) is False
    with Client(server.endpoint, timeout=5) as client:
        client.next()
        assert server.drain(timeout=5) is True


def test_stop_with_linger_delivers_last_trains(make_server):
    server = make_server(sock='PUSH', policy='wait')
    got = []
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        reader = threading.Thread(
            target=lambda: got.extend(client.next()[1]['A']['timestamp.tid'] for _ in range(3)))
        reader.start()
        big = {'A': {'x': np.ones(4_000_000)}}  # 32 MB: still in transit at stop()
        for tid in range(3):
            server.feed(big, train_id=tid)
        assert server.drain(timeout=5)
        server.stop(linger=5)
        reader.join()
    assert got == [0, 1, 2]


def test_feed_after_stop_and_stop_twice(make_server):
    server = make_server()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match='stopped'):
        server.feed(train(1))


def test_stop_releases_blocked_feed(make_server):
    server = make_server(policy='wait', max_queue=1)
    server.feed(train(0))
    errors = []

    def feed():
        try:
            server.feed(train(1))
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=feed)
    t.start()
    time.sleep(0.1)
    server.stop()
    t.join(5)
    assert not t.is_alive() and 'stopped' in str(errors[0])


def test_protocol_1_0_server(make_server):
    server = make_server(sock='PUSH', protocol_version='1.0')
    with Client(server.endpoint, sock='PULL', timeout=5) as client:
        server.feed(train(8))
        data, meta = client.next()
    np.testing.assert_array_equal(data[XGM]['data.intensityTD'], np.arange(3) + 8)
    assert meta[XGM]['timestamp.tid'] == 8


def test_stats_waiting_clients(make_server):
    server = make_server(sock='REP')
    assert server.stats['waiting_clients'] == 0
    got = []
    with Client(server.endpoint, timeout=10) as client:
        reader = threading.Thread(target=lambda: got.append(client.next()))
        reader.start()
        # the request arrives with nothing to send: the client waits
        wait_until(lambda: server.stats['waiting_clients'] == 1)
        assert server.stats['requests'] == 1
        server.feed(train(4))
        reader.join(10)
    assert got and got[0][1][XGM]['timestamp.tid'] == 4
    stats = server.stats
    assert stats['waiting_clients'] == 0 and stats['sent'] == 1


def _many_frames_train(tid, n_sources=4, n_arrays=3):
    """A train of many frames, every value derived from ``tid``: a message mixing
    frames of two trains fails to decode or shows two train IDs."""
    return {f'SRC/{s}': {**{f'a{k}': np.full(5000 + k, tid, np.int64) for k in range(n_arrays)},
                         'tid': tid}
            for s in range(n_sources)}


def _check_whole(data, meta):
    tids = {m['timestamp.tid'] for m in meta.values()}
    assert len(tids) == 1, f'one message holds several trains: {sorted(tids)}'
    tid = tids.pop()
    assert len(data) == 4
    for props in data.values():
        assert props['tid'] == tid
        for k in range(3):
            assert props[f'a{k}'].shape == (5000 + k,) and (props[f'a{k}'] == tid).all()
    return tid


@pytest.mark.parametrize('sock', ['PUSH', 'REP', 'PUB'])
def test_concurrent_feeders_never_mix_frames(make_server, monkeypatch, sock):
    """Several producer threads feed at once while the client lags now and then
    (PUSH: feed()'s direct send and the server thread trade the socket). The GIL
    is handed over between the frames sent, to widen any race: every train must
    still arrive once, whole, and each producer's trains in order."""
    def yielding_send_frames(socket, frames, flags):
        for i, frame in enumerate(frames):
            more = flags | zmq.SNDMORE if i < len(frames) - 1 else flags
            socket.send(frame, more, copy=True)
            time.sleep(0.0002)  # let other threads run mid-message
    monkeypatch.setattr(server_socket, 'send_frames', yielding_send_frames)
    senders = {'feed': 0, 'thread': 0}

    def counting(method, who):
        def wrapper(self, *args):
            sent = method(self, *args)
            senders[who] += bool(sent)
            return sent
        return wrapper
    monkeypatch.setattr(server_socket.SocketOwner, 'send_direct',
                        counting(server_socket.SocketOwner.send_direct, 'feed'))
    monkeypatch.setattr(Server, '_send', counting(Server._send, 'thread'))
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    server = make_server(sock=sock, policy='wait', max_queue=6)
    n_feeders, per_feeder = 3, 100
    errors = []

    def produce(k):
        try:
            for i in range(per_feeder):
                server.feed(_many_frames_train(k * 100_000 + i), train_id=k * 100_000 + i)
                if i in (30, 60):
                    # Producers pause: the queue drains and feed() sends directly again.
                    time.sleep(0.5)
        except Exception as e:  # reported below
            errors.append(e)

    try:
        with Client(server.endpoint, sock=CLIENT_FOR[sock], timeout=10) as client:
            if sock == 'PUB':
                time.sleep(0.3)  # subscriptions must arrive before publishing
            else:  # connected before the producers start (a busy machine is slow)
                warm_up = 10 * 100_000
                server.feed(_many_frames_train(warm_up), train_id=warm_up)
                assert _check_whole(*client.next()) == warm_up
            feeders = [threading.Thread(target=produce, args=(k,)) for k in range(n_feeders)]
            for t in feeders:
                t.start()
            got = []
            for i in range(n_feeders * per_feeder):
                got.append(_check_whole(*client.next()))
                if i % 100 == 50:
                    # Lag longer than the kernel's socket buffers (MBs) can absorb:
                    # the queue fills and the server thread takes over.
                    time.sleep(0.3)
            for t in feeders:
                t.join(10)
    finally:
        sys.setswitchinterval(old_interval)
    assert not errors
    assert sorted(got) == sorted(k * 100_000 + i for k in range(n_feeders)
                                 for i in range(per_feeder))
    for k in range(n_feeders):
        own = [t for t in got if t // 100_000 == k]
        assert own == sorted(own)
    if sock == 'PUSH':
        assert senders['feed'] and senders['thread'], senders  # both took turns
    if sock != 'PUB':
        # counted just after sending; + the warm-up train
        wait_until(lambda: server.stats['sent'] == len(got) + 1)
        assert server.stats['queued'] == 0 and server.stats['dropped'] == 0
