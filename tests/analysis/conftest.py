"""A small generated run and helpers shared by the analysis tests."""

import textwrap

import numpy as np
import pytest

from exfel_data.testing import XGM, Camera, Motor, make_run

ROOT_TRAIN = 10000
N_TRAINS = 30
CAMERA = "SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput"


def xgm_flux(tids):
    """The generator's XGM pulse energy (float32) for these train IDs."""
    return (800.0 + 0.5 * (np.asarray(tids, np.int64) % 997)).astype(np.float32)


def motor_position(tids):
    return 1.0 + 0.01 * (np.asarray(tids, np.int64) % 997)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """XGM, a motor and an 8x6 camera; 30 trains in 3 sequence files."""
    return make_run(tmp_path_factory.mktemp("analysis") / "r0001", n_trains=N_TRAINS,
                    first_train_id=ROOT_TRAIN,
                    devices=[XGM(n_samples=20), Motor(), Camera(shape=(8, 6))],
                    trains_per_file=10)


@pytest.fixture
def write_analysis(tmp_path):
    """``write_analysis(text, name='ana.py')`` -> path of an analysis file."""
    def write(text, name="ana.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


# An analysis summing the XGM pulse energy and keeping train IDs; fails on request.
SUM_ANALYSIS = """
import numpy as np
PARAMS = {"fail_on": [], "reducer_fail_on": -1, "none_on": []}

def process(train_id, data, params):
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
