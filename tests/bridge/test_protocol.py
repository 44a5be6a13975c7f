"""Wire format: byte-exact 2.2, round trips, older formats, malformed messages."""
import os
import pickle

import msgpack
import numpy as np
import pytest
from bridge_helpers import XGM

from bridge import ProtocolError, deserialize, serialize, timestamp_metadata

META = {
    'source': XGM,
    'timestamp': 1700000000.5,
    'timestamp.sec': '1700000000',
    'timestamp.frac': '500000000000000000',
    'timestamp.tid': 1000000001,
}


def _hexstr(text):
    return text.encode().hex()


def test_reference_example_byte_identical():
    data = {XGM: {'beam.photonEnergy': 9.3,
                  'image.data': np.arange(6, dtype='<f4').reshape(2, 3)}}
    frames = serialize(data, {XGM: META})
    assert len(frames) == 4
    src = 'bd' + _hexstr(XGM)
    frame0 = (
        '83' + 'a6' + _hexstr('source') + src + 'a7' + _hexstr('content') + 'a7'
        + _hexstr('msgpack') + 'a8' + _hexstr('metadata') + '85'
        + 'a6' + _hexstr('source') + src
        + 'a9' + _hexstr('timestamp') + 'cb41d954fc40200000'
        + 'ad' + _hexstr('timestamp.sec') + 'aa' + _hexstr('1700000000')
        + 'ae' + _hexstr('timestamp.frac') + 'b2' + _hexstr('5' + '0' * 17)
        + 'ad' + _hexstr('timestamp.tid') + 'ce3b9aca01'
    )
    frame1 = '81' + 'b1' + _hexstr('beam.photonEnergy') + 'cb402299999999999a'
    frame2 = (
        '85' + 'a6' + _hexstr('source') + src + 'a7' + _hexstr('content') + 'a5'
        + _hexstr('array') + 'a4' + _hexstr('path') + 'aa' + _hexstr('image.data')
        + 'a5' + _hexstr('dtype') + 'a7' + _hexstr('float32')
        + 'a5' + _hexstr('shape') + '920203'
    )
    frame3 = '000000000000803f0000004000004040000080400000a040'
    expected = [frame0, frame1, frame2, frame3]
    assert [len(bytes.fromhex(f)) for f in expected] == [198, 28, 91, 24]
    for i, (got, want) in enumerate(zip(frames, expected, strict=True)):
        assert bytes(got).hex() == want, f'frame {i}'


def test_timestamp_metadata():
    assert timestamp_metadata(1700000000.5) == {
        'timestamp': 1700000000.5, 'timestamp.sec': '1700000000',
        'timestamp.frac': '500000000000000000'}
    now = timestamp_metadata()
    assert len(now['timestamp.frac']) == 18
    assert abs(int(now['timestamp.sec']) - now['timestamp']) < 1


@pytest.mark.parametrize('version', ['2.2', '1.0'])
def test_round_trip_values(version):
    arrays = {
        'f4': np.linspace(0, 1, 12, dtype='<f4').reshape(3, 4),
        'big_endian': np.arange(5, dtype='>i4'),
        'u16': np.arange(6, dtype=np.uint16),
        'bool': np.array([True, False]),
        'complex': np.array([1 + 2j]),
        'zero_d': np.array(7.5),
        'empty': np.zeros((0, 3), dtype=np.int64),
        'strided': np.arange(20, dtype=np.int32)[::2],
        'fortran': np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    }
    data = {XGM: {
        **arrays,
        'int': 3, 'float': 1.5, 'str': 'abc', 'bytes': b'\x00\x01', 'none': None,
        'bool_scalar': True, 'list': [1, 2, 3], 'tuple': (4, 5), 'strings': ['a', 'b'],
        'np_scalar': np.float32(2.5), 'np_int': np.uint64(2**40), 'np_bool': np.bool_(True),
        'nested': {'a': 1, 'b': {'c': 'd'}},
        'list_of_np': [np.int16(1), np.float64(2.0)],
        'metadata': {'timestamp.tid': 10},
    }}
    out, meta = deserialize(serialize(data, protocol_version=version))
    got = out[XGM]
    for key, value in arrays.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value)
    assert got['int'] == 3 and got['float'] == 1.5 and got['str'] == 'abc'
    assert got['bytes'] == b'\x00\x01' and got['none'] is None and got['bool_scalar'] is True
    assert got['list'] == [1, 2, 3] and got['tuple'] == [4, 5] and got['strings'] == ['a', 'b']
    assert got['np_scalar'] == 2.5 and type(got['np_scalar']) is float
    assert got['np_int'] == 2**40 and type(got['np_int']) is int
    assert got['np_bool'] is True
    assert got['nested.a'] == 1 and got['nested.b.c'] == 'd'
    assert got['list_of_np'] == [1, 2.0]
    assert meta[XGM] == {'source': XGM, 'timestamp.tid': 10}
    assert got['metadata'] is meta[XGM]


