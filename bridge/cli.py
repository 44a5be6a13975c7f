"""The ``exfel-bridge`` command line (also ``python -m bridge``).

Commands: ``serve-sim`` (simulated live data), ``serve-run`` (stream a run from files),
``glimpse`` (look at one train), ``monitor`` (live rates, gaps and data age), ``match`` (join
several streams per train), ``record`` (a stream into a run folder), ``keygen`` (CURVE key
files); ``process`` and ``view`` (live analysis, bridge/process_cli.py).
"""

from __future__ import annotations

import sys
import time

import click
import numpy as np

# Already loaded with the bridge package; bridge.serve_run (exfel_data) stays lazy.
from bridge.client import Client
from bridge.curve import CurveKeyError, generate_keys
from bridge.endpoints import CLIENT_FOR, client_endpoint, server_endpoint
from bridge.protocol import ProtocolError
from bridge.server import POLICIES
from bridge.server import SOCKET_TYPES as SERVER_SOCKETS
from bridge.serving import stop_on_signals
from bridge.simulation import DETECTORS, serve_simulation


def _socket_option(what: str):
    return click.option(
        "-z", "--server-socket", "sock", default="REP", show_default=True,
        type=click.Choice(SERVER_SOCKETS), help=what)


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


def _curve_client_options(command):
    command = click.option(
        "--curve-secret-key", type=click.Path(exists=True, dir_okay=False), default=None,
        metavar="FILE",
        help="With --curve-server-key: this client's secret key file (NAME.key_secret), "
             "for servers that allow only listed clients (default: a fresh key).")(command)
    return click.option(
        "--curve-server-key", type=click.Path(exists=True, dir_okay=False), default=None,
        metavar="FILE",
        help="The server uses CURVE: its public key file (NAME.key).")(command)


def _curve_note(secret_key: str | None, allow: str | None) -> str | None:
    if secret_key is None:
        return None
    who = f"clients with a public key in {allow}" if allow else "any client"
    return (f"CURVE on: clients need the server's public key (--curve-server-key); "
            f"accepting {who}")


def printable(text) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``): names from the
    network must not move the cursor, recolour or clear the terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
@_socket_option("Server socket: REP answers REQ clients (each train to one client), PUB "
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
            raise click.ClickException(_message(e)) from None
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
@_socket_option("Server socket: REP (REQ clients share the trains), PUB (copies), PUSH "
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
            raise click.ClickException(_message(e)) from None
    progress.done("Stopped" if stop.is_set() else "Done")


def _message(error: Exception) -> str:
    # str(KeyError('text')) adds quotes.
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])
    return str(error)


