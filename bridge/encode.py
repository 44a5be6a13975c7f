"""Karabo bridge encoding: train dicts -> lists of ZeroMQ frames (format 2.2 or 1.0).

Use it through :mod:`bridge.protocol` (``serialize``, ``serialize_sized``). Imports
its shared names from :mod:`bridge.wire` only (one-way: wire <- encode <- protocol).
The hot path is tuned: packed headers are cached per (source, key, dtype, shape),
common value types are checked by ``type()`` before any ``isinstance``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from bridge.wire import _MAX_CACHED_HEADERS, PROTOCOL_VERSIONS, ProtocolError

__all__ = ['serialize', 'serialize_sized']


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
