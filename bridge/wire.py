"""What the encoder and decoder share: protocol versions, the error class, cache limits.

The bottom of the bridge protocol's one-way imports::

    wire  <-  encode, decode  <-  protocol (the public face)

``encode.py`` and ``decode.py`` import only from here, never from ``protocol.py``
or from each other, so there is no import cycle whichever module is imported first.
"""
from __future__ import annotations

__all__ = ['PROTOCOL_VERSIONS', 'ProtocolError']

PROTOCOL_VERSIONS = ('1.0', '2.2')

# Per-process caches of packed or parsed headers stop growing at this many entries.
_MAX_CACHED_HEADERS = 4096


class ProtocolError(ValueError):
    """A message does not follow the Karabo bridge protocol, or data cannot be sent."""

    # Public name, shown in tracebacks and used by pickle: where users import it from.
    __module__ = 'bridge.protocol'
