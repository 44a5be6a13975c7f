"""Interoperability with the reference karabo-bridge package, both directions."""
import time

import numpy as np
import pytest
from bridge_helpers import CLIENT_FOR, LOOPBACK, XGM, train
from karabo_bridge import Client as RefClient
from karabo_bridge import ServerInThread as RefServer
from karabo_bridge.serializer import deserialize as ref_deserialize
from karabo_bridge.server import SimServerInThread as RefSimServer

from bridge import Client, serialize


def _check_train(data, meta, tid):
    assert set(data) == {XGM, 'SPB_XTD9_XGM/DOOCS/MAIN'}
    arr = data[XGM]['data.intensityTD']
    assert arr.dtype == np.float32
    np.testing.assert_array_equal(arr, np.arange(3) + tid)
    assert data[XGM]['beam.photonEnergy'] == 9.3
    main = data['SPB_XTD9_XGM/DOOCS/MAIN']
    assert main['pulseEnergy.photonFlux.value'] == float(tid)
    assert main['classId.value'] == 'DoocsXGM'
    for source in data:
        assert meta[source]['timestamp.tid'] == tid
        assert meta[source]['source'] == source
        assert {'timestamp', 'timestamp.sec', 'timestamp.frac'} <= set(meta[source])
        # Fed train dicts carry 'metadata', so the reference client sees it too.
        assert data[source]['metadata'] == meta[source]


@pytest.mark.parametrize('sock', ['REP', 'PUB', 'PUSH'])
def test_reference_client_reads_our_server(make_server, sock):
    server = make_server(sock=sock, policy='wait', max_queue=10)
    client = RefClient(server.endpoint, sock=CLIENT_FOR[sock], timeout=5)
    try:
        if sock == 'PUB':
            time.sleep(0.3)  # let the subscription arrive
        for tid in (100, 101, 102):
            server.feed(train(tid))
        for tid in (100, 101, 102):
            data, meta = client.next()
            _check_train(data, meta, tid)
    finally:
        client._context.destroy(linger=0)


def test_reference_client_reads_our_protocol_1_0(make_server):
    server = make_server(sock='PUSH', protocol_version='1.0')
    client = RefClient(server.endpoint, sock='PULL', timeout=5)
    try:
        server.feed(train(7))
        data, meta = client.next()
    finally:
        client._context.destroy(linger=0)
    np.testing.assert_array_equal(data[XGM]['data.intensityTD'], np.arange(3) + 7)
    assert meta[XGM]['timestamp.tid'] == 7


@pytest.mark.parametrize('version', ['2.2', '1.0'])
def test_reference_deserializer_reads_our_frames(version):
    frames = serialize(train(3), protocol_version=version)
    data, meta = ref_deserialize([bytes(f) for f in frames])
    np.testing.assert_array_equal(data[XGM]['data.intensityTD'], np.arange(3) + 3)
    assert meta[XGM]['timestamp.tid'] == 3


@pytest.mark.parametrize('version', ['2.2', '1.0'])
@pytest.mark.parametrize('sock', ['REP', 'PUSH'])
def test_our_client_reads_reference_server(version, sock):
    trains = [train(tid) for tid in (5, 6)]
    with RefServer(LOOPBACK, sock=sock, protocol_version=version,
                   dummy_timestamps=True) as server:
        with Client(server.endpoint, sock=CLIENT_FOR[sock], timeout=5) as client:
            for t in trains:
                server.feed(t)
            for tid in (5, 6):
                data, meta = client.next()
                _check_train(data, meta, tid)
                assert data[XGM]['metadata'] is meta[XGM]


@pytest.mark.parametrize('version', ['2.2', '1.0'])
def test_our_client_reads_reference_simulator(version):
    with RefSimServer(LOOPBACK, detector='AGIPDModule', raw=True, datagen='zeros',
                      protocol_version=version, debug=False) as server:
        with Client(server.endpoint, timeout=10) as client:
            tids = []
            for _ in range(2):
                data, meta = client.next()
                (source,) = data
                assert source.startswith('SPB_DET_AGIPD1M-1/')
                props = data[source]
                assert props['image.data'].shape == (128, 512, 64)  # online order: fs, ss, pulses
                assert props['image.data'].dtype == np.uint16
                assert props['image.cellId'].dtype == np.uint16
                tid = meta[source]['timestamp.tid']
                np.testing.assert_array_equal(props['image.trainId'], tid)
                assert len(meta[source]['timestamp.frac']) == 18
                assert props['metadata'] is meta[source]
                tids.append(tid)
    assert tids[1] > tids[0] >= 10_000_000_000


def _writable(data):
    return {(src, key): value.flags.writeable for src, props in data.items()
            for key, value in props.items() if isinstance(value, np.ndarray)}


@pytest.mark.parametrize('version', ['2.2', '1.0'])
@pytest.mark.parametrize('server_kind', ['ours', 'reference'])
def test_arrays_writable_as_with_reference_client(make_server, server_kind, version):
    """Client arrays are writable exactly where karabo_bridge.Client's are, with no copy."""
    if server_kind == 'ours':
        server = make_server(sock='REP', protocol_version=version)
    else:
        server = RefServer(LOOPBACK, sock='REP', protocol_version=version)
        server.start()
    try:
        ref = RefClient(server.endpoint, sock='REQ', timeout=5)
        try:
            with Client(server.endpoint, sock='REQ', timeout=5) as client:
                for tid in (1, 2):
                    server.feed(train(tid))
                ref_data, _ = ref.next()
                data, _ = client.next()
        finally:
            ref._context.destroy(linger=0)
    finally:
        if server_kind == 'reference':
            server.stop()
    expected = _writable(ref_data)
    assert expected and _writable(data) == expected
    arr = data[XGM]['data.intensityTD']
    if version == '2.2':  # arrays in their own frames: writable views, no copy
        assert arr.flags.writeable and not arr.flags.owndata
        before = arr.copy()
        arr += 1  # in-place numpy, as analysis code does
        np.testing.assert_array_equal(arr, before + 1)
