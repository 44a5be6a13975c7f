"""Shared values and helpers of the analysis tests (imported as ``analysis_helpers``)."""

import socket
import threading
from contextlib import contextmanager

import numpy as np

from bridge.serve_run import serve_run

ROOT_TRAIN = 10000
N_TRAINS = 30
CAMERA = "SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput"


def xgm_flux(tids):
    """The generator's XGM pulse energy (float32) for these train IDs."""
    return (800.0 + 0.5 * (np.asarray(tids, np.int64) % 997)).astype(np.float32)


def motor_position(tids):
    return 1.0 + 0.01 * (np.asarray(tids, np.int64) % 997)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_run(run_dir, **kwargs):
    """Serve ``run_dir`` on a free loopback port in a thread; yields the endpoint."""
    ready, stop, servers = threading.Event(), threading.Event(), []

    def on_ready(server):
        servers.append(server)
        ready.set()

    kwargs.setdefault("dummy_timestamps", True)
    thread = threading.Thread(target=serve_run, args=(run_dir, "tcp://127.0.0.1:0"),
                              kwargs=dict(stop=stop, on_ready=on_ready, drain_timeout=30,
                                          **kwargs), daemon=True)
    thread.start()
    assert ready.wait(30), "serve_run did not start"
    try:
        yield f"tcp://127.0.0.1:{servers[0].port}"
    finally:
        stop.set()
        thread.join(30)


# An analysis summing the XGM pulse energy and keeping train IDs; fails on request.
SUM_ANALYSIS = """
import numpy as np
PARAMS = {"fail_on": [], "reducer_fail_on": -1, "none_on": [], "die_on": []}

def process(train_id, data, params):
    if train_id in params["die_on"]:
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies
    if train_id in params["fail_on"]:
        raise ValueError(f"bad train {train_id}")
    if train_id in params["none_on"]:
        return None
    return {"flux": float(data["SA1_XTD2_XGM/XGM/DOOCS"]["pulseEnergy.photonFlux.value"])}

class Reducer:
    def __init__(self, params):
        self.params = params
        self.total = 0.0
        self.tids = []

    def add(self, train_id, result):
        if train_id == self.params["reducer_fail_on"]:
            raise RuntimeError("reducer broke")
        self.total += result["flux"]
        self.tids.append(train_id)

    def merge(self, other):
        self.total += other.total
        self.tids += other.tids

    def partial(self):
        return {"total": self.total, "n": len(self.tids),
                "tids": np.asarray(sorted(self.tids), dtype=np.uint64)}
"""


# Per-worker state: setup() runs once in each worker process.
SETUP_ANALYSIS = """
import os
import numpy as np
setups = 0

def setup(params):
    global setups
    setups += 1

def process(train_id, data, params):
    return {"pid": os.getpid(), "setups": setups}

class Reducer:
    def __init__(self, params):
        self.seen = set()

    def add(self, train_id, result):
        self.seen.add((result["pid"], result["setups"]))

    def merge(self, other):
        self.seen |= other.seen

    def partial(self):
        pids, setups = zip(*sorted(self.seen)) if self.seen else ((), ())
        return {"pids": np.array(pids), "setups": np.array(setups)}
"""
