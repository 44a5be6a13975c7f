"""What ``exfel-bridge match`` and ``exfel-bridge record`` do: loops, status lines, signals.

Both stop cleanly on Ctrl-C or SIGTERM (``bridge.serving.stop_on_signals``): the signal only
asks the loop to stop, so a train is never cut in half; a second Ctrl-C interrupts at once.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import click

from bridge.client import Client
from bridge.match import TrainMatcher
from bridge.record import Recorder
from bridge.server import Server
from bridge.serving import stop_on_signals

__all__ = ['run_match', 'run_record']

class _StatusLine:
    """A line refreshed about once a second (a new line each time when not a terminal)."""

    def __init__(self) -> None:
        self._tty = sys.stdout.isatty()
        self._last = time.monotonic()
        self._printed = False

    def __call__(self, text: Callable[[], str], force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= 1.0:
            self._last = now
            click.echo(text().ljust(79) + ('\r' if self._tty else '\n'), nl=False)
            self._printed = True

    def end(self) -> None:
        if self._tty and self._printed:
            click.echo()


def run_match(streams: Sequence[tuple[str, str]], serve: str, *, sock: str = 'REP',
              policy: str = 'wait', require: Sequence[str] | None = None,
              optional: Sequence[str] = (), timeout: float = 1.0,
              loopback_only: bool = False) -> dict:
    """Match ``streams`` and re-serve the matched trains on ``serve`` until stopped.

    Returns the matcher's final :attr:`~bridge.match.TrainMatcher.stats`.
    """
    status = _StatusLine()
    with stop_on_signals() as stop, \
            Server(serve, sock=sock, policy=policy) as server, \
            TrainMatcher(list(streams), require=require or None, optional=optional,
                         timeout=timeout) as matcher:
        click.echo(f'Matching {", ".join(f"{e} ({s})" for e, s in streams)}')
        click.echo(f'Serving matched trains on {server.endpoint} ({sock})')
        if loopback_only:
            click.echo(f'Listening on loopback only; to accept remote clients use '
                       f'tcp://*:{server.port}')
        start = time.monotonic()

        def line() -> str:
            st = server.stats
            text = f"Sent {st['sent']} trains"
            if st['dropped']:
                text += f" ({st['dropped']} dropped: clients too slow)"
            return f'{text} | {matcher.status_line()}'

        while not stop.is_set():
            try:
                data, metadata = matcher.next(timeout=0.5)
            except TimeoutError:
                status(line)
                continue
            while not stop.is_set():
                try:
                    server.feed(data, metadata, timeout=0.5)
                    break
                except TimeoutError:    # 'wait' and clients not taking trains
                    status(line)
            status(line)
        status(line, force=True)
        status.end()
        stats = matcher.stats
        click.echo(f'Stopped after {time.monotonic() - start:.1f} s: {matcher.status_line()}')
    return stats


def run_record(endpoint: str, out_dir: str, *, sock: str = 'REQ',
               sources: Sequence[str] = ('*',), trains: int | None = None,
               duration: float | None = None, sequence_size: int = 500) -> Recorder:
    """Record the stream at ``endpoint`` into ``out_dir`` until done or stopped."""
    status = _StatusLine()
    recorder = Recorder(out_dir, sources=sources, sequence_size=sequence_size)
    start = time.monotonic()

    def line() -> str:
        st = recorder.stats
        dt = max(time.monotonic() - start, 1e-9)
        return (f"Recorded {st['trains']} trains, {st['bytes'] / 1e6:.1f} MB "
                f"({st['trains'] / dt:.1f} trains/s, {st['bytes'] / dt / 1e6:.1f} MB/s), "
                f"{st['files']} files finished")

    click.echo(f'Recording {endpoint} ({sock}) into {recorder.out_dir}; Ctrl-C to stop.')
    try:
        with stop_on_signals() as stop, Client(endpoint, sock=sock, timeout=0.5) as client:
            recorder.record(client, trains=trains, duration=duration, stop=stop,
                            on_train=lambda _: status(line))
    finally:
        recorder.close()
        status(line, force=True)
        status.end()
    for note in recorder.notes:
        click.echo(f'Note: {note}')
    click.echo(f'{line()} in {time.monotonic() - start:.1f} s: '
               + ', '.join(p.name for p in recorder.files))
    return recorder