def test_string_arrays_become_lists():
    data = {'S': {
        'u': np.array(['ab', 'c']),
        'obj': np.array([['x', b'y'], ['z', 'w']], dtype=object),
        's': np.array([b'A1', b'B2']),
    }}
    out, _ = deserialize(serialize(data))
    assert out['S']['u'] == ['ab', 'c']
    assert out['S']['obj'] == [['x', 'y'], ['z', 'w']]
    assert out['S']['s'] == ['A1', 'B2']


@pytest.mark.parametrize('value, message', [
    (np.array([1, object()], dtype=object), 'holds a value of type object'),
    (np.zeros(2, dtype=[('a', 'f4'), ('b', 'i2')]), 'structured dtype'),
    (object(), 'object'),
    ({1, 2}, 'set'),
])
def test_unsendable_values_name_source_and_key(value, message):
    with pytest.raises(ProtocolError, match=message) as info:
        serialize({'SRC/A': {'ok': 1, 'bad.key': value}})
    assert "'SRC/A'" in str(info.value) and "'bad.key'" in str(info.value)
    # The memory address of a Python object never goes out.
    assert '0x' not in str(info.value)


def test_bad_data_structure():
    with pytest.raises(ProtocolError, match='dict of sources'):
        serialize([1, 2])
    with pytest.raises(ProtocolError, match="source 'A' must be a dict"):
        serialize({'A': 5})
    with pytest.raises(ValueError, match='protocol version'):
        serialize({}, protocol_version='3.0')


def test_one_frame_per_array_without_copy():
    big = np.ones((4, 1000), dtype=np.float64)
    small = np.arange(3, dtype=np.int8)
    frames = serialize({'D': {'big': big, 'small': small}})
    assert len(frames) == 6
    payloads = [f for f in frames[3::2]]
    assert {len(p) for p in payloads} == {big.nbytes, small.nbytes}
    # Array frames are views on the caller's arrays, not copies.
    assert any(np.shares_memory(np.frombuffer(p, np.uint8), big) for p in payloads)


def test_deserialized_arrays_are_views_on_frames():
    frames = [bytes(f) for f in serialize({'D': {'a': np.arange(1000, dtype=np.int32)}})]
    data, _ = deserialize(frames)
    arr = data['D']['a']
    assert np.shares_memory(arr, np.frombuffer(frames[3], np.uint8))
    assert not arr.flags.writeable  # bytes are immutable


def test_arrays_writable_where_the_frames_are():
    frames = [bytearray(f) for f in serialize({'D': {'a': np.arange(4, dtype=np.int32)}})]
    data, _ = deserialize(frames)
    arr = data['D']['a']
    arr += 10  # in place, into the frame: no copy
    assert np.frombuffer(frames[3], np.int32).tolist() == [10, 11, 12, 13]


