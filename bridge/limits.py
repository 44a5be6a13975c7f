"""Bounds for decoding untrusted bridge messages: sizes, nesting, counts, error text.

A bridge client decodes whatever a server (or anyone who can reach its socket)
sends. :func:`bridge.protocol.deserialize` keeps the promise "a malformed message
raises :class:`ProtocolError`, quickly, in bounded memory" with these limits,
each checked before the work it bounds:

- a header frame (one source's or one array's description, a few hundred bytes
  in practice) is at most :data:`MAX_HEADER_BYTES`;
- lists and maps nest at most :data:`MAX_NESTING` deep (Python code walking
  deeper values, even ``repr()``, can hit ``RecursionError``);
- an array has at most :data:`MAX_NDIM` dimensions, each a non-negative int
  whose product must match the payload's size exactly;
- the msgpack parts of one message (headers, data maps, a 1.0 message) decode
  to at most :data:`MAX_DECODED_ITEMS` values, a list or map counting as 8
  (array payloads are not copied); see :func:`budget`;
- error messages show untrusted values shortened (:func:`show`).

Imports only :mod:`bridge.wire` (one-way: wire <- limits <- decode).
"""
from __future__ import annotations

import reprlib
from itertools import chain

import msgpack

from bridge.wire import ProtocolError

__all__ = [
    'MAX_HEADER_BYTES', 'MAX_NESTING', 'MAX_NDIM', 'MAX_DECODED_ITEMS', 'MAX_DTYPE_CHARS',
    'budget', 'unpack', 'check_nesting', 'show', 'header_too_big',
]

MAX_HEADER_BYTES = 64 * 1024
MAX_NESTING = 32
MAX_NDIM = 32  # numpy 1's limit (numpy 2 allows 64); no detector needs more than 5
MAX_DECODED_ITEMS = 2**19  # < 50 MB of Python objects, < 0.1 s of work at worst
# Small frames (all of them in usual messages) decode without per-container hooks,
# up to this many bytes per message; each byte may be one value.
_UNCOUNTED_BYTES = 2**16
_CONTAINER_COST = 8  # a list or map counts as this many values: a Python hook makes it
MAX_DTYPE_CHARS = 256  # 'float32', '<f4'; 1.0 structured dtypes: that many fields

_MSGPACK_ERRORS = (
    msgpack.exceptions.UnpackException, msgpack.exceptions.ExtraData,
    msgpack.exceptions.FormatError, msgpack.exceptions.StackError,
    ValueError, TypeError, OverflowError,
)


class _ShortRepr(reprlib.Repr):
    """reprlib, plus bytes cut before formatting (reprlib formats them whole first)."""

    def repr_bytes(self, value: bytes, level: int) -> str:
        if len(value) <= self.maxstring:
            return repr(value)
        return repr(value[:self.maxstring]) + f'...({len(value)} bytes)'


_short = _ShortRepr()
_short.maxstring = _short.maxother = 80
_short.maxlevel = 3
_short.maxlist = _short.maxdict = _short.maxtuple = 8


def show(value) -> str:
    """``repr(value)`` cut to a readable size, safe for any decoded value."""
    return _short.repr(value)


def budget() -> list[int]:
    """A new message's budget for :func:`unpack`: ``[uncounted bytes, values]`` left.

    A msgpack value takes at least one byte, so small frames are decoded at
    full speed and charged their length, up to ``_UNCOUNTED_BYTES`` per
    message. Bigger frames, frames beyond that and 1.0 messages (whose maps go
    through a Python hook anyway) are decoded with hooks that count their
    values as lists and maps are built, up to :data:`MAX_DECODED_ITEMS`.
    """
    return [_UNCOUNTED_BYTES, MAX_DECODED_ITEMS]


def unpack(raw, what: str, left: list[int], object_hook=None):
    """Decode one msgpack frame within a message's budget; ProtocolError on any failure.

    Parameters
    ----------
    raw : bytes or memoryview of bytes
        The frame.
    what : str
        Names the frame in error messages (``'Header frame 2'``).
    left : list of two ints
        From :func:`budget`: what the message may still decode; reduced by
        this frame's share.
    object_hook : callable, optional
        Called on each decoded map (1.0 messages: msgpack-numpy arrays).
    """
    size = len(raw)
    try:
        if size <= left[0] and size <= MAX_HEADER_BYTES and object_hook is None:
            left[0] -= size  # each value takes at least one byte
            value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        else:
            value = msgpack.unpackb(raw, raw=False, strict_map_key=False,
                                    **_counting_hooks(what, left, object_hook))
    except ProtocolError:
        raise
    except _MSGPACK_ERRORS as e:
        if isinstance(e, msgpack.exceptions.StackError):
            detail = 'nested too deep'
        elif isinstance(e, msgpack.exceptions.ExtraData):  # holds a copy of the extra bytes
            detail = f'{len(e.extra)} bytes after the first value'
        elif 'exceeds max_' in str(e):  # a list or map longer than the budget
            raise _too_many(what) from None
        else:
            detail = show(str(e))
        raise ProtocolError(f'{what} is not valid msgpack: {detail}') from None
    if type(value) is list or type(value) is dict:
        # Nesting N deep takes N list/map markers: counting them (in C) spares
        # walking the values of the usual small, shallow frames.
        if size > MAX_HEADER_BYTES or _markers(raw) > MAX_NESTING:
            check_nesting(value, what)
    return value


# Maps the bytes that can start a msgpack list or map (fixmap, fixarray,
# array16/32, map16/32) to 1, others to 0. They also occur inside other values,
# so the count is an upper bound of the containers.
_MARKERS = bytes(int(0x80 <= b <= 0x9f or 0xdc <= b <= 0xdf) for b in range(256))


def _markers(raw) -> int:
    return (raw if type(raw) is bytes else bytes(raw)).translate(_MARKERS).count(1)


def _counting_hooks(what: str, left: list[int], object_hook) -> dict:
    def spend(n: int) -> None:
        left[1] -= n + _CONTAINER_COST
        if left[1] < 0:
            raise _too_many(what)

    def list_hook(values: list) -> list:
        spend(len(values))
        return values

    def map_hook(values: dict):
        spend(len(values))
        return values if object_hook is None else object_hook(values)

    # One list or map is built whole before its hook runs: bound it as well.
    most = max(left[1], 0)
    return {'list_hook': list_hook, 'object_hook': map_hook,
            'max_array_len': most, 'max_map_len': most}


def check_nesting(value, what: str) -> None:
    """ProtocolError if lists/maps in ``value`` nest deeper than MAX_NESTING."""
    level = [value]
    for _ in range(MAX_NESTING):
        # One level at a time, all its containers' items in one pass.
        items = chain(chain.from_iterable(c for c in level if type(c) is list),
                      chain.from_iterable(c.values() for c in level if type(c) is dict))
        level = [v for v in items if (type(v) is list or type(v) is dict) and v]
        if not level:
            return
    raise ProtocolError(f'{what} nests lists or maps more than {MAX_NESTING} levels deep')


def _too_many(what: str) -> ProtocolError:
    return ProtocolError(
        f'{what} holds more than {MAX_DECODED_ITEMS} values (in the whole message); refusing '
        'to decode it (bridge messages carry arrays as raw frames, not as msgpack lists)'
    )


def header_too_big(what: str, size: int) -> ProtocolError:
    """The error for a header frame over MAX_HEADER_BYTES."""
    return ProtocolError(
        f'{what} has {size} bytes; a header describes one source or array and is at most '
        f'{MAX_HEADER_BYTES} bytes (frames out of order, or not a bridge message?)'
    )
