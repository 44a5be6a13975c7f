"""What the encoder and decoder share: protocol versions, the error classes, cache limits.

The bottom of the bridge protocol's one-way imports::

    wire  <-  encode, decode  <-  protocol (the public face)

``encode.py`` and ``decode.py`` import only from here, never from ``protocol.py``
or from each other, so there is no import cycle whichever module is imported first.
"""
from __future__ import annotations

# Only the exceptions module: bridge joins the project's error hierarchy without
# loading the reader (exfel_data's package imports its public names lazily).
from exfel_data.exceptions import ExfelDataError

__all__ = ['PROTOCOL_VERSIONS', 'BridgeError', 'ProtocolError']

PROTOCOL_VERSIONS = ('1.0', '2.2')

# Per-process caches of packed or parsed headers stop growing at this many entries.
_MAX_CACHED_HEADERS = 4096


class BridgeError(ExfelDataError):
    """Base class of the errors raised by bridge (an ``exfel_data.ExfelDataError``)."""

    __module__ = 'bridge'


class ProtocolError(BridgeError, ValueError):
    """A message does not follow the Karabo bridge protocol, or data cannot be sent."""

    # Public name, shown in tracebacks and used by pickle: where users import it from.
    __module__ = 'bridge.protocol'
