"""The ``exfel-bridge`` command line (also ``python -m bridge``).

Commands: ``serve-sim`` (simulated live data), ``serve-run`` (stream a run from files),
``glimpse`` (look at one train), ``monitor`` (live rates, gaps and data age), ``match`` (join
several streams per train), ``record`` (a stream into a run folder), ``keygen`` (CURVE key
files); ``process`` and ``view`` (live analysis, bridge/process_cli.py). The server
commands and ``keygen`` are here; the others are registered from ``inspect_cli`` (glimpse,
monitor), ``match_record_cli`` and ``process_cli`` on the same group.
"""

from __future__ import annotations

import sys
import time

import click

# Already loaded with the bridge package; bridge.serve_run (exfel_data) stays lazy.
from bridge.curve import CurveKeyError, generate_keys
from bridge.endpoints import (
    CLIENT_FOR,
    client_endpoint,
    error_text,
    server_endpoint,
    socket_option,
)
from bridge.inspect_cli import RateMeter, describe_train, glimpse, monitor, printable
from bridge.match_record_cli import match, record
from bridge.process_cli import process, view
from bridge.server import POLICIES
from bridge.serving import stop_on_signals
from bridge.simulation import DETECTORS, serve_simulation

# Also the names recipes and tests import from here.
__all__ = ["main", "RateMeter", "describe_train", "printable", "CLIENT_FOR", "client_endpoint",
           "server_endpoint"]


def _curve_server_options(command):
    command = click.option(
        "--curve-allow", type=click.Path(exists=True, file_okay=False), default=None,
        metavar="DIR",
        help="With --curve-secret-key: only clients whose public key file (*.key) is in DIR "
             "may connect (default: any client that knows the server's public key).")(command)
    return click.option(
        "--curve-secret-key", type=click.Path(exists=True, dir_okay=False), default=None,
        metavar="FILE",
        help="Require ZeroMQ CURVE (encrypted, authenticated): the server's secret key file "
             "(NAME.key_secret from 'exfel-bridge keygen'). Clients then need "
             "--curve-server-key NAME.key.")(command)


def _curve_note(secret_key: str | None, allow: str | None) -> str | None:
    if secret_key is None:
        return None
    who = f"clients with a public key in {allow}" if allow else "any client"
    return (f"CURVE on: clients need the server's public key (--curve-server-key); "
            f"accepting {who}")


def _rate_option(default_help: str):
    return click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
                        metavar="HZ",
                        help=f"Trains per second (10 at the facility). {default_help}")


class _Progress:
    """Status of a server: an announcement, then a line refreshed about once a second."""

    def __init__(self, loopback_only: bool, total: int | None = None) -> None:
        self.loopback_only = loopback_only
        self.total = total
        self.server = None
        self.note = None  # a line printed after the address
        self._t0 = self._last = time.monotonic()
        self._sent_at_last = 0
        self._tty = sys.stdout.isatty()

    def ready(self, server) -> None:
        self.server = server
        click.echo(f"Serving on {server.endpoint}")
        if self.note:
            click.echo(self.note)
        if self.loopback_only:
            click.echo("Listening on loopback only; to accept remote clients use "
                       f"tcp://*:{server.port}")
        sys.stdout.flush()

    def __call__(self, train_id: int) -> None:
        """After each train fed: refresh the line (figures of trains *sent*)."""
        now = time.monotonic()
        if now - self._last >= 1.0:
            stats = self.server.stats
            rate = (stats["sent"] - self._sent_at_last) / (now - self._last)
            self._last, self._sent_at_last = now, stats["sent"]
            last = self.server.last_sent_train_id
            line = self._counts(stats) + ("" if last is None else f", last train ID {last}")
            line += f", {rate:.1f} trains/s"
            click.echo(line.ljust(79) + ("\r" if self._tty else "\n"), nl=False)

    def _counts(self, stats: dict) -> str:
        of = f"/{self.total}" if self.total else ""
        text = f"Sent {stats['sent']}{of} trains"
        if stats["dropped"]:
            text += f" ({stats['dropped']} dropped: clients too slow)"
        return text

    def done(self, how: str) -> None:
        elapsed = time.monotonic() - self._t0
        if self._tty:
            click.echo()
        counts = self._counts(self.server.stats) if self.server else "Sent 0 trains"
        click.echo(f"{how}: {counts} in {elapsed:.1f} s.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exfel-data")