def test_sources_sorted_and_metadata_from_data():
    data = {'B': {'x': 1, 'metadata': {'timestamp.tid': 5}}, 'A': {'y': 2}}
    frames = serialize(data)
    headers = [msgpack.unpackb(f) for f in frames[::2]]
    assert [h['source'] for h in headers] == ['A', 'B']
    assert headers[1]['metadata'] == {'source': 'B', 'timestamp.tid': 5}
    assert headers[0]['metadata'] == {'source': 'A'}
    # Metadata travels in the header; a train dict's 'metadata' entry also stays
    # in the data map (as karabo_bridge sends train dicts from files).
    assert msgpack.unpackb(frames[3]) == {'x': 1, 'metadata': headers[1]['metadata']}
    assert msgpack.unpackb(frames[1]) == {'y': 2}


def _pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def test_order_and_unknown_header_keys_do_not_matter():
    arr = np.arange(4, dtype='<u2')
    frames = [
        _pack({'shape': [2, 2], 'future': 1, 'dtype': 'uint16', 'path': 'a.b',
               'content': 'array', 'source': 'S'}), arr.tobytes(),
        _pack({'content': 'msgpack', 'source': 'S', 'metadata': {'timestamp.tid': 3},
               'extra': 'ignored'}), _pack({'x': 1}),
    ]
    data, meta = deserialize(frames)
    assert data['S']['x'] == 1
    np.testing.assert_array_equal(data['S']['a.b'], arr.reshape(2, 2))
    assert meta['S'] == {'timestamp.tid': 3, 'source': 'S'}


def test_protocol_2_0_nested_and_2_1_flattened_metadata():
    nested = [
        _pack({'source': 'S', 'content': 'msgpack'}),
        _pack({'x': 1, 'metadata': {'timestamp.tid': 7, 'source': 'S'}}),
        _pack({'source': 'S', 'content': 'array', 'path': 'arr', 'dtype': 'int8',
               'shape': [2]}), b'\x01\x02',
    ]
    data, meta = deserialize(nested)
    assert meta['S'] == {'timestamp.tid': 7, 'source': 'S'}
    assert data['S']['x'] == 1 and list(data['S']['arr']) == [1, 2]
    assert data['S']['metadata'] is meta['S']

    flat = [
        _pack({'source': 'S', 'content': 'msgpack'}),
        _pack({'x': 1, 'metadata.timestamp.tid': 8, 'metadata.source': 'S',
               'metadata.timestamp.sec': '12'}),
    ]
    data, meta = deserialize(flat)
    assert meta['S'] == {'timestamp.tid': 8, 'source': 'S', 'timestamp.sec': '12'}
    assert set(data['S']) == {'x', 'metadata'}


def test_protocol_1_0_from_reference_serializer():
    from karabo_bridge.serializer import serialize as ref_serialize
    data = {'S': {'img': np.arange(6, dtype='>f8').reshape(2, 3), 'n': 4, 's': 'txt',
                  'npscalar': np.float32(1.5)}}
    frames = ref_serialize(data, {'S': {'timestamp.tid': 11}}, protocol_version='1.0')
    assert len(frames) == 1
    out, meta = deserialize(frames)
    np.testing.assert_array_equal(out['S']['img'], data['S']['img'])
    assert out['S']['img'].dtype == np.dtype('>f8')
    assert out['S']['n'] == 4 and out['S']['s'] == 'txt' and out['S']['npscalar'] == 1.5
    assert meta['S']['timestamp.tid'] == 11 and out['S']['metadata'] is meta['S']


def test_protocol_1_0_complex_and_str_keys():
    message = _pack({'S': {
        'c': {b'complex': True, b'data': b'(1+2j)'},
        'old_style': {'nd': True, 'type': '<i2', 'kind': '', 'shape': [2],
                      'data': b'\x01\x00\x02\x00'},
        'metadata': {'timestamp.tid': 1},
    }})
    out, _ = deserialize([message])
    assert out['S']['c'] == 1 + 2j
    assert list(out['S']['old_style']) == [1, 2]
    # A user's map that merely has an 'nd' key stays a map.
    message = _pack({'S': {'cfg': {'nd': True, 'data': 'text'}, 'metadata': {}}})
    out, _ = deserialize([message])
    assert out['S']['cfg'] == {'nd': True, 'data': 'text'}


