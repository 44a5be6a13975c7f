"""Endpoint arguments of the command line: what a server binds, what a client connects to."""

from __future__ import annotations

import re

import click

from bridge.match_streams import CLIENT_FOR

__all__ = ["CLIENT_FOR", "server_endpoint", "client_endpoint"]


def server_endpoint(value: str) -> tuple[str, bool]:
    """The address a server binds for ``value``, and whether that is loopback only.

    A bare port binds loopback only: serving every interface must be asked for explicitly.
    """
    value = str(value).strip()
    if value.isdigit():
        return f"tcp://127.0.0.1:{value}", True
    if re.fullmatch(r"(tcp|ipc)://.+", value):
        return value, False
    raise click.BadParameter(
        f"{value!r} is not an endpoint. Use e.g. tcp://*:4545, tcp://127.0.0.1:4545, "
        "ipc:///tmp/bridge or a port number.", param_hint="ENDPOINT")


def client_endpoint(value: str) -> str:
    """The address a client connects to: a bare port means tcp://127.0.0.1:PORT."""
    value = str(value).strip()
    if value.isdigit():
        return f"tcp://127.0.0.1:{value}"
    if re.fullmatch(r"(tcp|ipc)://.+", value):
        return value
    if re.fullmatch(r"[\w.\-]+:\d+", value):
        return f"tcp://{value}"
    raise click.BadParameter(
        f"{value!r} is not an endpoint. Use e.g. tcp://host:4545, ipc:///tmp/bridge, "
        "HOST:PORT or a port number.", param_hint="ENDPOINT")
