"""``exfel-bridge match`` and ``exfel-bridge record``: their arguments (registered in
:mod:`bridge.cli`); what they do is :mod:`bridge.live_commands`, imported when run.
"""

from __future__ import annotations

import click

from bridge.endpoints import client_endpoint, error_text, server_endpoint, socket_option
from bridge.match_streams import parse_stream
from bridge.server import POLICIES

__all__ = ["match", "record"]


def _stream(text: str, default_sock: str) -> tuple[str, str]:
    """An input ``[SOCK@]ENDPOINT`` of match / record as (address, client socket)."""
    try:
        endpoint, sock = parse_stream(text, default_sock)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="ENDPOINT") from None
    return client_endpoint(endpoint), sock


@click.command()
@click.argument("endpoints", nargs=-1, required=True)
@click.option("--serve", "serve_at", required=True, metavar="ENDPOINT",
              help="Where to serve the matched trains, e.g. tcp://*:4600 or a port "
                   "(loopback only).")
@click.option("--require", multiple=True, metavar="GLOB",
              help="Sources a train must have (repeatable); all others are optional. Default: "
                   "every source seen so far on a stream that is not silent.")
@click.option("--optional", multiple=True, metavar="GLOB",
              help="Sources that never hold a train back (repeatable).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Seconds a train waits for its missing sources.")
@click.option("-i", "--input-socket", default="REQ", show_default=True,
              type=click.Choice(["REQ", "SUB", "PULL"]),
              help="Client socket for ENDPOINTs without a SOCK@ prefix.")
@click.option("--policy", type=click.Choice(POLICIES), default="wait", show_default=True,
              help="When clients of the matched stream are slower: wait (inputs pause), drop "
                   "or queue.")
@socket_option("Socket of the matched stream: REP, PUB or PUSH.")
def match(endpoints, serve_at, require, optional, timeout, input_socket, policy, sock) -> None:
    """Join the streams at ENDPOINTS into one train per train ID and serve it.

    \b
    ENDPOINT: tcp://host:4545, host:4545 or a port, optionally prefixed by the
    client socket: SUB@tcp://host:4545, PULL@4546 (default: --input-socket).

    A train is sent as soon as every required source arrived; after --timeout
    it is sent without missing optional sources, or dropped (counted) if a
    required one is missing. See docs/matching-recording.md.

    \b
    Example:
      exfel-bridge match tcp://det:4545 SUB@tcp://xgm:4546 --serve 4600 \\
          --require 'SPB_DET_AGIPD1M-1/*' --optional 'SA1_XTD2_XGM/*'
    """
    from bridge.live_commands import run_match

    streams = [_stream(e, input_socket) for e in endpoints]
    bind, loopback_only = server_endpoint(serve_at)
    try:
        run_match(streams, bind, sock=sock, policy=policy, require=list(require) or None,
                  optional=list(optional), timeout=timeout, loopback_only=loopback_only)
    except (ValueError, OSError) as e:
        raise click.ClickException(error_text(e)) from None


@click.command()
@click.argument("endpoint")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("-z", "--socket", "sock", default="REQ", show_default=True,
              type=click.Choice(["REQ", "SUB", "PULL", "REP", "PUB", "PUSH"]),
              help="Client socket (REQ, SUB, PULL), or the server's (REP, PUB, PUSH).")
@click.option("--source", "sources", multiple=True, metavar="GLOB",
              help="Only sources matching this glob (repeatable).")
@click.option("--trains", type=click.IntRange(min=1), default=None,
              help="Stop after this many trains.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Stop after this many seconds.")
@click.option("--sequence-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Trains per sequence file.")
def record(endpoint, out_dir, sock, sources, trains, duration, sequence_size) -> None:
    """Record the stream at ENDPOINT into a new run folder OUT_DIR.

    Sources with ':' are written as INSTRUMENT, the others as CONTROL; every
    key keeps its dtype and shape. Stops after --trains / --duration or on
    Ctrl-C / SIGTERM, finishing the current file; replay with
    `exfel-bridge serve-run OUT_DIR PORT`. See docs/matching-recording.md.
    """
    from bridge.live_commands import run_record
    from bridge.record import RecordError

    if trains is not None and duration is not None:
        raise click.UsageError("Give --trains or --duration, not both.")
    address, client_sock = _stream(endpoint, sock)
    try:
        run_record(address, out_dir, sock=client_sock, sources=sources or ("*",),
                   trains=trains, duration=duration, sequence_size=sequence_size)
    except RecordError as e:
        raise click.ClickException(str(e)) from None
