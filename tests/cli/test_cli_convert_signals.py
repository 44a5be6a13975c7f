"""exfel-data convert stopped by signals, killed, or out of disk: real processes, real signals.

Each test runs ``python -m exfel_data convert`` in a child process, waits until it is
writing (its hidden partial output exists), then signals it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exfel_data.testing import AGIPD1M, XGM, make_run


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """~170 MB of raw AGIPD: a couple of seconds of conversion."""
    devices = [XGM(), *AGIPD1M(frames_per_train=32, module_shape=(256, 128), n_modules=4)]
    return make_run(tmp_path_factory.mktemp("runs") / "r0007", n_trains=20,
                    trains_per_file=5, devices=devices, progress=False)


def start_convert(run, output, *args, **popen):
    cmd = [sys.executable, "-m", "exfel_data", "convert", str(run), str(output), "-q",
           *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def wait_for(predicate, proc, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        assert proc.poll() is None, f"finished before the signal: {proc.communicate()}"
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("the conversion did not start writing in time")


def partials(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.partial-*"))


@pytest.mark.parametrize("delay", [0.1, 0.2, 0.3])
def test_ctrl_c_stops_exdf_conversion(big_run, tmp_path, delay):
    # Before: SIGINT landing while the first files were written was nearly always raised
    # in a garbage-collection callback ("Exception ignored in WeakValueDictionary ...
    # KeyboardInterrupt") and lost: the conversion ran on to exit 0.
    proc = start_convert(big_run, tmp_path / "out", "--to", "exdf")
    wait_for(lambda: bool(partials(tmp_path)), proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted: no output was written" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_and_cleans(big_run, tmp_path):
    proc = start_convert(big_run, tmp_path / "out.npz", "--to", "npz")
    wait_for(lambda: bool(partials(tmp_path)), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM: no output was written" in err
    assert list(tmp_path.iterdir()) == []