def main() -> None:
    """Serve and inspect Karabo bridge streams (ZeroMQ + msgpack, format 2.2).

    Servers stop cleanly within a second on Ctrl-C (SIGINT) or SIGTERM. Clients of other
    tools (karabo_bridge.Client, OnDA, EXtra-foam) can read what these servers send.
    """


@main.command("serve-sim")
@click.argument("endpoint")
@click.option("-d", "--detector", default="AGIPD", show_default=True,
              type=click.Choice(DETECTORS),
              help="What to simulate: AGIPD-1M or LPD-1M (16 modules stacked in one source), one "
                   "AGIPD module, JUNGFRAU modules, an XGM (slow + fast data) or a camera.")
@click.option("-r", "--raw", is_flag=True,
              help="Raw uint16 data (AGIPD with its gain axis) instead of corrected float32.")
@click.option("--data-like", type=click.Choice(["online", "file"]), default="online",
              show_default=True,
              help="AGIPD/LPD axis order: online = (modules, fs, ss, pulses), "
                   "file = (pulses, modules, ss, fs) as stack_detector_data.")
@click.option("-n", "--pulses", type=click.IntRange(min=1), default=None,
              help="Frames per train (JUNGFRAU: memory cells; XGM: pulses). "
                   "Default: AGIPD 64, LPD 300, JUNGFRAU 1, XGM 50.")
@click.option("--modules", type=click.IntRange(1, 32), default=None,
              help="JUNGFRAU only: number of modules (sources JNGFR01...). Default 1.")
@_rate_option("Default: as fast as clients take them.")
@click.option("--ntrains", type=click.IntRange(min=1), default=None,
              help="Stop once clients took this many trains; trains dropped because no "
                   "client was ready do not count (default: run until Ctrl-C).")
@click.option("--policy", type=click.Choice(POLICIES), default=None,
              help="When clients are slower than the source: wait (never lose a train), drop "
                   "(newest trains are dropped), queue (bounded, oldest dropped). "
                   "Default: wait without --rate, drop with --rate.")
@socket_option("Server socket: REP answers REQ clients (each train to one client), PUB "
                "copies to every SUB client, PUSH deals round-robin to PULL clients.")
@_curve_server_options
def serve_sim(endpoint, detector, raw, data_like, pulses, modules, rate, ntrains, policy,
              sock, curve_secret_key, curve_allow) -> None:
    """Serve simulated detector or device data on ENDPOINT.

    \b
    ENDPOINT: ZeroMQ address to bind, e.g. tcp://*:4545 (all interfaces),
    tcp://127.0.0.1:4545, ipc:///tmp/bridge; a bare port binds loopback only.
    Port 0 picks a free port (the real address is printed).

    Sources and keys are those of the facility's simulator, e.g.
    SPB_DET_AGIPD1M-1/CAL/APPEND_CORRECTED with image.data, image.cellId,
    image.pulseId and image.trainId; train IDs count up from 10000000000.

    \b
    Examples:
      exfel-bridge serve-sim 4545 --rate 10
      exfel-bridge serve-sim tcp://*:4545 -d LPD --raw -n 100 -z PUB
    """
    bind, loopback_only = server_endpoint(endpoint)
    progress = _Progress(loopback_only, ntrains)
    progress.note = _curve_note(curve_secret_key, curve_allow)
    with stop_on_signals() as stop:
        try:
            serve_simulation(bind, detector, sock=sock, rate=rate, ntrains=ntrains,
                             policy=policy, raw=raw, data_like=data_like, pulses=pulses,
                             modules=modules, stop=stop, curve_secret_key=curve_secret_key,
                             curve_allow=curve_allow, on_ready=progress.ready,
                             on_train=progress)
        except KeyboardInterrupt:  # a second Ctrl-C
            stop.set()
        except (ValueError, OSError) as e:
            raise click.ClickException(error_text(e)) from None
    progress.done("Stopped" if stop.is_set() else "Done")


@main.command("serve-run")
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("endpoint")
@click.option("--source", "sources", multiple=True, metavar="GLOB",
              help="Only sources matching this glob (repeatable), e.g. 'SPB_DET_AGIPD1M-1/*'.")
@click.option("--key", default="*", show_default=True, metavar="GLOB",
              help="Only keys matching this glob in the selected sources, e.g. 'image.*'.")
@click.option("--trains", default=None, metavar="SLICE",
              help="Train positions START:STOP[:STEP] like Python slicing ('10:20', ':100', "
                   "'-10:', one index '5') or train IDs id:FIRST:STOP[:STEP].")