class _Evil:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_protocol_1_0_object_array_refused_not_unpickled(tmp_path):
    marker = tmp_path / 'pwned'
    payload = pickle.dumps(_Evil(str(marker)))
    message = _pack({'S': {'evil': {b'nd': True, b'type': '|O', b'kind': b'O',
                                    b'shape': [1], b'data': payload}}})
    with pytest.raises(ProtocolError, match='refusing to unpickle'):
        deserialize([message])
    assert not marker.exists()
    # A whole-message pickle (long-gone ser='pickle') is refused too.
    with pytest.raises(ProtocolError, match='pickle'):
        deserialize([pickle.dumps({'S': _Evil(str(marker))})])
    assert not marker.exists()


def test_image_data_content():
    frames = [
        _pack({'source': 'CAM', 'content': 'msgpack', 'metadata': {}}), _pack({}),
        _pack({'source': 'CAM', 'content': 'ImageData', 'path': 'data.image.pixels',
               'dtype': 'uint16', 'shape': [2, 2], 'params': {'dims': [2, 2], 'bpp': 16}}),
        np.arange(4, dtype=np.uint16).tobytes(),
    ]
    data, _ = deserialize(frames)
    assert data['CAM']['data.image.pixels'].shape == (2, 2)
    assert data['CAM']['data.image.dims'] == [2, 2]
    assert data['CAM']['data.image.bpp'] == 16


def _good_frames():
    return [bytes(f) for f in serialize({'S': {'a': np.arange(4, dtype=np.int32), 'x': 1}})]


def _with(frames, index, value):
    frames = list(frames)
    frames[index] = value
    return frames


@pytest.mark.parametrize('frames, message', [
    ([], 'Empty message'),
    (_good_frames()[:3], '3 frames'),
    (_with(_good_frames(), 2, _pack({'source': 'S', 'content': 'weird'})),
     "unknown content 'weird'"),
    (_with(_good_frames(), 3, b'\x00' * 15), 'needs 16 bytes, but the data frame has 15'),
    (_with(_good_frames(), 2, _pack({'source': 'S', 'content': 'array', 'path': 'a',
                                     'dtype': 'int32', 'shape': [5]})), 'needs 20 bytes'),
    (_with(_good_frames(), 0, b'\xc1'), 'Header frame 0 is not valid msgpack'),
    (_with(_good_frames(), 0, _pack({'source': 'S', 'content': 'msgpack'})[:-3]),
     'not valid msgpack'),
    (_with(_good_frames(), 1, b'\x92\x01'), 'not valid msgpack'),
    (_with(_good_frames(), 1, _pack([1, 2])), 'data must be a map'),
    (_with(_good_frames(), 0, _pack([1])), 'must be a map'),
    (_with(_good_frames(), 0, _pack({'content': 'msgpack'})), 'with str "source"'),
    (_with(_good_frames(), 2, _pack({'source': 'S', 'content': 'array', 'path': 'a',
                                     'dtype': 'nonsense', 'shape': [4]})), 'unknown dtype'),
    (_with(_good_frames(), 2, _pack({'source': 'S', 'content': 'array', 'path': 'a',
                                     'dtype': '|O', 'shape': [2]})), 'object dtype'),
    (_with(_good_frames(), 2, _pack({'source': 'S', 'content': 'array', 'path': 'a',
                                     'dtype': 'int32', 'shape': [-4]})), 'bad shape'),
    (_with(_good_frames(), 2, _pack({'source': 'S', 'content': 'array', 'dtype': 'int32',
                                     'shape': [4]})), 'needs a str "path"'),
    (_good_frames()[:2] * 2, 'sent twice'),
    ([b'Error: bad request blah'], 'Server replied with an error'),
    ([b'\xc1'], '1.0 message is not valid msgpack'),
    ([_pack([1, 2])], '1.0 message must be a map'),
    ([object(), object()], 'bytes-like'),
])
def test_malformed_messages(frames, message):
    with pytest.raises(ProtocolError, match=message):
        deserialize(frames)


