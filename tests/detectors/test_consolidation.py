"""One version of each detector concept: errors, warnings, votes, JUNGFRAU numbering, dask."""

import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest

from exfel_data import ExfelDataError, RunDirectory
from exfel_data.detectors import (
    AGIPD1M,
    JUNGFRAU,
    DetectorDataWarning,
    DetectorError,
    FillValueError,
    ModuleMismatchError,
    NoDetectorError,
    open_detector,
)
from exfel_data.detectors.frames import majority
from exfel_data.keydata import DASK_CHUNK_BYTES
from exfel_data.testing import JUNGFRAU as SimJUNGFRAU
from exfel_data.testing import XGM, make_run

SHAPE = (16, 8)


def test_errors_in_the_project_hierarchy(agipd_corr_path, open_run):
    for cls in (DetectorError, FillValueError, ModuleMismatchError, NoDetectorError):
        assert issubclass(cls, ExfelDataError) and issubclass(cls, ValueError)
    with pytest.raises(ExfelDataError, match=r"Module\(s\) \[20\] of SPB_DET_AGIPD1M-1"):
        AGIPD1M(open_run(agipd_corr_path), modules=[20])


@pytest.mark.parametrize('make', [lambda run: AGIPD1M(run), lambda run: open_detector(run)])
def test_raw_fallback_warned_once_at_the_callers_line(agipd_raw_path, open_run, caplog, make):
    # regression: it was printed twice, as a log line and as 'sys:1: DetectorDataWarning'
    run = open_run(agipd_raw_path)
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        make(run)
    ours = [w for w in rec if issubclass(w.category, DetectorDataWarning)]
    assert len(ours) == 1
    assert 'raw=True' in str(ours[0].message)
    assert ours[0].filename == __file__
    assert not [r for r in caplog.records if 'raw data' in r.getMessage()]


def test_messy_data_warning_points_at_the_caller(tmp_path):
    from exfel_data.testing import AGIPD1M as SimAGIPD
    from exfel_data.testing import MissingTrains

    path = make_run(tmp_path / 'r', n_trains=4, progress=False,
                    devices=[*SimAGIPD(raw=True, frames_per_train=2, module_shape=SHAPE,
                                       modules=[0, 1])],
                    defects=[MissingTrains('AGIPD01', (1,))])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        run = RunDirectory(path)
    with pytest.warns(DetectorDataWarning, match='module 1 has no data in 1 of 4') as rec:
        AGIPD1M(run, raw=True)
    assert len(rec) == 1 and rec[0].filename == __file__


def test_majority_vote_ties_go_to_more_frames():
    counts = np.array([[4, 4, 2, 0],
                       [2, 4, 2, 0],
                       [4, 0, 3, 0],
                       [2, 0, 3, 0]])
    got = majority(counts, counts > 0, empty=0)
    np.testing.assert_array_equal(got, [4, 4, 3, 0])  # 2-2 tie -> 4; 2-2 tie -> 3
    assert majority(np.zeros((0, 3), np.int64), np.zeros((0, 3), bool)).tolist() == [-1] * 3


@pytest.fixture(scope='module')
def jf_from_3(tmp_path_factory):
    path = make_run(tmp_path_factory.mktemp('jf3') / 'r', n_trains=3, progress=False,
                    devices=[XGM(), *SimJUNGFRAU(raw=False, cells=2, module_shape=SHAPE,
                                                 modules=[3, 4, 5])])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return path, RunDirectory(path)


def test_jungfrau_first_modno_as_extra_data(jf_from_3):
    import extra_data
    from extra_data.components import JUNGFRAU as TheirJF

    path, run = jf_from_3
    det = JUNGFRAU(run, first_modno=3)
    assert det.modules == [1, 2, 3]
    assert det.modno_to_source[1] == 'SPB_IRDA_JF4M/DET/JNGFR03:daqOutput'
    assert det.n_modules == 3
    arr = det.get_array('data.adc')
    theirs = TheirJF(extra_data.RunDirectory(str(path)), first_modno=3)
    assert theirs.modno_to_source == det.modno_to_source
    assert theirs.n_modules == det.n_modules
    expected = theirs.get_array('data.adc')
    np.testing.assert_array_equal(arr.coords['module'], expected.coords['module'])
    np.testing.assert_array_equal(arr.values, expected.values)
    np.testing.assert_array_equal(
        arr.values[0], run['SPB_IRDA_JF4M/DET/JNGFR03:daqOutput', 'data.adc'].ndarray())
    # default numbering: module numbers as in the source names
    assert JUNGFRAU(run).modules == [3, 4, 5]
    with pytest.raises(NoDetectorError, match='first_modno=4 but .* module 3'):
        JUNGFRAU(run, first_modno=4)


