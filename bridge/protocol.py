"""Karabo bridge wire format: train dicts <-> lists of ZeroMQ frames.

Sends format 2.2 (or 1.0 on request); reads 1.0, 2.0, 2.1 and 2.2, plus the
long-gone ``ImageData`` content. See ``docs/streaming.md`` for the layout.

Decoding never unpickles anything: a 1.0 object array or a pickle-serialized
message is refused with :class:`ProtocolError`, because unpickling lets the
sender run code in the receiver.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np

__all__ = [
    'ProtocolError', 'serialize', 'deserialize', 'timestamp_metadata', 'PROTOCOL_VERSIONS',
]

PROTOCOL_VERSIONS = ('1.0', '2.2')

_MSGPACK_ERRORS = (
    msgpack.exceptions.UnpackException, msgpack.exceptions.ExtraData,
    msgpack.exceptions.FormatError, msgpack.exceptions.StackError,
    ValueError, TypeError,
)


class ProtocolError(ValueError):
    """A message does not follow the Karabo bridge protocol, or data cannot be sent."""


# ---------------------------------------------------------------------------
# Metadata helpers
# ---------------------------------------------------------------------------

def timestamp_metadata(unix_time: float | None = None) -> dict[str, Any]:
    """Wall-clock timestamp entries of bridge metadata.

    Parameters
    ----------
    unix_time : float, optional
        Seconds since the epoch; default: now.

    Returns
    -------
    dict
        ``timestamp`` (float), ``timestamp.sec`` (str) and ``timestamp.frac``
        (str, 18 digits of attoseconds).
    """
    if unix_time is None:
        ns = time.time_ns()
    else:
        ns = round(unix_time * 1e9)
    sec, rest_ns = divmod(ns, 10**9)
    return {
        'timestamp': ns / 1e9 if unix_time is None else float(unix_time),
        'timestamp.sec': str(sec),
        'timestamp.frac': f'{rest_ns * 10**9:018d}',
    }


# ---------------------------------------------------------------------------
# Serializing
# ---------------------------------------------------------------------------

def _msgpack_default(obj):
    # Numpy scalars go out as Python scalars, never as pickles or raw memory.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f'cannot send a value of type {type(obj).__name__}')


def _packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, default=_msgpack_default)


def _as_list(array: np.ndarray, source: str, key: str) -> list:
    """Turn an array of strings or an object array of plain values into nested lists."""
    def convert(item):
        if isinstance(item, (str, np.str_)):
            return str(item)
        if isinstance(item, (bytes, np.bytes_)):
            try:
                return bytes(item).decode('utf-8')
            except UnicodeDecodeError:
                return bytes(item)
        if item is None or isinstance(item, (bool, int, float)):
            return item
        if isinstance(item, np.generic) and item.dtype.kind in 'biuf':
            return item.item()
        raise ProtocolError(
            f'Cannot send {source!r} key {key!r}: object array holds a value of type '
            f'{type(item).__name__}; only arrays of numbers or of strings can be sent. '
            'Convert it to a numeric array or a list first.'
        )

    if array.ndim == 0:
        return convert(array[()])
    return np.frompyfunc(convert, 1, 1)(array).tolist()


def _c_order(array: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    return array if array.flags.c_contiguous else array.copy(order='C')


# Values msgpack packs as they are (checked first: most keys hold these).
_PLAIN_TYPES = frozenset({int, float, str, bool, bytes, type(None), list, tuple})
_dtype_names: dict[np.dtype, str] = {}


def _dtype_name(dtype: np.dtype) -> str:
    # str(dtype) runs Python code in numpy; a stream uses a handful of dtypes.
    name = _dtype_names.get(dtype)
    if name is None:
        name = str(dtype)
        if len(_dtype_names) < 256:
            _dtype_names[dtype] = name
    return name


# (source, key, dtype, shape) -> packed 2.2 array header: the same every train.
_array_headers: dict[tuple, bytes] = {}
_MAX_CACHED_HEADERS = 4096


def _array_header(packer: msgpack.Packer, source: str, key, array: np.ndarray) -> bytes:
    cache_key = (source, key, array.dtype, array.shape)
    header = _array_headers.get(cache_key)
    if header is None:
        header = packer.pack({
            'source': source, 'content': 'array', 'path': str(key),
            'dtype': _dtype_name(array.dtype), 'shape': list(array.shape),
        })
        if len(_array_headers) >= _MAX_CACHED_HEADERS:
            _array_headers.clear()  # shapes that change every train: do not grow
        _array_headers[cache_key] = header
    return header


def _array_frame(array: np.ndarray):
    """The raw C-order buffer of an array (a view unless it is not contiguous)."""
    array = _c_order(array)
    # A 0-d or empty array still has a valid (possibly empty) buffer.
    return array.reshape(-1).view(np.uint8).data if array.size else b''


def _split_source(source: str, props: Mapping) -> tuple[dict, list]:
    """Split one source's data into (msgpack map, [(key, array)]); flatten nested maps."""
    main: dict[str, Any] = {}
    arrays: list[tuple[str, np.ndarray]] = []

    def add(key: str, value):
        if type(value) in _PLAIN_TYPES:
            main[key] = value
        elif isinstance(value, np.ndarray):
            kind = value.dtype.kind
            if kind in 'OUS':
                main[key] = _as_list(value, source, key)
            elif kind == 'V' or value.dtype.hasobject:
                raise ProtocolError(
                    f'Cannot send {source!r} key {key!r}: structured dtype '
                    f'{value.dtype} has no bridge representation; send its fields '
                    'as separate keys.'
                )
            else:
                arrays.append((key, value))
        elif isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                add(f'{key}.{sub_key}', sub_value)
        elif isinstance(value, np.generic):
            if value.dtype.kind in 'OV':
                raise ProtocolError(
                    f'Cannot send {source!r} key {key!r}: numpy {value.dtype} scalar'
                )
            main[key] = value.item()
        else:
            main[key] = value

    for key, value in props.items():
        if key == 'metadata':
            continue  # travels in the header (2.2) or is added back (1.0)
        if type(key) is str:  # the common cases first, without a call
            kind = type(value)
            if kind in _PLAIN_TYPES:
                main[key] = value
                continue
            if kind is np.ndarray and value.dtype.kind in 'biufc':
                arrays.append((key, value))
                continue
        add(str(key), value)
    return main, arrays


