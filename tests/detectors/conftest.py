import warnings

import pytest

from exfel_data import RunDirectory
from exfel_data.testing import AGIPD1M, DSSC1M, JUNGFRAU, LPD1M, XGM, make_run

SHAPE = (16, 8)
N_TRAINS = 12


def _make(root, name, devices, **kw):
    kw.setdefault('n_trains', N_TRAINS)
    kw.setdefault('trains_per_file', 5)  # several sequence files per module
    return make_run(root / name, devices=devices, progress=False, **kw)


@pytest.fixture(scope='session')
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('det_runs')


@pytest.fixture(scope='session')
def agipd_corr_path(runs_dir):
    return _make(runs_dir, 'agipd_corr', [XGM(), *AGIPD1M(
        raw=False, frames_per_train=4, module_shape=SHAPE, corrected_naming='output')])


@pytest.fixture(scope='session')
def agipd_raw_path(runs_dir):
    return _make(runs_dir, 'agipd_raw', [XGM(), *AGIPD1M(
        raw=True, frames_per_train=4, module_shape=SHAPE)])


@pytest.fixture(scope='session')
def lpd_raw_path(runs_dir):
    return _make(runs_dir, 'lpd_raw', [*LPD1M(raw=True, frames_per_train=3, module_shape=SHAPE)],
                 n_trains=6)


@pytest.fixture(scope='session')
def dssc_corr_path(runs_dir):
    return _make(runs_dir, 'dssc_corr', [*DSSC1M(raw=False, frames_per_train=3,
                                                 module_shape=SHAPE)], n_trains=6)


@pytest.fixture(scope='session')
def jungfrau_path(runs_dir):
    return _make(runs_dir, 'jf', [XGM(), *JUNGFRAU(raw=False, cells=2, n_modules=4,
                                                   module_shape=SHAPE)], n_trains=6)


@pytest.fixture
def open_run():
    def _open(path):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return RunDirectory(path)
    return _open
