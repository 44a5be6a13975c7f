"""Karabo bridge wire format: train dicts <-> lists of ZeroMQ frames.

Sends format 2.2 (or 1.0 on request); reads 1.0, 2.0, 2.1 and 2.2, plus the
long-gone ``ImageData`` content. See ``docs/streaming.md`` for the layout.

This is the public face; the work is split one way, without cycles::

    bridge.wire    PROTOCOL_VERSIONS, ProtocolError, cache limits
       ^   ^
       |  limits   bounds for decoding untrusted messages
       |   ^
    encode decode  serialize, serialize_sized / deserialize
       ^   ^
    bridge.protocol  re-exports them, plus timestamp_metadata

Decoding never unpickles anything: a 1.0 object array or a pickle-serialized
message is refused with :class:`ProtocolError`, because unpickling lets the
sender run code in the receiver.
"""
from __future__ import annotations

import time
from typing import Any

from bridge.decode import deserialize
from bridge.encode import serialize
from bridge.encode import serialize_sized as serialize_sized  # re-export, for bridge.server
from bridge.wire import PROTOCOL_VERSIONS, ProtocolError

__all__ = [
    'ProtocolError', 'serialize', 'deserialize', 'timestamp_metadata', 'PROTOCOL_VERSIONS',
]


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
