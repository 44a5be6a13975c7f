"""Hostile bridge messages for fuzzing the decoder (imported as ``bridge_fuzz``).

Used by ``test_decoder_limits.py`` (a few thousand messages) and by
``benchmarks/fuzz_decoder.py`` (hundreds of thousands, timed, memory watched).
Messages start from real ones (every format the decoder reads) and are damaged
the ways a broken or malicious sender would: values inside the msgpack
structure replaced by extreme ones (huge shapes, deep nesting, odd dtypes, long
strings, wide lists), bytes flipped, cut or inserted, frames dropped, doubled,
swapped or replaced by random bytes.
"""
from __future__ import annotations

import msgpack
import numpy as np

from bridge import serialize
from bridge.simulation import Simulator

_HOLE = '\x00hostile value\x00'
_HOLE_PACKED = msgpack.packb(_HOLE)


def seed_messages() -> list[list[bytes]]:
    """Well-formed messages in every format the decoder reads."""
    small = {'S': {'a': np.arange(6, dtype='<f4').reshape(2, 3), 'n': 5, 's': ['x', 'y'],
                   'z': 1.5, 'big': np.zeros((2, 2, 2, 3), '>u2'),
                   'metadata': {'timestamp.tid': 1}}}
    messages = [[bytes(f) for f in serialize(small, protocol_version=v)]
                for v in ('2.2', '1.0')]
    for detector in ('XGM', 'Camera'):
        data, meta = Simulator(detector).train(0)
        messages.append([bytes(f) for f in serialize(data, meta)])
    pack = msgpack.packb
    messages.append([  # 2.1: flattened metadata in the data map
        pack({'source': 'S', 'content': 'msgpack'}), pack({'metadata.timestamp.tid': 5, 'x': 1}),
        pack({'source': 'S', 'content': 'array', 'path': 'a', 'dtype': 'uint8', 'shape': [3]}),
        b'abc'])
    messages.append([  # old ImageData content
        pack({'source': 'C', 'content': 'msgpack', 'metadata': {}}), pack({}),
        pack({'source': 'C', 'content': 'ImageData', 'path': 'data.image.pixels',
              'dtype': 'uint16', 'shape': [2, 2], 'params': {'dims': [2, 2]}}),
        bytes(8)])
    return messages


def _pick(rng: np.random.Generator, options: list):
    # Not rng.choice: it turns Python ints beyond int64 into floats.
    return options[int(rng.integers(len(options)))]


def _hostile_raw(rng: np.random.Generator) -> bytes:
    """Packed msgpack of an extreme value."""
    choice = int(rng.integers(14))
    if choice == 0:  # deep nesting, up to past msgpack's own stack limit
        return b'\x91' * int(rng.integers(20, 1100)) + b'\xc0'
    if choice == 1:
        return b'\x81\xa1k' * int(rng.integers(20, 600)) + b'\xc0'
    if choice == 2:  # huge dimensions
        value = [_pick(rng, [2**63, 2**64 - 1, 2**63 - 1, 2**32, 0, 1])]
        return msgpack.packb(value * _pick(rng, [2, 3, 33, 2000, 7000]))
    if choice == 3:
        return msgpack.packb([int(n) for n in rng.integers(-2, 5, int(rng.integers(1, 40)))])
    if choice == 4:
        return msgpack.packb(_pick(rng, [
            '<f4', 'float64', '|O', 'O', 'V0', 'S0', 'U0', '(3,)f4', '(2147483647,)f8',
            'f4,' * 100 + 'f4', "[('a', '<f4')]", 'nonsense', 'M8[ns]', '>c16', 'bool',
            'a' * 300, 'V2147483647', 'U1000000000', 'float32', 'uint16', 'int8']))
    if choice == 5:
        return msgpack.packb(_pick(rng, [2**64 - 1, -2**63, 2**63, 0, -1, 1.5, True]))
    if choice == 6:
        return msgpack.packb('x' * (_pick(rng, [0, 1, 100, 70_000])))
    if choice == 7:
        return msgpack.packb(bytes(_pick(rng, [0, 1, 1000])))
    if choice == 8:  # wide
        return msgpack.packb([0] * (_pick(rng, [100, 10_000, 60_000])))
    if choice == 9:
        return msgpack.packb([{}] * (_pick(rng, [100, 20_000])))
    if choice == 10:  # announces more items or bytes than follow
        return _pick(rng, [b'\xdd\xff\xff\xff\xff', b'\xdf\xff\xff\xff\xff',
                           b'\xdb\xff\xff\xff\xff', b'\xc6\x7f\xff\xff\xff'])
    if choice == 11:
        return msgpack.packb({b'nd': True, b'type': '<f4', b'kind': b'', b'shape': [2**62],
                              b'data': b'1234'})
    if choice == 12:
        return msgpack.packb({'nd': True, 'type': 'O', 'kind': 'O', 'shape': [1],
                              'data': b'\x80\x04N.'})
    return msgpack.packb(None)


def _paths(value, path=()):
    """Positions inside a decoded msgpack value, as key paths (not too deep or wide)."""
    yield path
    if len(path) > 6 or not isinstance(value, (dict, list)) or len(value) > 50:
        return
    for k, v in (value.items() if isinstance(value, dict) else enumerate(value)):
        yield from _paths(v, (*path, k))


def _replace_inside(frame: bytes, rng: np.random.Generator) -> bytes:
    """Re-pack a msgpack frame with one value inside it made hostile."""
    try:
        value = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:  # not msgpack (array data, or damaged before)
        return _damage_bytes(frame, rng)
    paths = list(_paths(value))
    path = paths[int(rng.integers(len(paths)))]
    if not path:
        return _hostile_raw(rng)
    parent = value
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = _HOLE
    try:
        packed = msgpack.packb(value, use_bin_type=True)
    except Exception:  # made too deep to re-pack by an earlier change
        return _damage_bytes(frame, rng)
    return packed.replace(_HOLE_PACKED, _hostile_raw(rng), 1)


def _damage_bytes(frame: bytes, rng: np.random.Generator) -> bytes:
    frame = bytearray(frame)
    how = int(rng.integers(4))
    if how == 0 and frame:
        return bytes(frame[:int(rng.integers(len(frame)))])
    if how == 1:
        at = int(rng.integers(len(frame) + 1))
        return bytes(frame[:at]) + rng.bytes(int(rng.integers(1, 16))) + bytes(frame[at:])
    for _ in range(int(rng.integers(1, 6))):
        if frame:
            frame[int(rng.integers(len(frame)))] = int(rng.integers(256))
    return bytes(frame)


def hostile_message(rng: np.random.Generator, seeds: list[list[bytes]]) -> list[bytes]:
    """One damaged message (a list of frames) made from one of ``seeds``."""
    if rng.random() < 0.05:  # plain random frames
        return [rng.bytes(_pick(rng, [0, 1, 7, 100, 5000])) for _ in
                range(int(rng.integers(1, 7)))]
    frames = list(seeds[int(rng.integers(len(seeds)))])
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(frames)))
        how = rng.random()
        if how < 0.5:
            frames[i] = _replace_inside(frames[i], rng)
        elif how < 0.8:
            frames[i] = _damage_bytes(frames[i], rng)
        elif how < 0.85:
            del frames[i]
        elif how < 0.9:
            frames.insert(i, frames[i])
        elif how < 0.95:
            j = int(rng.integers(len(frames)))
            frames[i], frames[j] = frames[j], frames[i]
        else:
            frames[i] = rng.bytes(_pick(rng, [0, 3, 200, 70_000]))
        if not frames:
            break
    return frames
