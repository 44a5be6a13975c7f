"""``exfel-bridge glimpse`` and ``exfel-bridge monitor``: look at a stream (registered in
:mod:`bridge.cli`).

``glimpse`` describes one train (sources, timestamps, keys with dtype and shape);
``monitor`` shows live figures (:class:`RateMeter`: rates, train-ID gaps, data age).
Names and values come from the network: they are printed through :func:`printable`.
"""

from __future__ import annotations

import sys
import time

import click
import numpy as np

from bridge.client import Client
from bridge.curve import CurveKeyError
from bridge.endpoints import CLIENT_FOR, client_endpoint, curve_client_options, socket_option
from bridge.protocol import ProtocolError

__all__ = ["glimpse", "monitor", "describe_train", "printable", "RateMeter"]


def printable(text) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``): names from the
    network must not move the cursor, recolour or clear the terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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


@click.command()
@click.argument("endpoint")
@socket_option("Socket type of the server (the client uses REQ, SUB or PULL to match).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds to wait for a train.")
@curve_client_options
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


@click.command()
@click.argument("endpoint")
@socket_option("Socket type of the server (the client uses REQ, SUB or PULL to match).")
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
@curve_client_options
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
