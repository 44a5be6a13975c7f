"""Karabo bridge compatible streaming: protocol, client, server, simulator.

>>> from bridge import Client, Server
"""
from bridge.client import BridgeTimeout, Client
from bridge.malloc import tune_malloc
from bridge.match import TrainMatcher
from bridge.protocol import ProtocolError, deserialize, serialize, timestamp_metadata
from bridge.server import Server
from bridge.wire import BridgeError

__all__ = [
    'BridgeError', 'BridgeTimeout', 'Client', 'ProtocolError', 'Server', 'deserialize',
    'serialize', 'timestamp_metadata', 'tune_malloc', 'TrainMatcher',
]
