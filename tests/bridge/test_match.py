"""TrainMatcher against real servers on 127.0.0.1: values, order, counts."""
import time

import numpy as np
import pytest
from bridge_helpers import wait_until

from bridge import BridgeTimeout, Client
from bridge.match import TrainMatcher, parse_stream

DET = 'SPB_DET_AGIPD1M-1/DET/0CH0:xtdf'
XGM = 'SA1_XTD2_XGM/XGM/DOOCS:output'
MOTOR = 'SPB_IRU_MOTORS/MDL/X'


def part(source, tid, value=None):
    """One source of one train; its array encodes the source and the train ID."""
    value = tid if value is None else value
    return {source: {'data.x': np.full(4, value, np.float64), 'data.n': np.int32(tid % 1000),
                     'metadata': {'source': source, 'timestamp.tid': tid}}}


def feed(server, source, tids, value=None):
    for tid in tids:
        server.feed(part(source, tid, value), timeout=10)


def taken(server, n):
    wait_until(lambda: server.stats['sent'] >= n, timeout=10)


def collect(matcher, n, timeout=5.0):
    return [matcher.next(timeout=timeout) for _ in range(n)]


def tids_of(trains):
    return [next(iter(meta.values()))['timestamp.tid'] for _, meta in trains]


def check_values(trains, expect):
    """expect: {source: value function of tid} for the sources each train must hold."""
    for data, meta in trains:
        for source, props in data.items():
            tid = meta[source]['timestamp.tid']
            assert props['metadata'] is meta[source]
            np.testing.assert_array_equal(props['data.x'], np.full(4, expect[source](tid)))
            assert props['data.x'].dtype == np.float64
            assert int(props['data.n']) == tid % 1000


@pytest.fixture
def servers(make_server):
    def make(n, sock='REP'):
        return [make_server(sock=sock, max_queue=1000) for _ in range(n)]
    return make


def test_two_streams_matched_in_order_with_a_missing_part(servers):
    a, b = servers(2)
    feed(a, DET, range(100, 110))
    feed(b, XGM, [t for t in range(100, 110) if t != 105])
    with TrainMatcher([a.endpoint, b.endpoint], timeout=2) as matcher:
        trains = collect(matcher, 9)
        with pytest.raises(BridgeTimeout, match='No matched train within'):
            matcher.next(timeout=0.3)
        stats = matcher.stats
    assert tids_of(trains) == [t for t in range(100, 110) if t != 105]
    assert all(set(d) == {DET, XGM} for d, _ in trains)
    check_values(trains, {DET: lambda t: t, XGM: lambda t: t})
    assert stats['matched'] == 9
    assert stats['dropped'] == 1 and stats['dropped_by_source'] == {XGM: 1}
    assert stats['late'] == 0 and stats['window_trains'] == 0 and stats['window_bytes'] == 0
    assert stats['streams'][a.endpoint]['messages'] == 10
    assert stats['streams'][b.endpoint]['sources'] == [XGM]


def test_socket_types_and_out_of_order_within_window(make_server):
    rep = make_server(sock='REP', max_queue=1000)
    push = make_server(sock='PUSH', max_queue=1000)
    pub = make_server(sock='PUB', max_queue=1000)
    order = [1, 2, 3, 5, 4, 7, 6, 8]
    with TrainMatcher([rep.endpoint, (push.endpoint, 'PULL'), (pub.endpoint, 'SUB')],
                      timeout=5) as matcher:
        feed(rep, DET, order)
        taken(rep, len(order))
        feed(push, MOTOR, range(1, 9))
        taken(push, 8)
        time.sleep(0.3)   # SUB connects before PUB sends (ZeroMQ's slow joiner)
        feed(pub, XGM, range(1, 9))
        trains = collect(matcher, 8)
        stats = matcher.stats
    assert tids_of(trains) == list(range(1, 9))
    assert all(set(d) == {DET, XGM, MOTOR} for d, _ in trains)
    check_values(trains, {DET: lambda t: t, XGM: lambda t: t, MOTOR: lambda t: t})
    assert stats['matched'] == 8 and stats['dropped'] == 0


def test_late_part_is_discarded_and_counted(servers):
    a, b = servers(2)
    with TrainMatcher([a.endpoint, b.endpoint]) as matcher:
        feed(a, DET, [1, 2, 3])
        feed(b, XGM, [1, 2, 3])
        assert tids_of(collect(matcher, 3)) == [1, 2, 3]
        feed(a, DET, [2])                # again, after train 2 was emitted
        feed(a, DET, [4])
        feed(b, XGM, [4])
        (data, meta), = collect(matcher, 1)
        stats = matcher.stats
    assert meta[DET]['timestamp.tid'] == 4
    assert stats['late'] == 1 and stats['streams'][a.endpoint]['late'] == 1


