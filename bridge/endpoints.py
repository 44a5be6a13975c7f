"""Connection arguments of the command line: what a server binds, what a client connects to,
the server's socket type and a client's CURVE keys; the text of an error. Shared by the
command modules (``cli``, ``inspect_cli``, ``match_record_cli``, ``process_cli``)."""

from __future__ import annotations

import re

import click

from bridge.match_streams import CLIENT_FOR
from bridge.server import SOCKET_TYPES as SERVER_SOCKETS

__all__ = ["CLIENT_FOR", "server_endpoint", "client_endpoint", "socket_option",
           "curve_client_options", "error_text"]


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


def socket_option(what: str):
    """The ``-z/--server-socket`` option (REP, PUB or PUSH; default REP), help ``what``."""
    return click.option(
        "-z", "--server-socket", "sock", default="REP", show_default=True,
        type=click.Choice(SERVER_SOCKETS), help=what)


def curve_client_options(command):
    """A client's ``--curve-server-key`` and ``--curve-secret-key`` options."""
    command = click.option(
        "--curve-secret-key", type=click.Path(exists=True, dir_okay=False), default=None,
        metavar="FILE",
        help="With --curve-server-key: this client's secret key file (NAME.key_secret), "
             "for servers that allow only listed clients (default: a fresh key).")(command)
    return click.option(
        "--curve-server-key", type=click.Path(exists=True, dir_okay=False), default=None,
        metavar="FILE",
        help="The server uses CURVE: its public key file (NAME.key).")(command)


def error_text(error: Exception) -> str:
    """The text of ``error`` for a ``click.ClickException`` (a KeyError's without quotes)."""
    # str(KeyError('text')) adds quotes.
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])
    return str(error)