def _pack(packer: msgpack.Packer, obj, source: str, what: str) -> bytes:
    try:
        return packer.pack(obj)
    except (TypeError, ValueError, OverflowError) as e:
        # Find the offending key to name it.
        if isinstance(obj, Mapping):
            for key, value in obj.items():
                try:
                    _packer().pack(value)
                except (TypeError, ValueError, OverflowError) as e2:
                    raise ProtocolError(f'Cannot send {source!r} key {key!r}: {e2}') from None
        raise ProtocolError(f'Cannot send {source!r} {what}: {e}') from None


def _source_metadata(source: str, data: Mapping, metadata: Mapping | None) -> dict:
    if metadata is not None and source in metadata:
        meta = metadata[source]
    else:
        meta = data[source].get('metadata', {}) if isinstance(data[source], Mapping) else {}
    if 'source' in meta:
        return meta  # packed as it is, never modified
    return {'source': source, **meta}


def serialize(
    data: Mapping[str, Mapping[str, Any]],
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    protocol_version: str = '2.2',
) -> list:
    """Encode one train as a list of frames for a multipart ZeroMQ message.

    Parameters
    ----------
    data : dict
        ``{source: {key: value}}``. Values: numpy arrays (sent as raw buffers,
        one frame each, without copying), numbers, strings, bytes, booleans,
        None, lists of those, numpy scalars (sent as Python scalars) and arrays
        of strings (sent as lists of str). Nested dicts are flattened with dots.
        A ``'metadata'`` entry of a source is used as its metadata.
    metadata : dict, optional
        ``{source: {...}}`` metadata; default: each source's ``'metadata'`` entry.
        Sent as given (``source`` is added if missing).
    protocol_version : {'2.2', '1.0'}

    Returns
    -------
    list
        Frames: bytes for headers and msgpack maps, memoryviews on the arrays.

    Raises
    ------
    ProtocolError
        A value cannot be sent (object arrays of non-strings, structured
        arrays, unknown types); the message names the source and key.
    """
    return serialize_sized(data, metadata, protocol_version)[0]


