"""Fixtures for bridge tests: loopback servers on free ports, always stopped."""
import pytest
from bridge_helpers import LOOPBACK

from bridge import Server


@pytest.fixture
def make_server():
    """``make_server(**kw)`` -> started Server on a free loopback port; stopped at teardown."""
    servers = []

    def make(**kwargs):
        kwargs.setdefault('endpoint', LOOPBACK)
        server = Server(**kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
