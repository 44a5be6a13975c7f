"""The decoder only ever raises ProtocolError, quickly, in bounded memory (issue 10 §3)."""
import os
import tracemalloc

import msgpack
import numpy as np
import pytest
import zmq
from bridge_fuzz import hostile_message, seed_messages

from bridge import ProtocolError, deserialize
from bridge.limits import MAX_DECODED_ITEMS, MAX_HEADER_BYTES, MAX_NDIM, MAX_NESTING


def _array_header(**fields):
    header = {'source': 'S', 'content': 'array', 'path': 'a', 'dtype': 'uint8', 'shape': [4]}
    return msgpack.packb({**header, **fields})


def _meta_pair(data=None):
    return [msgpack.packb({'source': 'S', 'content': 'msgpack', 'metadata': {}}),
            msgpack.packb(data or {})]


def test_deep_nesting_in_header():
    # Was RecursionError (from formatting the header into the message).
    with pytest.raises(ProtocolError, match='Header frame 0 nests lists or maps more than 32'):
        deserialize([b'\x91' * 1000 + b'\xc0', b'\x80'])
    with pytest.raises(ProtocolError, match='Header frame 0 is not valid msgpack: nested too'):
        deserialize([b'\x91' * 5000 + b'\xc0', b'\x80'])


def test_nesting_limit_is_exact_in_data_and_1_0():
    def nested(depth):
        value = 1
        for _ in range(depth):
            value = [value]
        return value

    data, _ = deserialize(_meta_pair({'x': nested(MAX_NESTING - 1)}))  # + the data map
    assert data['S']['x'] == nested(MAX_NESTING - 1)
    with pytest.raises(ProtocolError, match=r"source 'S' \(frames 0, 1\): data frame nests"):
        deserialize(_meta_pair({'x': nested(MAX_NESTING)}))
    with pytest.raises(ProtocolError, match='1.0 message nests lists or maps more than 32'):
        deserialize([msgpack.packb({'S': {'x': nested(MAX_NESTING)}})])


@pytest.mark.parametrize('shape, message', [
    ([2**63] * 2000, r'bad shape \[9223372036854775808, .*\.\.\.\] \(need a list of at most 32'),
    ([2**63] * 3, r'needs more than 2\*\*64 bytes, but the data frame has 4'),
    ([2**64 - 1] * 3, 'needs more than 2'),
    ([1] * (MAX_NDIM + 1), 'at most 32 non-negative'),
    ([2, -2], 'bad shape'),
    ([2.0, 2], 'bad shape'),
    ([[2], 2], 'bad shape'),
    (4, 'bad shape 4'),
])
def test_shapes_checked_before_any_work(shape, message):
    # [2**63]*2000 was a bare ValueError (a 4300-digit product, formatted).
    with pytest.raises(ProtocolError, match=message):
        deserialize([_array_header(shape=shape), b'abcd'])


def test_header_size_bounded_before_decoding():
    # shape=[2**64-1]*100000 (0.9 MB) burnt 20-60 s of CPU.
    huge = _array_header(shape=[2**64 - 1] * 100_000)
    for frames in ([huge, b''], [zmq.Frame(huge), zmq.Frame(b'')],
                   [bytearray(huge), b''], [memoryview(huge), b'']):
        with pytest.raises(ProtocolError, match=f'Header frame 0 has {len(huge)} bytes; .* '
                                                f'at most {MAX_HEADER_BYTES} bytes'):
            deserialize(frames)
    # Later header frames as well, after a valid pair.
    with pytest.raises(ProtocolError, match='Header frame 2 has'):
        deserialize(_meta_pair() + [huge, b''])


@pytest.mark.parametrize('dtype, message', [
    ('V0', 'no size'), ('S0', 'no size'), ('(3,)f4', 'a shape of its own'),
    ('f4,' * 100 + 'f4', 'too long'), ('a' * 300, 'too long'), ('|O', 'object dtype'),
    (b'<f4', 'need a name'), (4, 'need a name'), (None, 'need a name'), (['a'], 'unknown'),
])
def test_odd_dtypes_refused(dtype, message):
    with pytest.raises(ProtocolError, match=message):
        deserialize([_array_header(dtype=dtype), b'abcd'])