def test_protocol_error_is_value_error():
    assert issubclass(ProtocolError, ValueError)


def test_bridge_errors_in_the_project_hierarchy():
    import exfel_data
    from bridge import BridgeError, BridgeTimeout
    from bridge.protocol import ProtocolError as public_name  # where users import it from

    assert public_name is ProtocolError
    with pytest.raises(exfel_data.ExfelDataError, match='Empty message'):
        deserialize([])
    assert issubclass(ProtocolError, BridgeError) and issubclass(ProtocolError, ValueError)
    assert issubclass(BridgeTimeout, BridgeError) and issubclass(BridgeTimeout, TimeoutError)
    assert issubclass(BridgeError, exfel_data.ExfelDataError)
    for error in (ProtocolError('bad frame'), BridgeTimeout('no train'), BridgeError('x')):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


# More with BRIDGE_FUZZ=5000 when changing the decoder.
N_CORRUPTIONS = int(os.environ.get('BRIDGE_FUZZ', 300))


@pytest.mark.parametrize('version', ['2.2', '1.0'])
def test_random_corruption_gives_protocol_error_only(version):
    """Truncated or bit-flipped messages decode or raise ProtocolError, nothing else."""
    rng = np.random.default_rng(42)
    data = {'S': {'a': np.arange(6, dtype='<f4').reshape(2, 3), 'n': 5, 's': ['x', 'y'],
                  'metadata': {'timestamp.tid': 1}}}
    good = [bytes(f) for f in serialize(data, protocol_version=version)]
    for _ in range(N_CORRUPTIONS):
        frames = list(good)
        i = int(rng.integers(len(frames)))
        frame = bytearray(frames[i])
        if rng.random() < 0.5 and frame:
            frame = frame[:int(rng.integers(len(frame)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                if frame:
                    frame[int(rng.integers(len(frame)))] = int(rng.integers(256))
        frames[i] = bytes(frame)
        try:
            deserialize(frames)
        except ProtocolError:
            pass


def test_repeated_headers_still_checked():
    """Array headers are parsed once, but every train's payload is still checked."""
    arr = np.arange(12, dtype='>i4').reshape(3, 4)
    frames = [bytes(f) for f in serialize({'R': {'a': arr}}, {'R': {'timestamp.tid': 1}})]
    for _ in range(2):  # the second time from the cache of parsed headers
        data, _ = deserialize(frames)
        np.testing.assert_array_equal(data['R']['a'], arr)
        assert data['R']['a'].dtype == np.dtype('>i4')
    with pytest.raises(ProtocolError, match=r"source 'R' \(frames 2, 3\): key 'a': .*truncated"):
        deserialize(frames[:3] + [frames[3][:-4]])


def test_arrays_from_zmq_frames_are_writable_views():
    # As karabo_bridge's client gives them (pyFAI and in-place numpy need it):
    # a received frame's memory belongs to this message alone.
    import zmq
    frames = serialize({'D': {'a': np.arange(100_000.0)}}, {'D': {'timestamp.tid': 1}})
    zmq_frames = [zmq.Frame(bytes(f)) for f in frames]
    for _ in range(2):  # the second time from the cache of parsed headers
        data, _ = deserialize(zmq_frames)
        arr = data['D']['a']
        assert arr.flags.writeable and not arr.flags.owndata
        assert np.shares_memory(arr, np.frombuffer(zmq_frames[3].buffer, np.uint8))
    arr *= 2
    assert arr[-1] == 199_998.0
    assert np.frombuffer(zmq_frames[3].buffer, np.float64)[-1] == 199_998.0
