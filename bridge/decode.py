"""Karabo bridge decoding: ZeroMQ frames -> train dicts (formats 1.0, 2.0, 2.1, 2.2).

Use it through :mod:`bridge.protocol` (``deserialize``). Imports its shared names
from :mod:`bridge.wire` only (one-way: wire <- decode <- protocol).

Decoding never unpickles anything: a 1.0 object array or a pickle-serialized
message is refused with :class:`ProtocolError`, because unpickling lets the
sender run code in the receiver. Array headers seen before are recognised by
their bytes, so a steady stream parses each header once.

Messages come from the network: every size, count and nesting depth is bounded
before the work it costs (see :mod:`bridge.limits`), so any message decodes or
raises :class:`ProtocolError` in time and memory proportional to its size.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from bridge import limits
from bridge.limits import budget, show, unpack
from bridge.wire import _MAX_CACHED_HEADERS, ProtocolError

__all__ = ['deserialize']

_MAX_HEADER_BYTES = limits.MAX_HEADER_BYTES


def _buffer(frame) -> memoryview:
    """A zero-copy view on a zmq.Frame, bytes, bytearray or memoryview."""
    if type(frame) is bytes:
        return memoryview(frame)
    try:
        buf = frame.buffer  # zmq.Frame
    except AttributeError:
        try:
            buf = memoryview(frame)
        except TypeError:
            raise ProtocolError(
                f'Frames must be bytes-like or zmq.Frame, not {type(frame).__name__:.80}'
            ) from None
    if buf.itemsize != 1 or buf.ndim != 1:
        buf = buf.cast('B')
    return buf


# dtype string -> np.dtype, for the few dtypes a stream uses (np.dtype() is slow).
_dtype_cache: dict[str, np.dtype] = {}


def _dtype(name) -> np.dtype:
    dtype = _dtype_cache.get(name) if isinstance(name, str) else None
    if dtype is not None:
        return dtype
    if isinstance(name, np.dtype):  # from the cache of known headers
        return name
    if not isinstance(name, (str, list)):  # a list: 1.0 structured arrays
        raise ProtocolError(f'unknown dtype {show(name)} (need a name such as "float32")')
    if len(name) > limits.MAX_DTYPE_CHARS:
        raise ProtocolError(f'dtype {show(name)} is too long (real ones are a few characters)')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # e.g. deprecated aliases in a corrupt header
            dtype = np.dtype(name)
    except Exception as e:  # numpy's parser raises assorted types (even SyntaxError)
        raise ProtocolError(f'unknown dtype {show(name)} ({show(str(e))})') from None
    if dtype.hasobject:
        raise ProtocolError(f'refusing object dtype {show(dtype)} (cannot come from memory)')
    if dtype.itemsize == 0 or dtype.subdtype is not None:
        raise ProtocolError(f'refusing dtype {show(dtype)} (no size, or a shape of its own)')
    if isinstance(name, str) and len(_dtype_cache) < 256:
        _dtype_cache[name] = dtype
    return dtype


def _make_array(buf, dtype_name, shape) -> np.ndarray:
    """An array viewing ``buf`` (no copy); ProtocolError if the sizes do not match."""
    dtype = _dtype(dtype_name)
    if type(shape) is not list or len(shape) > limits.MAX_NDIM:
        raise ProtocolError(
            f'bad shape {show(shape)} (need a list of at most {limits.MAX_NDIM} non-negative ints)')
    try:
        array = np.frombuffer(buf, dtype=dtype).reshape(shape)
    except (ValueError, TypeError, OverflowError):
        pass
    else:
        # Negative numbers would let numpy guess a dimension.
        if array.shape == tuple(shape):
            return array
    if not all(type(n) is int and n >= 0 for n in shape):
        raise ProtocolError(
            f'bad shape {show(shape)} (need a list of at most {limits.MAX_NDIM} non-negative ints)')
    expected = math.prod(shape) * dtype.itemsize  # <= 32 factors below 2**64: quick
    raise ProtocolError(
        f'shape {show(shape)} of {dtype} needs '
        f'{expected if expected < 2**64 else "more than 2**64"} bytes, but the data frame '
        f'has {len(buf)} (truncated or mismatched message)'
    )


def _nd_field(obj: Mapping, name: str):
    # msgpack-numpy writes bin keys (b'nd'); very old writers wrote str keys.
    if name.encode() in obj:
        return obj[name.encode()]
    return obj.get(name)


def _decode_numpy_object(obj):
    """object_hook for 1.0 messages: msgpack-numpy maps -> arrays, without pickle."""
    if not (b'data' in obj or 'data' in obj):
        return obj  # most maps, cheaply (this runs for every map of the message)
    nd = _nd_field(obj, 'nd')
    if type(nd) is not bool or not isinstance(_nd_field(obj, 'data'), (bytes, bytearray)):
        # Not an encoded array: a plain map, or an encoded complex number.
        if _nd_field(obj, 'complex') is True:
            text = _nd_field(obj, 'data')
            text = text.decode() if isinstance(text, bytes) else text
            try:
                return complex(text)
            except (TypeError, ValueError):
                raise ProtocolError(f'1.0 message: bad complex value {show(text)}') from None
        return obj
    kind = _nd_field(obj, 'kind')
    kind = kind.decode('ascii', 'replace') if isinstance(kind, bytes) else (kind or '')
    if kind == 'O':
        raise ProtocolError(
            '1.0 message holds an object array (a pickle); refusing to unpickle it, '
            'since that would let the sender run code here. Ask the sender for '
            'numeric arrays or lists.'
        )
    descr = _nd_field(obj, 'type')
    if isinstance(descr, bytes):
        descr = descr.decode('ascii', 'replace')
    if kind == 'V' and isinstance(descr, list):
        descr = [tuple(x.decode() if isinstance(x, bytes) else x for x in field)
                 for field in descr]
    payload = _nd_field(obj, 'data')
    shape = _nd_field(obj, 'shape') if nd is True else [1]
    try:
        array = _make_array(payload, descr, shape)
    except ProtocolError as e:
        raise ProtocolError(f'1.0 message array: {e}') from None
    return array if nd is True else array[0]


def _deserialize_1_0(frame) -> tuple[dict, dict]:
    buf = _buffer(frame)
    if bytes(buf[:6]) == b'Error:':
        text = bytes(buf[:200]).decode(errors='replace')
        raise ProtocolError(f'Server replied with an error: {text}')
    if len(buf) and buf[0] == 0x80:
        raise ProtocolError(
            'Single-frame message looks like a pickle (old ser="pickle" servers); '
            'refusing to unpickle it. Use a msgpack bridge server.'
        )
    message = unpack(buf, '1.0 message', budget(), _decode_numpy_object)
    if not isinstance(message, dict) or not all(
            isinstance(s, str) and isinstance(v, dict) for s, v in message.items()):
        raise ProtocolError('1.0 message must be a map {source: {key: value}}')
    metadata = {}
    for source, props in message.items():
        meta = props.get('metadata')
        meta = dict(meta) if isinstance(meta, dict) else _flat_metadata(props)
        meta.setdefault('source', source)
        metadata[source] = props['metadata'] = meta
    return message, metadata


def _flat_metadata(props: dict) -> dict:
    """Pop 2.0/2.1-style metadata (nested or flattened 'metadata.*') out of a data map."""
    nested = props.pop('metadata', None)
    meta = dict(nested) if isinstance(nested, dict) else {}
    for key in [k for k in props if isinstance(k, str) and k.startswith('metadata.')]:
        meta[key[len('metadata.'):]] = props.pop(key)
    return meta


def _decode_pair(header: dict, source: str, content: str, payload, data: dict,
                 metadata: dict, left: list[int]) -> None:
    """Add one (header, payload) pair of a 2.x message to ``data`` / ``metadata``."""
    props = data.get(source)
    if props is None:
        props = data[source] = {}
    if content == 'array' or content == 'ImageData':
        path = header.get('path')
        if type(path) is not str:
            raise ProtocolError('array header needs a str "path"')
        try:
            props[path] = _make_array(payload, header.get('dtype'), header.get('shape'))
        except ProtocolError as e:
            raise ProtocolError(f'key {show(path)}: {e}') from None
        params = header.get('params')
        if content == 'ImageData' and isinstance(params, dict):
            # Old ImageData: params are siblings of the pixels in Karabo.
            parent = path.rpartition('.')[0]
            for name, value in params.items():
                props[f'{parent}.{name}' if parent else str(name)] = value
    elif content == 'msgpack':
        if source in metadata:
            raise ProtocolError('source sent twice in one message')
        values = unpack(payload, 'data frame', left)
        if type(values) is not dict:
            raise ProtocolError(f'data must be a map, not {type(values).__name__}')
        if 'metadata' in header:  # 2.2
            values.pop('metadata', None)
            meta = header['metadata']
            if type(meta) is not dict:
                raise ProtocolError('metadata must be a map')
        else:  # 2.0 / 2.1
            meta = _flat_metadata(values)
        if props:  # arrays that came before this pair
            values.update(props)
        data[source] = values
        metadata[source] = meta
    else:
        raise ProtocolError(
            f'unknown content {show(content)} (expected "msgpack" or "array")')


# Packed array header -> (source, path, dtype, shape, nbytes): headers repeat
# every train, so each is parsed and checked once. Only short headers are kept
# and the keys' total size is bounded: a sender of ever-new headers cannot grow it.
_known_array_headers: dict[bytes, tuple] = {}
_MAX_CACHED_HEADER_BYTES = 1024  # real array headers: ~100 bytes
_MAX_CACHE_BYTES = 2 * 2**20
_cache_bytes = 0


def _remember_array_header(header: bytes, source: str, path: str, array: np.ndarray) -> None:
    global _cache_bytes
    if len(header) > _MAX_CACHED_HEADER_BYTES:
        return
    if (len(_known_array_headers) >= _MAX_CACHED_HEADERS
            or _cache_bytes + len(header) > _MAX_CACHE_BYTES):
        _known_array_headers.clear()  # shapes that change every train: do not grow
        _cache_bytes = 0
    _known_array_headers[header] = (source, path, array.dtype, array.shape, array.nbytes)
    _cache_bytes += len(header)


def deserialize(frames: Sequence) -> tuple[dict, dict]:
    """Decode one bridge message into ``(data, metadata)``.

    Parameters
    ----------
    frames : list of bytes-like or zmq.Frame
        The parts of one multipart message.

    Returns
    -------
    data : dict
        ``{source: {key: value, 'metadata': {...}}}``. Arrays are views on
        the frames (no copy), writable where the frame's memory is: those on
        received ``zmq.Frame`` objects (as ``Client`` gives them) or on
        bytearrays; read-only on ``bytes`` (and in 1.0 messages).
    metadata : dict
        ``{source: {...}}``; ``metadata[s] is data[s]['metadata']``.

    Raises
    ------
    ProtocolError
        Malformed message: odd frame count, bad msgpack, unknown content,
        array size/shape mismatch, object arrays or pickles, or a message over
        the limits of :mod:`bridge.limits` (header size, nesting, dimensions,
        decoded values). Nothing else, whatever the frames hold.
    """
    frames = list(frames)
    if not frames:
        raise ProtocolError('Empty message (no frames)')
    if len(frames) == 1:
        return _deserialize_1_0(frames[0])
    if len(frames) % 2:
        raise ProtocolError(
            f'Message has {len(frames)} frames; a bridge message has one frame (1.0) '
            'or (header, payload) pairs (2.x)'
        )

    data: dict[str, dict] = {}
    metadata: dict[str, dict] = {}
    known = _known_array_headers
    left = budget()
    for i in range(0, len(frames), 2):
        header_frame = frames[i]
        if type(header_frame) is bytes:
            if len(header_frame) > _MAX_HEADER_BYTES:  # before hashing it
                raise limits.header_too_big(f'Header frame {i}', len(header_frame))
            key = header_frame
        else:
            try:
                size = len(header_frame)  # zmq.Frame: before .bytes copies it
            except TypeError:
                size = 0  # not bytes-like: _buffer() says so below
            if size > _MAX_HEADER_BYTES:
                raise limits.header_too_big(f'Header frame {i}', size)
            key = getattr(header_frame, 'bytes', None)  # zmq.Frame
            if type(key) is not bytes:
                key = None
        entry = known.get(key) if key is not None else None
        if entry is not None:
            # An array header seen before: only the payload's size needs checking.
            source, path, dtype, shape, nbytes = entry
            buf = _buffer(frames[i + 1])
            if buf.nbytes != nbytes:
                try:
                    _make_array(buf, dtype, list(shape))
                except ProtocolError as e:
                    raise ProtocolError(f'source {show(source)} (frames {i}, {i + 1}): '
                                        f'key {show(path)}: {e}') from None
            array = np.frombuffer(buf, dtype).reshape(shape)
            props = data.get(source)
            if props is None:
                props = data[source] = {}
            props[path] = array
            continue
        raw = key if key is not None else _buffer(header_frame)
        if len(raw) > _MAX_HEADER_BYTES:
            raise limits.header_too_big(f'Header frame {i}', len(raw))
        header = unpack(raw, f'Header frame {i}', left)
        try:
            source, content = header['source'], header['content']
        except (KeyError, TypeError, IndexError):
            source = content = None
        if type(source) is not str or type(content) is not str:
            raise ProtocolError(
                f'Header frame {i} must be a map with str "source" and "content", '
                f'got {show(header)}'
            )
        try:
            _decode_pair(header, source, content, _buffer(frames[i + 1]), data, metadata,
                         left)
        except ProtocolError as e:
            raise ProtocolError(f'source {show(source)} (frames {i}, {i + 1}): {e}') from None
        if content == 'array' and key is not None:
            path = header['path']
            _remember_array_header(key, source, path, data[source][path])

    for source, props in data.items():
        meta = metadata.setdefault(source, {})
        meta.setdefault('source', source)
        props['metadata'] = meta
    return data, metadata