def test_decoded_values_bounded_per_message():
    too_many = [0] * (MAX_DECODED_ITEMS + 1)
    with pytest.raises(ProtocolError, match=f'data frame holds more than {MAX_DECODED_ITEMS}'):
        deserialize(_meta_pair({'x': too_many}))
    # Many maps: the 1.0 decoder's per-map work is bounded as well.
    with pytest.raises(ProtocolError, match=f'1.0 message holds more than {MAX_DECODED_ITEMS}'):
        deserialize([msgpack.packb({'S': {'x': [{}] * (MAX_DECODED_ITEMS + 1)}})])
    # The budget is per message: many frames each under it add up.
    part = {'x': [0] * (MAX_DECODED_ITEMS // 3)}
    with pytest.raises(ProtocolError, match='holds more than'):
        deserialize([f for s in 'ABCD' for f in (
            msgpack.packb({'source': s, 'content': 'msgpack', 'metadata': {}}),
            msgpack.packb(part))])
    # Just under it decodes.
    data, _ = deserialize(_meta_pair({'x': [0] * (MAX_DECODED_ITEMS - 100)}))
    assert len(data['S']['x']) == MAX_DECODED_ITEMS - 100


def test_big_legitimate_messages_decode():
    # Many sources with ~2 kB of slow data each: 1.2 MB of msgpack in 1,200 frames.
    frames = []
    for i in range(600):
        frames += [msgpack.packb({'source': f'SRC{i}', 'content': 'msgpack',
                                  'metadata': {'timestamp.tid': 7}}),
                   msgpack.packb({f'key{k}.value': 'x' * 20 + str(k) for k in range(60)})]
    # A 2 MB string and a list of 100,000 numbers, as some slow sources send.
    frames += [msgpack.packb({'source': 'LOG', 'content': 'msgpack', 'metadata': {}}),
               msgpack.packb({'text': 'y' * 2_000_000, 'trace': list(range(100_000))})]
    data, meta = deserialize(frames)
    assert len(data) == 601 and meta['SRC599']['timestamp.tid'] == 7
    assert data['SRC599']['key59.value'] == 'x' * 20 + '59'
    assert len(data['LOG']['text']) == 2_000_000 and data['LOG']['trace'][-1] == 99_999


def test_long_values_shortened_in_messages():
    with pytest.raises(ProtocolError) as info:
        deserialize([msgpack.packb({'source': 'S', 'content': 'x' * 60_000}), b''])
    assert len(str(info.value)) < 400
    assert "unknown content 'xxxx" in str(info.value)
    with pytest.raises(ProtocolError, match=r'data frame is not valid msgpack: 99999 bytes after'):
        deserialize(_meta_pair()[:1] + [b'\x01' * 100_000])


def test_header_cache_bounded_in_bytes():
    # Was 4,096 entries of any size: +4 GB after 4,000 unique 1 MB headers.
    payload = bytes(4)
    tracemalloc.start()
    try:
        deserialize([_array_header(path='warm-up'), payload])
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3000):  # unique 16 kB headers
            deserialize([_array_header(path=f'{i:016000d}'), payload])
        for i in range(3000):  # unique small ones, more than the cache holds
            deserialize([_array_header(path=f'k{i}'), payload])
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 8 * 2**20


def test_repeated_header_still_fast_path_and_checked():
    frames = _meta_pair() + [_array_header(), b'abcd']
    for _ in range(3):
        data, _ = deserialize(frames)
        assert bytes(data['S']['a']) == b'abcd'
    with pytest.raises(ProtocolError, match='needs 4 bytes, but the data frame has 3'):
        deserialize(frames[:3] + [b'abc'])


# Default: a few seconds. BRIDGE_FUZZ=100000 for a long run (or benchmarks/fuzz_decoder.py).
N_HOSTILE = int(os.environ.get('BRIDGE_FUZZ', 3000))


def test_fuzz_only_protocol_errors():
    """Structure-aware and random damage: every message decodes or raises ProtocolError."""
    rng = np.random.default_rng(2026)
    seeds = seed_messages()
    outcomes = {'decoded': 0, 'refused': 0}
    for _ in range(N_HOSTILE):
        frames = hostile_message(rng, seeds)
        if rng.random() < 0.3:
            frames = [zmq.Frame(f) for f in frames]
        try:
            deserialize(frames)
        except ProtocolError:
            outcomes['refused'] += 1
        else:
            outcomes['decoded'] += 1
    # Both outcomes occur: the damage is neither always fatal nor always harmless.
    assert outcomes['refused'] > N_HOSTILE // 2
    assert outcomes['decoded'] > N_HOSTILE // 50
