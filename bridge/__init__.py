"""Karabo bridge compatible streaming: protocol, client, server, simulator."""