def test_dask_array_unlabelled_by_default_as_keydata(agipd_corr_path, open_run):
    import dask.array as da
    import xarray as xr

    det = AGIPD1M(open_run(agipd_corr_path))
    kd = det['image.data']
    assert isinstance(kd.dask_array(), da.Array)
    assert isinstance(kd.dask_array(labelled=True), xr.DataArray)
    assert isinstance(det.get_dask_array('image.data'), xr.DataArray)
    src = det.modno_to_source[0]
    assert isinstance(det.data[src, 'image.data'].dask_array(), da.Array)
    assert DASK_CHUNK_BYTES == 128 * 1024 ** 2   # one default for keys and detectors


def test_import_exfel_data_does_not_import_pandas():
    code = ("import sys, exfel_data, exfel_data.detectors; "
            "print(sorted(m for m in ('pandas', 'xarray', 'dask') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'


@pytest.fixture(scope='module')
def lpd_six_frames(tmp_path_factory):
    from exfel_data.testing import LPD1M as SimLPD

    path = make_run(tmp_path_factory.mktemp('lpd_pg') / 'r', n_trains=3, progress=False,
                    trains_per_file=2,
                    devices=[*SimLPD(raw=True, frames_per_train=6, module_shape=SHAPE,
                                     modules=[0, 3])])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return path, RunDirectory(path)


def test_lpd_parallel_gain_as_extra_data(lpd_six_frames):
    import extra_data
    from extra_data.components import LPD1M as TheirLPD

    from exfel_data import by_id, by_index
    from exfel_data.detectors import LPD1M

    path, run = lpd_six_frames
    ours = LPD1M(run, raw=True, parallel_gain=True)
    theirs = TheirLPD(extra_data.RunDirectory(str(path)), raw=True, parallel_gain=True)
    for sel, their_sel in [(None, np.s_[:]), (by_index[1:], extra_data.by_index[1:]),
                           (by_id[[16]], extra_data.by_id[[16]])]:
        a = ours.get_array('image.data', pulses=sel)
        b = theirs.get_array('image.data', pulses=their_sel)
        assert a.dims == b.dims == ('module', 'train', 'gain', 'pulse', 'slow_scan',
                                    'fast_scan')
        for c in ('train', 'gain', 'pulse'):
            np.testing.assert_array_equal(a.coords[c], b.coords[c])
        np.testing.assert_array_equal(a.values, b.values)
        ka = ours['image.data'].select_pulses(sel)
        xa = ka.xarray()
        xb = (theirs['image.data'].select_pulses(their_sel) if sel is not None
              else theirs['image.data']).xarray()
        assert list(xa.indexes['train_pulse']) == list(xb.indexes['train_pulse'])
        np.testing.assert_array_equal(xa.values, xb.values)
        np.testing.assert_array_equal(ka.dask_array().compute(), xb.values)
    lazy = ours.get_dask_array('image.data', chunk_bytes=300)
    np.testing.assert_array_equal(lazy.values, ours.get_array('image.data').values)
    # the gain stages of one pulse are the file's frames 0, 2, 4 of each train
    frames = run['FXE_DET_LPD1M-1/DET/3CH0:xtdf', 'image.data'].ndarray()[:6, 0]
    np.testing.assert_array_equal(ours.get_array('image.data').values[1, 0, :, 0],
                                  frames[[0, 2, 4]])


def test_lpd_parallel_gain_needs_frames_divisible_by_3(tmp_path):
    from exfel_data.detectors import LPD1M
    from exfel_data.testing import LPD1M as SimLPD

    path = make_run(tmp_path / 'r', n_trains=2, progress=False,
                    devices=[*SimLPD(raw=True, frames_per_train=4, module_shape=SHAPE,
                                     modules=[0])])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        run = RunDirectory(path)
    with pytest.raises(ModuleMismatchError, match=r'divisible by 3; train 10000 has \[4\]'):
        LPD1M(run, raw=True, parallel_gain=True)
    assert LPD1M(run, raw=True).frames_per_train == 4
