"""exfel_data.signals: the one Ctrl-C / SIGTERM mechanism (convert, merge, bridge servers)."""

import signal
import threading

import pytest

from exfel_data import signals
from exfel_data.signals import Interrupted, check_interrupt, stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_stops_second_aborts_handlers_restored(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    seen = []
    with stop_on_signals(on_stop=seen.append, checkpoints=True) as stop:
        assert stop.installed and isinstance(stop, threading.Event)
        assert signal.getsignal(sig) is not before[sig]
        signal.raise_signal(sig)  # first: no exception, only the request
        assert stop.is_set() and stop.signum == sig and seen == [sig]
        with pytest.raises(Interrupted, match=signal.Signals(sig).name) as exc:
            check_interrupt()
        assert exc.value.signum == sig and exc.value.exit_status == 128 + sig
        with pytest.raises(Interrupted) as exc:
            signal.raise_signal(signal.SIGINT)  # second: at once
        assert isinstance(exc.value, KeyboardInterrupt) and seen == [sig]
    assert {s: signal.getsignal(s) for s in before} == before
    check_interrupt()  # nothing active: nothing to raise


def test_nested_blocks_share_the_signals():
    with stop_on_signals() as outer:
        handler = signal.getsignal(signal.SIGINT)
        with stop_on_signals(checkpoints=True) as inner:
            assert inner.installed and signal.getsignal(signal.SIGINT) is handler
            signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) is handler  # the outer's, still
        assert inner.signum == outer.signum == signal.SIGTERM
        with pytest.raises(Interrupted):
            outer.check()


def test_checkpoints_only_in_blocks_that_ask_for_them():
    # Before: the stop of `exfel-bridge process` (an event) made the result file's
    # check_interrupt() refuse to write the results ("Aborted.", exit 130).
    with stop_on_signals() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set()
        check_interrupt()  # the loop was asked to stop; what it does next is allowed
        with stop_on_signals(checkpoints=True) as inner:
            check_interrupt()  # set before this block began: not its signal
            assert not inner.is_set()


def test_outside_the_main_thread_nothing_is_installed():
    before = signal.getsignal(signal.SIGINT)
    result = {}

    def work():
        with stop_on_signals() as stop:
            result["installed"] = stop.installed
            result["handler"] = signal.getsignal(signal.SIGINT)
            stop.set()  # the program may still set it
            result["set"] = stop.is_set()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert result == {"installed": False, "handler": before, "set": True}


def test_an_application_handler_stays_in_charge_when_asked():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda s, f: calls.append(s))
    try:
        with stop_on_signals(signals=[signal.SIGINT], checkpoints=True) as stop:
            assert not stop.installed
            signal.raise_signal(signal.SIGINT)
            assert calls == [signal.SIGINT] and not stop.is_set()
        with stop_on_signals(signals=[signal.SIGINT]) as stop:  # replaced by default
            signal.raise_signal(signal.SIGINT)
            assert calls == [signal.SIGINT] and stop.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_late_signal_sent_again_after_restoring():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    inside = []
    with pytest.raises(KeyboardInterrupt) as exc:
        with stop_on_signals(checkpoints=True) as stop:
            signal.raise_signal(signal.SIGINT)  # after the last safe point
            inside.append(stop.is_set())
    assert inside == [True]  # not raised inside the block, but not lost either
    assert not isinstance(exc.value, Interrupted)  # Python's own, from the restored handler
    with stop_on_signals(checkpoints=True) as stop:
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(Interrupted):
            check_interrupt()  # acted on at a safe point: not sent again
    with stop_on_signals() as stop:
        signal.raise_signal(signal.SIGINT)  # consumed by a loop watching the event
    assert stop.is_set()


def test_workers_install_nothing(monkeypatch):
    monkeypatch.setattr(signals, "_in_worker", True)
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals() as stop:
        assert not stop.installed and signal.getsignal(signal.SIGINT) is before


def test_bridge_uses_the_same_mechanism():
    from bridge import serving

    assert serving.stop_on_signals is stop_on_signals
