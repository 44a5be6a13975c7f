"""Tiny generated runs shared by the CLI tests (module-scoped: generated once)."""

import pytest

from exfel_data.testing import AGIPD1M, XGM, Camera, make_run


def small_devices():
    return [XGM(), Camera(shape=(8, 6)), *AGIPD1M(frames_per_train=3, module_shape=(16, 8),
                                                  n_modules=4)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A clean 1.3 run: XGM, a camera and a 4-module AGIPD, 12 trains in 2 sequences."""
    return make_run(tmp_path_factory.mktemp("runs") / "r0001", n_trains=12,
                    devices=small_devices(), trains_per_file=6)