def test_duplicate_source_first_wins(servers):
    a, b = servers(2)
    with TrainMatcher([a.endpoint, b.endpoint]) as matcher:
        feed(a, DET, [1, 2, 3], value=-1)
        taken(a, 3)
        time.sleep(0.1)
        # b sends the same source (other values) and an optional one; a's came first
        for tid in (1, 2, 3):
            b.feed({**part(DET, tid, value=-2), **part(XGM, tid)})
        trains = collect(matcher, 3)
        stats = matcher.stats
    assert tids_of(trains) == [1, 2, 3]
    check_values(trains, {DET: lambda t: -1, XGM: lambda t: t})
    assert stats['duplicates'] == {DET: 3} and stats['matched'] == 3


def test_required_and_optional(servers):
    a, b = servers(2)
    with TrainMatcher([a.endpoint, b.endpoint], require=['SPB_DET_*'], timeout=0.3) as matcher:
        feed(b, XGM, [1, 3])            # optional: joins when present, never waited for
        taken(b, 2)
        time.sleep(0.1)
        feed(a, DET, [1, 2, 3, 4])
        trains = collect(matcher, 4)
        stats = matcher.stats
    assert tids_of(trains) == [1, 2, 3, 4]
    assert [sorted(d) for d, _ in trains] == [[XGM, DET], [DET], [XGM, DET], [DET]]
    check_values(trains, {DET: lambda t: t, XGM: lambda t: t})
    assert stats['matched'] == 2 and stats['incomplete'] == 2
    assert stats['incomplete_by_source'] == {XGM: 2}


def test_required_missing_is_dropped_after_timeout_and_window_is_bounded(servers):
    a, = servers(1)
    with TrainMatcher([a.endpoint], require=[DET, 'SA1_XTD2_XGM/*'], timeout=0.2,
                      max_trains=5) as matcher:
        feed(a, DET, range(1, 21))
        windows = []
        for _ in range(40):
            with pytest.raises(BridgeTimeout):
                matcher.next(timeout=0.05)
            stats = matcher.stats
            windows.append(stats['window_trains'])
            if stats['dropped'] == 20:
                break
    assert stats['dropped'] == 20 and stats['matched'] == 0
    assert stats['dropped_by_source'] == {'SA1_XTD2_XGM/*': 20}
    assert max(windows) == 5 and stats['window_trains'] == 0


def test_byte_limit_of_window(servers):
    a, = servers(1)
    with TrainMatcher([a.endpoint], require=[DET, XGM], max_bytes=100) as matcher:
        feed(a, DET, range(1, 6))             # 32 bytes of arrays each: 3 fit
        taken(a, 5)
        with pytest.raises(BridgeTimeout):
            matcher.next(timeout=0.3)
        stats = matcher.stats
    assert stats['dropped'] == 2
    assert stats['window_trains'] == 3 and stats['window_bytes'] == 96


def test_restarted_streams_are_followed(servers):
    a, b = servers(2)
    with TrainMatcher([a.endpoint, b.endpoint], timeout=2) as matcher:
        feed(a, DET, range(5000, 5005))
        feed(b, XGM, range(5000, 5005))
        first = collect(matcher, 5)
        # Both restart (a new run): train IDs start again far below.
        feed(a, DET, range(10, 15))
        taken(a, 10)
        time.sleep(0.1)
        feed(b, XGM, range(10, 15))
        second = collect(matcher, 5)
        stats = matcher.stats
    assert tids_of(first) == list(range(5000, 5005))
    assert tids_of(second) == list(range(10, 15))
    check_values(first + second, {DET: lambda t: t, XGM: lambda t: t})
    assert stats['resets'] == 2 and stats['late'] == 0


def test_silent_stream_is_reported_and_does_not_block(servers, caplog):
    a, b = servers(2)
    with TrainMatcher([a.endpoint, b.endpoint], timeout=0.1, silent_after=0.4) as matcher:
        for tid in range(1, 13):
            feed(a, DET, [tid])
            time.sleep(0.05)
        got = []
        while True:
            try:
                got.append(matcher.next(timeout=0.5))
            except BridgeTimeout:
                break
        stats = matcher.stats
    placeholder = f'<no data yet from {b.endpoint}>'
    assert b.endpoint in stats['silent'] and stats['silent'][b.endpoint] >= 0.4
    # Before b counted as silent, trains waited for it and were dropped; then they flow.
    assert got and all(set(d) == {DET} for d, _ in got)
    assert stats['dropped'] + stats['incomplete'] == 12
    assert stats['dropped_by_source'].get(placeholder, 0) == stats['dropped']
    assert stats['incomplete_by_source'] == {placeholder: len(got)}
    assert tids_of(got) == sorted(tids_of(got))
    assert any('No data from' in r.getMessage() and b.endpoint in r.getMessage()
               for r in caplog.records)


