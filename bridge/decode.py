"""Karabo bridge decoding: ZeroMQ frames -> train dicts (formats 1.0, 2.0, 2.1, 2.2).

Use it through :mod:`bridge.protocol` (``deserialize``). Imports its shared names
from :mod:`bridge.wire` only (one-way: wire <- decode <- protocol).

Decoding never unpickles anything: a 1.0 object array or a pickle-serialized
message is refused with :class:`ProtocolError`, because unpickling lets the
sender run code in the receiver. Array headers seen before are recognised by
their bytes, so a steady stream parses each header once.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import msgpack
import numpy as np

from bridge.wire import _MAX_CACHED_HEADERS, ProtocolError

__all__ = ['deserialize']

_MSGPACK_ERRORS = (
    msgpack.exceptions.UnpackException, msgpack.exceptions.ExtraData,
    msgpack.exceptions.FormatError, msgpack.exceptions.StackError,
    ValueError, TypeError,
)


def _buffer(frame) -> memoryview:
    """A zero-copy view on a zmq.Frame, bytes, bytearray or memoryview."""
    try:
        buf = frame.buffer  # zmq.Frame
    except AttributeError:
        try:
            buf = memoryview(frame)
        except TypeError:
            raise ProtocolError(
                f'Frames must be bytes-like or zmq.Frame, not {type(frame).__name__}'
            ) from None
    if buf.itemsize != 1 or buf.ndim != 1:
        buf = buf.cast('B')
    return buf


def _unpack(buf, what: str):
    try:
        return msgpack.unpackb(buf, raw=False, strict_map_key=False)
    except _MSGPACK_ERRORS as e:
        raise ProtocolError(f'{what} is not valid msgpack: {e}') from None


# dtype string -> np.dtype, for the few dtypes a stream uses (np.dtype() is slow).
_dtype_cache: dict[str, np.dtype] = {}


def _dtype(name) -> np.dtype:
    dtype = _dtype_cache.get(name) if isinstance(name, str) else None
    if dtype is not None:
        return dtype
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # e.g. deprecated aliases in a corrupt header
            dtype = np.dtype(name)
    except Exception as e:  # numpy's parser raises assorted types (even SyntaxError)
        raise ProtocolError(f'unknown dtype {name!r} ({e})') from None
    if dtype.hasobject:
        raise ProtocolError(f'refusing object dtype {dtype} (cannot come from memory)')
    if isinstance(name, str) and len(_dtype_cache) < 256:
        _dtype_cache[name] = dtype
    return dtype


def _make_array(buf, dtype_name, shape) -> np.ndarray:
    """A read-only array viewing ``buf``; ProtocolError if the sizes do not match."""
    dtype = _dtype(dtype_name)
    if type(shape) is not list:
        raise ProtocolError(f'bad shape {shape!r} (need a list of non-negative ints)')
    try:
        array = np.frombuffer(buf, dtype=dtype).reshape(shape)
    except (ValueError, TypeError):
        pass
    else:
        # Negative numbers would let numpy guess a dimension.
        if array.shape == tuple(shape):
            array.flags.writeable = False  # a zmq.Frame's buffer is writable
            return array
    if not all(type(n) is int and n >= 0 for n in shape):
        raise ProtocolError(f'bad shape {shape!r} (need a list of non-negative ints)')
    expected = math.prod(shape) * dtype.itemsize
    raise ProtocolError(
        f'shape {shape} of {dtype} needs {expected} bytes, but the data frame has '
        f'{len(buf)} (truncated or mismatched message)'
    )


def _nd_field(obj: Mapping, name: str):
    # msgpack-numpy writes bin keys (b'nd'); very old writers wrote str keys.
    if name.encode() in obj:
        return obj[name.encode()]
    return obj.get(name)


def _decode_numpy_object(obj):
    """object_hook for 1.0 messages: msgpack-numpy maps -> arrays, without pickle."""
    nd = _nd_field(obj, 'nd')
    if type(nd) is not bool or not isinstance(_nd_field(obj, 'data'), (bytes, bytearray)):
        # Not an encoded array: a plain map, or an encoded complex number.
        if _nd_field(obj, 'complex') is True:
            text = _nd_field(obj, 'data')
            text = text.decode() if isinstance(text, bytes) else text
            try:
                return complex(text)
            except (TypeError, ValueError):
                raise ProtocolError(f'1.0 message: bad complex value {text!r}') from None
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
    try:
        message = msgpack.unpackb(buf, raw=False, strict_map_key=False,
                                  object_hook=_decode_numpy_object)
    except ProtocolError:
        raise
    except _MSGPACK_ERRORS as e:
        raise ProtocolError(f'1.0 message is not valid msgpack: {e}') from None
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
                 metadata: dict) -> None:
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
            raise ProtocolError(f'key {path!r}: {e}') from None
        params = header.get('params')
        if content == 'ImageData' and isinstance(params, dict):
            # Old ImageData: params are siblings of the pixels in Karabo.
            parent = path.rpartition('.')[0]
            for name, value in params.items():
                props[f'{parent}.{name}' if parent else str(name)] = value
    elif content == 'msgpack':
        if source in metadata:
            raise ProtocolError('source sent twice in one message')
        values = _unpack(payload, 'data frame')
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
        raise ProtocolError(f'unknown content {content!r} (expected "msgpack" or "array")')


# Packed array header -> (source, path, dtype, shape, nbytes): headers repeat
# every train, so each is parsed and checked once.
_known_array_headers: dict[bytes, tuple] = {}


def _remember_array_header(header: bytes, source: str, path: str, array: np.ndarray) -> None:
    if len(_known_array_headers) >= _MAX_CACHED_HEADERS:
        _known_array_headers.clear()  # shapes that change every train: do not grow
    _known_array_headers[header] = (source, path, array.dtype, array.shape, array.nbytes)


def deserialize(frames: Sequence) -> tuple[dict, dict]:
    """Decode one bridge message into ``(data, metadata)``.

    Parameters
    ----------
    frames : list of bytes-like or zmq.Frame
        The parts of one multipart message.

    Returns
    -------
    data : dict
        ``{source: {key: value, 'metadata': {...}}}``. Arrays are read-only
        views on the frames (no copy).
    metadata : dict
        ``{source: {...}}``; ``metadata[s] is data[s]['metadata']``.

    Raises
    ------
    ProtocolError
        Malformed message: odd frame count, bad msgpack, unknown content,
        array size/shape mismatch, object arrays or pickles.
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
    for i in range(0, len(frames), 2):
        header_frame = frames[i]
        key = header_frame if type(header_frame) is bytes else getattr(header_frame, 'bytes', None)
        entry = known.get(key) if key is not None else None
        if entry is not None:
            # An array header seen before: only the payload's size needs checking.
            source, path, dtype, shape, nbytes = entry
            buf = _buffer(frames[i + 1])
            if buf.nbytes != nbytes:
                try:
                    _make_array(buf, dtype, list(shape))
                except ProtocolError as e:
                    raise ProtocolError(
                        f'source {source!r} (frames {i}, {i + 1}): key {path!r}: {e}') from None
            array = np.frombuffer(buf, dtype).reshape(shape)
            array.flags.writeable = False
            props = data.get(source)
            if props is None:
                props = data[source] = {}
            props[path] = array
            continue
        header = _unpack(_buffer(header_frame), f'Header frame {i}')
        try:
            source, content = header['source'], header['content']
        except (KeyError, TypeError):
            source = content = None
        if type(source) is not str or type(content) is not str:
            raise ProtocolError(
                f'Header frame {i} must be a map with str "source" and "content", '
                f'got {header!r:.200}'
            )
        try:
            _decode_pair(header, source, content, _buffer(frames[i + 1]), data, metadata)
        except ProtocolError as e:
            raise ProtocolError(f'source {source!r} (frames {i}, {i + 1}): {e}') from None
        if content == 'array' and key is not None:
            path = header['path']
            _remember_array_header(key, source, path, data[source][path])

    for source, props in data.items():
        meta = metadata.setdefault(source, {})
        meta.setdefault('source', source)
        props['metadata'] = meta
    return data, metadata
