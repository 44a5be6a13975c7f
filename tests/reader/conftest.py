"""Fixtures: runs written by extra-data's mock writer (another tool), with real values."""

import os

import h5py
import numpy as np
import pytest

make_examples = pytest.importorskip("extra_data.tests.make_examples")


def fill_random(path, seed=0):
    """Write deterministic non-zero values into every numeric dataset of a file."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "r+") as f:
        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset) or name.startswith(("INDEX", "METADATA")):
                return
            if name.endswith("trainId") or obj.dtype.kind not in "iuf" or obj.size == 0:
                return
            if obj.size > 50_000:
                return
            obj[...] = rng.integers(0, 100, size=obj.shape).astype(obj.dtype)
        f.visititems(visit)


@pytest.fixture(scope="session", params=["0.5", "1.0", "1.2"])
def fxe_run(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"fxe{request.param}")
    make_examples.make_fxe_run(str(d), format_version=request.param)
    for i, name in enumerate(sorted(os.listdir(d))):
        if "DA01" in name:
            fill_random(os.path.join(d, name), seed=i)
    return str(d)


@pytest.fixture(scope="session")
def spb_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("spb")
    make_examples.make_spb_run(str(d), format_version="1.0", sensor_size=(32, 24))
    for i, name in enumerate(sorted(os.listdir(d))):
        fill_random(os.path.join(d, name), seed=i)
    return str(d)


@pytest.fixture(scope="session")
def sa3_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("sa3")
    path = str(d / "RAW-R0001-DA01-S00000.h5")
    make_examples.make_sa3_da_file(path, format_version="1.0")
    fill_random(path)
    return path