def test_existing_clients_and_iteration(servers):
    a, b = servers(2)
    feed(a, DET, range(1, 4))
    feed(b, XGM, range(1, 4))
    ca, cb = Client(a.endpoint), Client(b.endpoint, timeout=1)
    matcher = TrainMatcher([ca, cb])
    out = []
    for _data, meta in matcher:
        out.append(meta[DET]['timestamp.tid'])
        if len(out) == 3:
            matcher.close()
    assert out == [1, 2, 3]
    with pytest.raises(RuntimeError, match='closed'):
        matcher.next()
    ca.close()
    cb.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match='list of streams'):
        TrainMatcher('tcp://127.0.0.1:5555')
    with pytest.raises(ValueError, match="'XYZ@4545': unknown socket type 'XYZ'; write e.g. SUB@"):
        TrainMatcher(['XYZ@4545'])
    assert parse_stream('PUB@4546') == ('tcp://127.0.0.1:4546', 'SUB')   # the server's name
    assert parse_stream('tcp://h:1', 'PULL') == ('tcp://h:1', 'PULL')
    with pytest.raises(ValueError, match='given twice'):
        TrainMatcher(['5555', 'tcp://127.0.0.1:5555'])


def test_stream_running_ahead_is_held_back(make_server):
    """Two replays served flat out: the faster one waits, nothing is dropped."""
    fast = make_server(sock='PUSH', max_queue=2000)
    slow = make_server(sock='REP', max_queue=2000)
    n = 600
    feed(fast, DET, range(1, n + 1))
    feed(slow, XGM, range(1, n + 1))
    with TrainMatcher([(fast.endpoint, 'PULL'), slow.endpoint], max_trains=20,
                      receive_ahead=100) as matcher:
        trains = collect(matcher, n)
        stats = matcher.stats
    assert tids_of(trains) == list(range(1, n + 1))
    assert stats['matched'] == n and stats['dropped'] == 0 and stats['late'] == 0


def test_cli_match_serves_matched_trains_to_the_reference_client():
    """exfel-bridge match: two simulators in, karabo_bridge.Client reads matched trains."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    from karabo_bridge import Client as RefClient

    from bridge.simulation import FIRST_TRAIN_ID, Simulator, serve_simulation

    stop, servers = threading.Event(), {}
    threads = []
    for name, detector, sock in [('xgm', 'XGM', 'REP'), ('det', 'AGIPDModule', 'PUSH')]:
        ready = threading.Event()

        def on_ready(server, name=name, ready=ready):
            servers[name] = server
            ready.set()
        kw = dict(sock=sock, stop=stop, on_ready=on_ready)
        if detector == 'AGIPDModule':
            kw['pulses'] = 2
        thread = threading.Thread(target=serve_simulation, args=('tcp://127.0.0.1:0', detector),
                                  kwargs=kw, daemon=True)
        thread.start()
        threads.append(thread)
        assert ready.wait(20)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'bridge', 'match', str(servers['xgm'].port),
         f"PULL@{servers['det'].port}", '--serve', '0', '-z', 'REP'],
        stdout=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith('Matching tcp://127.0.0.1:'), lines
        endpoint = lines[1].split(' on ')[1].split()[0]
        client = RefClient(endpoint, timeout=20)
        trains = [client.next() for _ in range(5)]
        client._socket.close(linger=0)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        stop.set()
        for thread in threads:
            thread.join(20)
    assert proc.returncode == 0
    assert 'Stopped after' in output and 'matched' in output
    xgm, module = Simulator('XGM'), Simulator('AGIPDModule', pulses=2)
    for data, meta in trains:
        assert set(data) == {XGM, 'SA1_XTD2_XGM/XGM/DOOCS', 'SPB_DET_AGIPD1M-1/CORR/0CH0:output'}
        tid, = {m['timestamp.tid'] for m in meta.values()}
        index = tid - FIRST_TRAIN_ID
        np.testing.assert_array_equal(data[XGM]['data.intensityTD'],
                                      xgm.train(index)[0][XGM]['data.intensityTD'])
        det = 'SPB_DET_AGIPD1M-1/CORR/0CH0:output'
        np.testing.assert_array_equal(data[det]['image.data'],
                                      module.train(index)[0][det]['image.data'])


def test_optional_sources_join_when_their_stream_sends_them(servers):
    """An optional XGM arriving after the required detector still joins its train; an
    optional camera missing from its own stream's message is not waited for."""
    cam = 'SPB_IRU_CAM/CAM/SIDEMIC:daqOutput'
    a, b = servers(2)
    t0 = time.monotonic()
    with TrainMatcher([a.endpoint, b.endpoint], require=[DET], timeout=5) as matcher:
        for tid in range(1, 5):
            a.feed({**part(DET, tid), **(part(cam, tid, value=-tid) if tid % 2 else {})})
        taken(a, 4)
        time.sleep(0.2)
        feed(b, XGM, range(1, 5))
        trains = collect(matcher, 4)
        stats = matcher.stats
    assert time.monotonic() - t0 < 3          # nobody waited for the timeout
    assert tids_of(trains) == [1, 2, 3, 4]
    assert [sorted(d) for d, _ in trains] == [
        sorted(s) for s in ([DET, XGM, cam], [DET, XGM], [DET, XGM, cam], [DET, XGM])]
    check_values(trains, {DET: lambda t: t, XGM: lambda t: t, cam: lambda t: -t})
    assert stats['matched'] == 2 and stats['incomplete'] == 2
    assert stats['incomplete_by_source'] == {cam: 2}
