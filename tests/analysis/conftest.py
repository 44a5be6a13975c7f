"""Fixtures of the analysis tests: a small generated run, writing analysis files."""

import textwrap

import pytest
from analysis_helpers import N_TRAINS, ROOT_TRAIN

from exfel_data.testing import XGM, Camera, Motor, make_run


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
