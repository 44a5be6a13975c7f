"""``exfel-bridge process`` and ``exfel-bridge view`` (registered in :mod:`bridge.cli`)."""

from __future__ import annotations

import signal
import sys
import time

import click

from bridge.endpoints import socket_option
from bridge.server import SOCKET_TYPES as SERVER_SOCKETS
from bridge.serving import stop_on_signals

# As in `exfel-data process` (not imported from there: importing exfel_data is slow).
PARAM_HELP = ("Parameter name=value (repeatable); the value is a Python literal (3, 0.5, "
              "True, '[0, 10]') or else a string. Names are checked against the analysis' "
              "PARAMS.")


class _Status:
    """A status line on stderr, refreshed in place on a terminal."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last = (time.monotonic(), 0)

    def __call__(self, counts: dict) -> None:
        now = time.monotonic()
        rate = (counts["reduced"] - self._last[1]) / max(now - self._last[0], 1e-9)
        self._last = (now, counts["reduced"])
        line = (f"{counts['received']} received, {counts['reduced']} reduced "
                f"({rate:.1f}/s), {counts['failed']} failed, {counts['dropped']} dropped, "
                f"{counts['lost']} lost | train {counts['last_train_id'] or '-'}")
        click.echo(line.ljust(79) + ("\r" if self._tty else "\n"), nl=False, err=True)

    def done(self) -> None:
        if self._tty:
            click.echo(err=True)


def _stop_runner(runner):
    """First Ctrl-C / SIGTERM (see ``stop_on_signals``): stop cleanly, results written."""
    def on_stop(signum: int) -> None:
        click.echo(f"\n{signal.Signals(signum).name}: stopping (again to abort)...", err=True)
        runner.stop()

    return on_stop


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("endpoints", nargs=-1, required=True)
@click.argument("analysis")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help=PARAM_HELP)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes running process(); each is handed a train only when "
                   "idle.")
@click.option("--policy", type=click.Choice(["drop", "wait"]), default="drop",
              show_default=True,
              help="When every worker is busy: drop the train (counted) or wait for a worker "
                   "(the server's own policy then applies).")
@click.option("--ordered", is_flag=True,
              help="Reduce results in the order the trains arrived (a bounded reorder "
                   "buffer; results arriving after it moved on are counted late).")
@click.option("--reorder-buffer", type=click.IntRange(1), default=100, show_default=True,
              metavar="N", help="With --ordered: results held at most.")
@click.option("--publish", metavar="ENDPOINT",
              help="Serve the partial result as a bridge stream here (e.g. tcp://*:4600; a "
                   "bare port binds loopback only).")
@click.option("--publish-socket", type=click.Choice(["PUB", "REP"]), default="PUB",
              show_default=True, help="Socket of that server: PUB (every viewer gets each "
                                      "update) or REP (each request gets the next one).")
@click.option("--every", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              metavar="S", help="Seconds between published partial results / status lines.")
@click.option("-o", "--out", type=click.Path(), help="Write the final result to this HDF5 "
              "file when the run ends (with the parameters and the analysis' sha256).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--count", type=click.IntRange(1), default=None, metavar="N",
              help="End after N trains were received.")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="End when no train arrived for S seconds (e.g. after "
                                "serve-run finished).")
@socket_option("Socket type of the input server (the client uses REQ, SUB or PULL).")
@click.option("--require", multiple=True, metavar="GLOB",
              help="Several ENDPOINTs: sources a matched train must have (repeatable; "
                   "default: every source seen).")
@click.option("--optional", multiple=True, metavar="GLOB",
              help="Several ENDPOINTs: sources that never hold a train back (repeatable).")
@click.option("--match-timeout", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, metavar="S",
              help="Several ENDPOINTs: seconds a train waits for its missing sources.")
@click.option("-q", "--quiet", is_flag=True, help="No status line.")
def process(endpoints, analysis, params, workers, policy, ordered, reorder_buffer, publish,
            publish_socket, every, out, overwrite, count, idle_timeout, sock, require,
            optional, match_timeout, quiet) -> None:
    """Run ANALYSIS (a .py file or module) live on the trains from ENDPOINT(s).

    ANALYSIS provides process(train_id, data, params) and a Reducer class (see
    docs/analysis.md); the same file runs offline with `exfel-data process`. Several
    ENDPOINTs are joined into one train dict per train ID (the train matcher). Runs
    until Ctrl-C / SIGTERM (or --count, --idle-timeout), then writes --out.

    \b
    Example:
      exfel-bridge process tcp://exflong:4545 ana.py --workers 4 -p threshold=5 \\
          --publish tcp://*:4600 --out result.h5
      exfel-bridge view tcp://127.0.0.1:4600
    """
    from bridge.endpoints import CLIENT_FOR, client_endpoint, server_endpoint
    from bridge.process import LiveRunner, client_trains
    from exfel_data.analysis import AnalysisError
    from exfel_data.write.output import OutputExistsError

    addresses = [client_endpoint(e) for e in endpoints]
    publish_at = server_endpoint(publish)[0] if publish else None
    status = None if quiet else _Status()
    try:
        match = {} if len(addresses) == 1 else dict(
            require=list(require) or None, optional=list(optional), match_timeout=match_timeout)
        runner = LiveRunner(client_trains(addresses, CLIENT_FOR[sock], idle_timeout, **match),
                            analysis, params, workers=workers, publish=publish_at,
                            publish_sock=publish_socket, every=every, out=out,
                            overwrite=overwrite, policy=policy, ordered=ordered,
                            reorder_buffer=reorder_buffer, max_trains=count,
                            input_label=" ".join(addresses), status=status)
    except (AnalysisError, OutputExistsError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if not quiet:
        click.echo(f"Processing {' '.join(addresses)} with {workers} worker(s)"
                   + (f"; publishing on {publish_at}" if publish_at else "")
                   + "; Ctrl-C to stop.", err=True)
    try:
        with stop_on_signals(on_stop=_stop_runner(runner)):
            result = runner.run()
    except AnalysisError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # a second signal
        click.echo("Aborted.", err=True)
        sys.exit(130)
    finally:
        if status is not None:
            status.done()
    click.echo(f"Done: {runner.received} trains received; {result.stats.summary()}"
               + (f"; written to {out}" if out else ""), err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("endpoint")
@click.option("-z", "--server-socket", "sock", default="PUB", show_default=True,
              type=click.Choice(SERVER_SOCKETS),
              help="Socket type of the server (`exfel-bridge process --publish` uses PUB).")
@click.option("--source", default=None, help="Source to show (default: the first result "
                                             "source, analysis/NAME).")
@click.option("--png", type=click.Path(), default=None,
              help="Headless: write the figure to this PNG file instead of a window.")
@click.option("--every", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              metavar="S", help="With --png: seconds between writes.")
@click.option("--count", type=click.IntRange(1), default=None, metavar="N",
              help="With --png: stop after writing N times.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Give up when nothing arrived for S seconds.")
def view(endpoint, sock, source, png, every, count, timeout) -> None:
    """Show a published analysis result (or any bridge stream) from ENDPOINT, updating.

    2-D arrays are images with a colour bar, 1-D arrays lines (NAME.y against NAME.x
    when both exist), numbers and strings a text panel. With --png it runs without a
    display and rewrites the PNG every --every seconds (and once more for the final
    result, then exits).
    """
    from bridge.endpoints import CLIENT_FOR, client_endpoint
    from bridge.view import Viewer

    address = client_endpoint(endpoint)
    try:
        viewer = Viewer(address, sock=CLIENT_FOR[sock], source=source, png=png,
                        every=every, count=count, timeout=timeout)
        viewer.run()
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
    except (TimeoutError, ImportError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