def serialize_sized(
    data: Mapping[str, Mapping[str, Any]],
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    protocol_version: str = '2.2',
) -> tuple[list, int]:
    """:func:`serialize`, also returning the message size in bytes."""
    if protocol_version not in PROTOCOL_VERSIONS:
        raise ValueError(
            f'Unknown protocol version {protocol_version!r}; use one of {PROTOCOL_VERSIONS}'
        )
    if not isinstance(data, Mapping):
        raise ProtocolError(f'Train data must be a dict of sources, not {type(data).__name__}')
    for source, props in data.items():
        if not isinstance(source, str):
            raise ProtocolError(f'Source names must be str, not {source!r}')
        if not isinstance(props, Mapping):
            raise ProtocolError(
                f'Data of source {source!r} must be a dict of keys, not {type(props).__name__}'
            )

    packer = _packer()
    if protocol_version == '1.0':
        frame = _serialize_1_0(data, metadata, packer)
        return [frame], len(frame)
    return _serialize_2_2(data, metadata, packer)


# (source) -> packed start of its 2.2 metadata header, up to the metadata map.
_meta_header_starts: dict[str, bytes] = {}


def _serialize_2_2(data: Mapping, metadata: Mapping | None,
                   packer: msgpack.Packer) -> tuple[list, int]:
    """Frames of a 2.2 message, and their total size in bytes."""
    frames: list = []
    nbytes = 0
    for source in sorted(data):
        props = data[source]
        meta = _source_metadata(source, data, metadata)
        main, arrays = _split_source(source, props)
        start = _meta_header_starts.get(source)
        if start is None:
            # Packing {'source', 'content', 'metadata': m} gives this prefix + pack(m).
            start = packer.pack({'source': source, 'content': 'msgpack', 'metadata': None})[:-1]
            if len(_meta_header_starts) < _MAX_CACHED_HEADERS:
                _meta_header_starts[source] = start
        header = start + _pack(packer, meta, source, 'metadata')
        if isinstance(props.get('metadata'), Mapping):
            # As karabo_bridge does for train dicts from files: clients that
            # read data[source]['metadata'] keep working.
            main['metadata'] = meta
        body = _pack(packer, main, source, 'data')
        frames.append(header)
        frames.append(body)
        nbytes += len(header) + len(body)
        for key, array in arrays:
            header = _array_header(packer, source, key, array)
            frames.append(header)
            frames.append(_array_frame(array))
            nbytes += len(header) + array.nbytes
    return frames, nbytes


def _serialize_1_0(data: Mapping, metadata: Mapping | None, packer: msgpack.Packer) -> bytes:
    message = {}
    for source in sorted(data):
        main, arrays = _split_source(source, data[source])
        for key, array in arrays:
            array = _c_order(array)
            main[key] = {
                b'nd': True, b'type': array.dtype.str, b'kind': b'',
                b'shape': list(array.shape), b'data': array.tobytes(),
            }
        main['metadata'] = _source_metadata(source, data, metadata)
        message[source] = main
    return _pack(packer, message, '1.0 message', 'data')


# ---------------------------------------------------------------------------
# Deserializing
# ---------------------------------------------------------------------------

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