def _describe_value(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    if isinstance(value, (list, tuple)):
        text = repr(value)
        return f"list[{len(value)}] " + (text if len(text) <= 60 else text[:57] + "...")
    return f"{type(value).__name__} {value!r}"[:80]


def describe_train(data: dict, metadata: dict, received_at: float) -> str:
    """Text of one train: train ID, then per source its timestamp, delay and keys."""
    lines = []
    tids = {m.get("timestamp.tid") for m in metadata.values()}
    tid_text = ", ".join(printable(t) for t in sorted(tids, key=str))
    lines.append(f"Train ID: {tid_text}   ({len(data)} sources)")
    for source in sorted(data):
        meta = metadata.get(source, {})
        lines.append("")
        lines.append(f"{printable(source)}  @ train {printable(meta.get('timestamp.tid', '?'))}")
        if isinstance(meta.get("timestamp"), (int, float)):
            ts = float(meta["timestamp"])
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
            lines.append(f"  timestamp: {when}.{int(ts % 1 * 1000):03d} ({ts:.6f}) | "
                         f"delay: {(received_at - ts) * 1000:.1f} ms")
        else:
            lines.append("  timestamp: none (the server sends no wall-clock time)")
        keys = {k: v for k, v in data[source].items() if k != "metadata"}
        names = {key: printable(key) for key in keys}
        width = max((len(name) for name in names.values()), default=0)
        for key in sorted(keys):
            lines.append(f"  {names[key].ljust(width)}  {_describe_value(keys[key])}")
    return "\n".join(lines)


@main.command()
@click.argument("endpoint")
@_socket_option("Socket type of the server (the client uses REQ, SUB or PULL to match).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds to wait for a train.")
@_curve_client_options
def glimpse(endpoint, sock, timeout, curve_server_key, curve_secret_key) -> None:
    """Receive one train from ENDPOINT and describe it.

    Prints the train ID, and for each source its timestamp, the delay between
    that timestamp and now, and every key with dtype and shape (arrays) or
    type and value.

    ENDPOINT: e.g. tcp://host:4545, ipc:///tmp/bridge; a bare port means
    tcp://127.0.0.1:PORT.
    """
    address = client_endpoint(endpoint)
    try:
        with Client(address, sock=CLIENT_FOR[sock], timeout=timeout,
                    curve_server_key=curve_server_key,
                    curve_secret_key=curve_secret_key) as client:
            data, metadata = client.next()
    except TimeoutError as e:
        raise click.ClickException(
            f"No train from {address} within {timeout:g} s. Is a {sock} server running there "
            f"(see -z)?\n{e}") from None
    except CurveKeyError as e:
        raise click.ClickException(str(e)) from None
    except ProtocolError as e:
        raise click.ClickException(
            f"Received a message that is not a valid Karabo bridge message from {address}: "
            f"{e}\nIs the server there a Karabo bridge (protocol 1.0 to 2.2)?") from None
    except KeyboardInterrupt:
        click.echo("Interrupted.")
        return
    click.echo(describe_train(data, metadata, time.time()))


class RateMeter:
    """Running figures of a stream: trains/s, MB/s, train-ID gaps and data age."""

    def __init__(self) -> None:
        self.trains = 0
        self.nbytes = 0
        self.missing = 0       # train IDs skipped between consecutive trains
        self.out_of_order = 0
        self.malformed = 0     # messages that were not valid bridge messages
        self.last_tid = None
        self._ages: list[float] = []
        self._window_trains = 0
        self._window_bytes = 0
        self._window_start = self._start = time.monotonic()

    def add(self, data: dict, metadata: dict, received_at: float) -> None:
        nbytes = sum(v.nbytes for src in data.values() for v in src.values()
                 if isinstance(v, np.ndarray))
        # Only integers: the values come from the network.
        tids = [m["timestamp.tid"] for m in metadata.values()
                if isinstance(m.get("timestamp.tid"), int)]
        tid = max(tids) if tids else None
        if tid is not None and self.last_tid is not None:
            if tid > self.last_tid + 1:
                self.missing += tid - self.last_tid - 1
            elif tid <= self.last_tid:
                self.out_of_order += 1
        if tid is not None:
            self.last_tid = tid
        stamps = [float(m["timestamp"]) for m in metadata.values()
                  if isinstance(m.get("timestamp"), (int, float))]
        if stamps:
            self._ages.append(received_at - min(stamps))
        self.trains += 1
        self.nbytes += nbytes
        self._window_trains += 1
        self._window_bytes += nbytes

    def summary(self) -> str:
        """Totals since the start."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        text = (f"Received {self.trains} trains ({self.nbytes / 1e6:.1f} MB) in {elapsed:.1f} s: "
                f"{self.trains / elapsed:.1f} trains/s, {self.nbytes / elapsed / 1e6:.1f} MB/s; "
                f"{self.missing} train IDs missing")
        if self.out_of_order:
            text += f", {self.out_of_order} out of order"
        if self.malformed:
            text += (f"; {self.malformed} malformed message{'s' if self.malformed > 1 else ''} "
                     "skipped")
        return text + "."

    def line(self) -> str:
        """One status line for the time since the previous call."""
        now = time.monotonic()
        dt = max(now - self._window_start, 1e-9)
        rate, mbps = self._window_trains / dt, self._window_bytes / dt / 1e6
        if self._ages:
            ages = sorted(self._ages)
            age = f"age {ages[len(ages) // 2] * 1000:.0f} ms (max {ages[-1] * 1000:.0f})"
        elif self._window_trains:
            age = "age n/a (no timestamps)"
        else:
            age = "no data"
        self._ages, self._window_trains, self._window_bytes = [], 0, 0
        self._window_start = now
        gaps = f"{self.missing} missing"
        if self.out_of_order:
            gaps += f", {self.out_of_order} out of order"
        return (f"{rate:7.1f} trains/s {mbps:9.1f} MB/s | train {self.last_tid} | "
                f"{gaps} | {age}")


@main.command()
@click.argument("endpoint")
@_socket_option("Socket type of the server (the client uses REQ, SUB or PULL to match).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many trains (default: until Ctrl-C).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between status lines.")
@click.option("--tune-malloc/--no-tune-malloc", default=True, show_default=True,
              help="Reuse memory for trains above 32 MiB (glibc, for this whole process; "
                   "2-3x faster for stacked AGIPD/LPD trains).")
@click.option("--fast", is_flag=True,
              help="Favour throughput over freshness: a REQ client asks for the next train "
                   "as one arrives (prefetch), SUB/PULL let ZeroMQ receive 100 trains ahead.")
@_curve_client_options
def monitor(endpoint, sock, count, interval, tune_malloc, fast, curve_server_key,
            curve_secret_key) -> None:
    """Show live figures of the stream at ENDPOINT until Ctrl-C.

    Each line: trains/s and MB/s over the last interval, the latest train ID,
    how many train IDs were skipped since the start (gaps), and the median
    (and maximum) age of the data when received: now minus the train's
    timestamp.

    ENDPOINT: e.g. tcp://host:4545; a bare port means tcp://127.0.0.1:PORT.
    """
    address = client_endpoint(endpoint)
    client_sock = CLIENT_FOR[sock]
    ahead = {} if not fast else (
        {"prefetch": True} if client_sock == "REQ" else {"receive_ahead": 100})
    meter = RateMeter()
    tty = sys.stdout.isatty()
    click.echo(f"Monitoring {address} ({sock} server); Ctrl-C to stop.")
    next_print = time.monotonic() + interval
    told_why = False
    try:
        with Client(address, sock=client_sock, timeout=interval,
                    tune_malloc=tune_malloc, curve_server_key=curve_server_key,
                    curve_secret_key=curve_secret_key, **ahead) as client:
            while count is None or meter.trains < count:
                try:
                    data, metadata = client.next()
                except TimeoutError as e:
                    if not meter.trains and not told_why:
                        click.echo(f"Nothing yet: {e}", err=True)   # once: what to check
                        told_why = True
                except ProtocolError as e:
                    # A monitor watches a stream: count a bad message, say the first, go on.
                    if not meter.malformed:
                        click.echo(f"Skipping a malformed message: {e}", err=True)
                    meter.malformed += 1
                else:
                    meter.add(data, metadata, time.time())
                if time.monotonic() >= next_print:
                    click.echo(meter.line().ljust(100) + ("\r" if tty else "\n"), nl=False)
                    next_print = time.monotonic() + interval
    except KeyboardInterrupt:
        pass
    except CurveKeyError as e:
        raise click.ClickException(str(e)) from None
    if tty:
        click.echo()
    click.echo(meter.summary())


def _stream(text: str, default_sock: str) -> tuple[str, str]:
    """An input ``[SOCK@]ENDPOINT`` of match / record as (address, client socket)."""
    from bridge.match import parse_stream

    try:
        endpoint, sock = parse_stream(text, default_sock)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="ENDPOINT") from None
    return client_endpoint(endpoint), sock


@main.command()
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
@_socket_option("Socket of the matched stream: REP, PUB or PUSH.")
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
        raise click.ClickException(_message(e)) from None


@main.command()
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


# Analysis commands (bridge/process_cli.py): exfel-bridge process, exfel-bridge view.
from bridge.process_cli import process as _process  # noqa: E402
from bridge.process_cli import view as _view  # noqa: E402

main.add_command(_process)
main.add_command(_view)