@click.option("--append-detector-modules", "append", is_flag=True,
              help="Stack the module sources of each detector (AGIPD/LPD/DSSC/JUNGFRAU) into "
                   "one source, as EXtra-data's serve-files: <DET>/DET/APPEND, image.data "
                   "(pulses, modules, ss, fs), raw AGIPD (pulses, 2, modules, ss, fs).")
@click.option("--layout", type=click.Choice(["file", "online"]), default="file",
              show_default=True,
              help="With --append-detector-modules: 'online' sends what the live online "
                   "calibration sends instead: <DET>/CAL/APPEND_CORRECTED (or _RAW), "
                   "image.data (modules, fs, ss, pulses), with timestamps.")
@click.option("--dummy-timestamps/--no-dummy-timestamps", default=None,
              help="Add wall-clock timestamps (timestamp, .sec, .frac) of the sending time: "
                   "files have none, and monitors drop trains without them. Default: on with "
                   "--layout online, else off.")
@_rate_option("Default: as fast as clients take them.")
@click.option("--loop", is_flag=True,
              help="Start again from the first train after the last (until Ctrl-C).")
@click.option("--policy", type=click.Choice(POLICIES), default="wait",
              show_default=True,
              help="When clients are slower than the files: wait (every train is sent), drop or "
                   "queue (live-like: clients get recent trains, others are dropped).")
@socket_option("Server socket: REP (REQ clients share the trains), PUB (copies), PUSH "
                "(round-robin).")
@_curve_server_options
def serve_run(run_dir, endpoint, sources, key, trains, append, layout, dummy_timestamps, rate,
              loop, policy, sock, curve_secret_key, curve_allow) -> None:
    """Stream a run (RUN_DIR) train by train on ENDPOINT.

    \b
    ENDPOINT: ZeroMQ address to bind, e.g. tcp://*:4545 (all interfaces),
    tcp://127.0.0.1:4545, ipc:///tmp/bridge; a bare port binds loopback only.

    Each train is sent once, in order; the server exits when all were taken
    (unless --loop).

    \b
    Example:
      exfel-bridge serve-run /data/r0238 4545 --source 'SPB_DET_AGIPD1M-1/*' \\
          --key 'image.*' --append-detector-modules --dummy-timestamps --rate 10
    """
    from bridge.serve_run import select_run
    from bridge.serve_run import serve_run as serve
    from exfel_data.selection import parse_trains

    bind, loopback_only = server_endpoint(endpoint)
    try:
        train_sel = parse_trains(trains) if trains else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--trains") from None
    progress = _Progress(loopback_only)
    progress.note = _curve_note(curve_secret_key, curve_allow)
    if layout == "online" and not append:
        raise click.BadParameter("applies with --append-detector-modules", param_hint="--layout")
    with stop_on_signals() as stop:
        try:
            selection = select_run(run_dir, sources or ("*",), key, train_sel)
            progress.total = None if loop else len(selection.train_ids)
            serve(selection, bind, append_detector_modules=append, layout=layout,
                  dummy_timestamps=dummy_timestamps, rate=rate, loop=loop, sock=sock,
                  policy=policy, stop=stop, curve_secret_key=curve_secret_key,
                  curve_allow=curve_allow, on_ready=progress.ready, on_train=progress)
        except KeyboardInterrupt:  # a second Ctrl-C
            stop.set()
        except (ValueError, KeyError, OSError) as e:
            raise click.ClickException(error_text(e)) from None
    progress.done("Stopped" if stop.is_set() else "Done")




@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("name")
@click.option("--force", is_flag=True, help="Overwrite existing key files of that name.")
def keygen(directory, name, force) -> None:
    """Write a CURVE key pair: DIRECTORY/NAME.key and DIRECTORY/NAME.key_secret.

    NAME.key is the public key: give it to the other side. NAME.key_secret
    holds the secret key too; it is readable by you only: keep it so.

    \b
    A server:  exfel-bridge keygen keys server
               exfel-bridge serve-sim tcp://*:4545 --curve-secret-key keys/server.key_secret
    Clients:   exfel-bridge glimpse host:4545 --curve-server-key server.key
    To admit only listed clients, each makes its own pair (keygen ckeys alice), and
    the server gets a directory of their NAME.key files: --curve-allow DIR.
    """
    try:
        public, secret = generate_keys(directory, name, overwrite=force)
    except (CurveKeyError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Public key: {public}  (give it to the other side)")
    click.echo(f"Secret key: {secret}  (keep it private; only you can read it)")


for _command in (glimpse, monitor, match, record, process, view):
    main.add_command(_command)
