import warnings

import numpy as np
import pytest

from exfel_data import by_id, by_index
from exfel_data.detectors import (
    AGIPD1M,
    DSSC1M,
    JUNGFRAU,
    LPD1M,
    DetectorDataWarning,
    FillValueError,
    NoDetectorError,
    identify_multimod_detectors,
    open_detector,
)
from exfel_data.testing import AGIPD1M as SimAGIPD
from exfel_data.testing import XGM, FrameCountMismatch, MissingTrains, make_run

SHAPE = (16, 8)  # as in conftest.py
N_TRAINS = 12

PULSE_IDS = [16, 20, 24, 28]  # generator: pulseId = 4 * frame + 16


def _module_frames(run, src, key='image.data'):
    return run[src, key].ndarray()


def test_agipd_corrected_get_array(agipd_corr_path, open_run):
    run = open_run(agipd_corr_path)
    det = AGIPD1M(run)
    assert not det.raw
    assert det.modules == list(range(16))
    assert det.modno_to_source[3] == 'SPB_DET_AGIPD1M-1/CORR/3CH0:output'
    arr = det.get_array('image.data')
    assert arr.dims == ('module', 'train', 'pulse', 'slow_scan', 'fast_scan')
    assert arr.shape == (16, N_TRAINS, 4) + SHAPE
    assert arr.dtype == np.float32
    np.testing.assert_array_equal(arr.coords['module'], np.arange(16))
    np.testing.assert_array_equal(arr.coords['train'], run.train_ids)
    np.testing.assert_array_equal(arr.coords['pulse'], PULSE_IDS)
    for m in (0, 7, 15):
        expected = _module_frames(run, det.modno_to_source[m])
        np.testing.assert_array_equal(arr.values[m].reshape((-1,) + SHAPE), expected)
    assert not np.isnan(arr.values).any()


def test_agipd_corrected_other_keys_and_cell_ids(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    gain = det.get_array('image.gain')
    assert gain.dtype == np.uint8 and gain.shape == (16, N_TRAINS, 4) + SHAPE
    cells = det.get_array('image.data', subtrain_index='cellId')
    assert cells.dims[2] == 'cell'
    np.testing.assert_array_equal(cells.coords['cell'], [1, 2, 3, 4])
    pid = det.get_array('image.pulseId')
    assert pid.dims == ('module', 'train', 'pulse')
    assert (pid.values == np.array(PULSE_IDS)).all()


def test_agipd_raw_fallback_warns_and_keeps_gain_axis(agipd_raw_path, open_run):
    run = open_run(agipd_raw_path)
    with pytest.warns(DetectorDataWarning, match='raw=True'):
        det = AGIPD1M(run)
    assert det.raw
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        AGIPD1M(run, raw=True)
    with pytest.raises(NoDetectorError, match='raw=True'):
        AGIPD1M(run, raw=False)
    arr = det.get_array('image.data')
    assert arr.dims == ('module', 'train', 'pulse', 'data_gain', 'slow_scan', 'fast_scan')
    assert arr.shape == (16, N_TRAINS, 4, 2) + SHAPE
    assert arr.dtype == np.uint16
    expected = _module_frames(run, det.modno_to_source[5])
    np.testing.assert_array_equal(arr.values[5].reshape((-1, 2) + SHAPE), expected)
    # roi on the data/gain axis drops it
    data_only = det.get_array('image.data', roi=np.s_[0, 2:6])
    assert data_only.dims == ('module', 'train', 'pulse', 'slow_scan', 'fast_scan')
    np.testing.assert_array_equal(data_only.values, arr.values[:, :, :, 0, 2:6])
    cell = det.get_array('image.cellId')
    assert cell.shape == (16, N_TRAINS, 4)  # (N, 1) in raw files: length-1 axis dropped


def test_astype_and_fill(agipd_raw_path, open_run):
    det = AGIPD1M(open_run(agipd_raw_path), raw=True)
    f = det.get_array('image.data', astype=np.float32, roi=np.s_[0])
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f.values, det.get_array('image.data', roi=np.s_[0]).values)
    with pytest.raises(FillValueError, match='uint16'):
        det.get_array('image.data', fill_value=-1)


def test_lpd_raw_drops_length1_axis(lpd_raw_path, open_run):
    run = open_run(lpd_raw_path)
    with pytest.warns(DetectorDataWarning):
        det = LPD1M(run)
    arr = det.get_array()
    assert arr.dims == ('module', 'train', 'pulse', 'slow_scan', 'fast_scan')
    assert arr.shape == (16, 6, 3) + SHAPE
    expected = _module_frames(run, det.modno_to_source[2])[:, 0]
    np.testing.assert_array_equal(arr.values[2].reshape((-1,) + SHAPE), expected)


def test_dssc_corrected(dssc_corr_path, open_run):
    run = open_run(dssc_corr_path)
    det = DSSC1M(run)
    assert repr(det).startswith("<DSSC1M 'SCS_DET_DSSC1M-1': corrected data, 16 modules")
    arr = det.get_array(pulses=by_index[1:])
    assert arr.shape == (16, 6, 2) + SHAPE
    np.testing.assert_array_equal(arr.coords['pulse'], [20, 24])


def test_jungfrau(jungfrau_path, open_run):
    run = open_run(jungfrau_path)
    det = JUNGFRAU(run)
    assert det.modules == [1, 2, 3, 4] and det.n_modules == 4
    arr = det.get_array('data.adc')
    assert arr.dims == ('module', 'train', 'cell', 'slow_scan', 'fast_scan')
    assert arr.shape == (4, 6, 2) + SHAPE
    np.testing.assert_array_equal(arr.coords['module'], [1, 2, 3, 4])
    expected = run[det.modno_to_source[3], 'data.adc'].ndarray()
    np.testing.assert_array_equal(arr.values[2], expected)
    cells = det.get_array('data.memoryCell')
    assert cells.dims == ('module', 'train', 'cell')
    lazy = det.get_dask_array('data.adc', chunk_bytes=1500)
    assert lazy.dims == arr.dims and lazy.data.numblocks[:2] == (4, 6)
    np.testing.assert_array_equal(lazy.values, arr.values)
    gaps = det.get_array('data.adc', module_gaps=True)
    assert gaps.shape[0] == 4
    first = list(det.trains())[0][1]
    assert first['data.adc'].dims == ('module', 'train', 'cell', 'slow_scan', 'fast_scan')
    assert 'data.memoryCell' in first and 'data.mask' in first


def test_identification(agipd_corr_path, jungfrau_path, open_run):
    run = open_run(agipd_corr_path)
    assert identify_multimod_detectors(run) == {('SPB_DET_AGIPD1M-1', AGIPD1M)}
    det = open_detector(run)
    assert isinstance(det, AGIPD1M)
    with pytest.raises(NoDetectorError, match='SPB_DET_AGIPD1M-1'):
        AGIPD1M(run, detector_name='MID_DET_AGIPD1M-1')
    with pytest.raises(NoDetectorError, match=r'No LPD1M .*AGIPD1M: SPB_DET_AGIPD1M-1'):
        LPD1M(run)
    assert isinstance(open_detector(open_run(jungfrau_path)), JUNGFRAU)
    sub = AGIPD1M(run, modules=[2, 4])
    assert sub.modules == [2, 4]
    arr = sub.get_array()
    np.testing.assert_array_equal(arr.coords['module'], [2, 4])
    full = sub.get_array(module_gaps=True)
    assert full.shape[0] == 16
    assert np.isnan(full.values[3]).all() and not np.isnan(full.values[4]).any()
    with pytest.raises(NoDetectorError, match=r'\[17\]'):
        AGIPD1M(run, modules=[2, 17])


def test_pulse_selection(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    full = det.get_array()
    by_ix = det.get_array(pulses=by_index[[0, 2]])
    np.testing.assert_array_equal(by_ix.coords['pulse'], [16, 24])
    np.testing.assert_array_equal(by_ix.values, full.values[:, :, [0, 2]])
    np.testing.assert_array_equal(det.get_array(pulses=np.s_[::2]).values, by_ix.values)
    by_pid = det.get_array(pulses=by_id[20:29])
    np.testing.assert_array_equal(by_pid.coords['pulse'], [20, 24, 28])
    np.testing.assert_array_equal(by_pid.values, full.values[:, :, 1:])
    one = det.get_array(pulses=3)
    assert one.shape[2] == 1 and one.coords['pulse'].item() == 28
    with pytest.raises(TypeError, match=r'Select pulses with a slice, .*not 2\.5'):
        det.get_array(pulses=2.5)


def test_select_and_split_trains(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    sel = det.select_trains(by_id[10003:10006])
    np.testing.assert_array_equal(sel.train_ids, [10003, 10004, 10005])
    np.testing.assert_array_equal(sel.get_array().values, det.get_array().values[:, 3:6])
    parts = list(det.split_trains(frames_per_part=10))
    assert [len(p.train_ids) for p in parts] == [2] * 6
    assert sum(len(p.train_ids) for p in det.split_trains(parts=5)) == N_TRAINS
    mixed = list(det.split_trains(parts=8, frames_per_part=1000))
    assert len(mixed) >= 8 and sum(len(p.train_ids) for p in mixed) == N_TRAINS
    # positional pulses argument, as in EXtra-data
    assert det.get_array('image.data', np.s_[:2]).shape[2] == 2
    assert det.frames_per_train == 4


def test_trains_iteration(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    full = det.get_array()
    seen = []
    for tid, data in det.trains(pulses=by_index[:2], chunk_bytes=20_000):
        assert sorted(data) == ['image.cellId', 'image.data', 'image.gain', 'image.mask',
                                'image.pulseId', 'image.trainId']
        arr = data['image.data']
        assert arr.dims == ('module', 'train', 'pulse', 'slow_scan', 'fast_scan')
        assert arr.coords['train'].values.tolist() == [tid]
        i = len(seen)
        np.testing.assert_array_equal(arr.values[:, 0], full.values[:, i, :2])
        seen.append(tid)
    assert seen == list(det.train_ids)


def test_trains_as_extra_data(agipd_corr_path, open_run):
    import extra_data
    from extra_data.components import AGIPD1M as TheirAGIPD

    ours = AGIPD1M(open_run(agipd_corr_path))
    theirs = TheirAGIPD(extra_data.RunDirectory(str(agipd_corr_path)))
    pairs = zip(ours.trains(pulses=by_id[[20, 24]]),
                theirs.trains(pulses=extra_data.by_id[[20, 24]]), strict=True)
    for (ta, a), (tb, b) in pairs:
        assert ta == tb and sorted(a) == sorted(b)
        for key, arr in b.items():
            assert a[key].dims == arr.dims, key
            np.testing.assert_array_equal(a[key].values, arr.values, err_msg=key)
            np.testing.assert_array_equal(a[key].coords['pulse'], arr.coords['pulse'])


def test_masked_data(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    data = det.get_array().values
    mask = det.get_array('image.mask').values
    masked = det.masked_data().xarray(unstack_pulses=True)
    expected = np.where(mask != 0, np.nan, data)
    np.testing.assert_array_equal(masked.values, expected)
    bits = det.masked_data(mask_bits=[1, 2], masked_value=-1).unstacked_ndarray()
    np.testing.assert_array_equal(bits, np.where(mask & 3, -1, data))
    lazy = det.masked_data().dask_array(chunk_bytes=20_000, labelled=True, unstack_pulses=True)
    np.testing.assert_array_equal(lazy.values, expected)
    # EXtra-data's layout: the frames of all trains on one axis
    frames = det.masked_data().dask_array(chunk_bytes=20_000)
    np.testing.assert_array_equal(frames.compute(), expected.reshape(frames.shape))
    np.testing.assert_array_equal(det.masked_data().ndarray(), expected.reshape(frames.shape))


def test_masked_data_needs_corrected(agipd_raw_path, open_run):
    det = AGIPD1M(open_run(agipd_raw_path), raw=True)
    with pytest.raises(NoDetectorError, match='mask'):
        det.masked_data()


# -- messy runs ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def messy_path(runs_dir):
    devices = [XGM(), *SimAGIPD(raw=True, frames_per_train=4, module_shape=SHAPE)]
    return make_run(runs_dir / 'messy', n_trains=8, trains_per_file=4, devices=devices,
                    defects=[MissingTrains('AGIPD03', (1, 2)),
                             FrameCountMismatch('AGIPD05', (4,), frames=2)],
                    progress=False)


def test_missing_trains_and_frame_mismatch_fill(messy_path, open_run):
    run = open_run(messy_path)
    with pytest.warns(DetectorDataWarning) as rec:
        det = AGIPD1M(run, raw=True)
    msg = str(rec[0].message)
    assert 'module 3 has no data in 2 of 8 trains (10001, 10002)' in msg
    assert 'module 5 recorded a different number of frames' in msg and '10004' in msg
    avail = det.data_counts()
    assert avail.shape == (8, 16)
    assert list(avail.loc[[10001, 10002], 3]) == [0, 0]
    assert avail.loc[10004, 5] == 2 and avail.loc[10004, 4] == 4
    assert det.data_counts(as_bool=True).loc[10001, 3] == False  # noqa: E712
    # EXtra-data's data_availability: (modules, frames) bool, 4 frames per train
    have = det.data_availability()
    assert have.shape == (16, 8 * 4)
    assert not have[3, 4:12].any() and have[3, :4].all()
    assert have[5, 16:18].all() and not have[5, 18:20].any()
    assert len(det.train_ids) == 8  # no train dropped

    arr = det.get_array('image.data', fill_value=7)
    assert arr.dtype == np.uint16
    assert (arr.values[3, 1:3] == 7).all()
    ok = run['SPB_DET_AGIPD1M-1/DET/3CH0:xtdf', 'image.data'].ndarray()
    np.testing.assert_array_equal(arr.values[3, [0, 3, 4, 5, 6, 7]].reshape(ok.shape), ok)
    # module 5, train 10004: its 2 frames go to the slots of their pulse IDs
    m5 = run['SPB_DET_AGIPD1M-1/DET/5CH0:xtdf', 'image.data'].select_trains(
        by_id[[10004]]).ndarray()
    np.testing.assert_array_equal(arr.values[5, 4, :2], m5)
    assert (arr.values[5, 4, 2:] == 7).all()
    # default fill for ints is 0
    assert (det.get_array('image.data').values[3, 1] == 0).all()
    # float output gets NaN
    f = det.get_array('image.data', astype=np.float32)
    assert np.isnan(f.values[3, 1:3]).all() and not np.isnan(f.values[4]).any()


def test_frame_mismatch_exclude(messy_path, open_run):
    with pytest.warns(DetectorDataWarning, match='excluded'):
        det = AGIPD1M(open_run(messy_path), raw=True, mismatched_frames='exclude')
    arr = det.get_array('image.data', astype=np.float32)
    assert np.isnan(arr.values[5, 4]).all()
    assert not np.isnan(arr.values[5, 3]).any()


def test_messy_trains_require_all(messy_path, open_run):
    with pytest.warns(DetectorDataWarning):
        det = AGIPD1M(open_run(messy_path), raw=True)
    tids = [t for t, _ in det.trains(keys='image.data')]   # require_all=True by default
    assert tids == [10000, 10003, 10004, 10005, 10006, 10007]
    all_tids = [t for t, d in det.trains(keys='image.data', require_all=False, fill_value=0)]
    assert all_tids == list(range(10000, 10008))


def test_messy_dask_matches_get_array(messy_path, open_run):
    with pytest.warns(DetectorDataWarning):
        det = AGIPD1M(open_run(messy_path), raw=True)
    lazy = det.get_dask_array('image.data', astype=np.float32, chunk_bytes=3000)
    assert lazy.data.chunksize[1] < 8
    np.testing.assert_array_equal(lazy.values,
                                  det.get_array('image.data', astype=np.float32).values)


# -- dask on a cluster -------------------------------------------------------------

def test_dask_graph_is_picklable_and_runs_on_distributed(agipd_corr_path, open_run):
    import pickle

    from distributed import Client, LocalCluster

    det = AGIPD1M(open_run(agipd_corr_path))
    lazy = det.get_dask_array('image.data', chunk_bytes=40_000)
    graph = dict(lazy.data.__dask_graph__())
    blob = pickle.dumps(graph)
    assert b'h5py' not in blob  # file names and dataset paths only
    import dask.array as da
    roundtrip = da.Array(pickle.loads(blob), lazy.data.name, lazy.data.chunks, lazy.dtype)
    np.testing.assert_array_equal(roundtrip.compute(scheduler='sync'),
                                  det.get_array('image.data').values)
    expected = det.get_array('image.data').values
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=':0') as cluster, Client(cluster) as client:
        mean = client.compute(lazy.data.mean(axis=(1, 2))).result()
        total = lazy.sum(dim=('train', 'pulse')).compute()
    np.testing.assert_allclose(mean, expected.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(total.values, expected.sum(axis=(1, 2)), rtol=1e-5)
    assert total.dims == ('module', 'slow_scan', 'fast_scan')


# -- differential checks against EXtra-data ---------------------------------------

@pytest.mark.parametrize('path_fixture, ed_cls, kw', [
    ('agipd_corr_path', 'AGIPD1M', {}),
    ('agipd_raw_path', 'AGIPD1M', {'raw': True}),
    ('lpd_raw_path', 'LPD1M', {'raw': True}),
])
def test_matches_extra_data(request, path_fixture, ed_cls, kw, open_run):
    import extra_data
    from extra_data import components

    path = request.getfixturevalue(path_fixture)
    ours_cls = {'AGIPD1M': AGIPD1M, 'LPD1M': LPD1M}[ed_cls]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        theirs = getattr(components, ed_cls)(extra_data.RunDirectory(str(path)), **kw)
        ours = ours_cls(open_run(path), **kw)
    for ours_sel, their_sel in [(np.s_[:], np.s_[:]),
                                (by_index[1:3], extra_data.by_index[1:3]),
                                (by_id[[16, 24]], extra_data.by_id[[16, 24]])]:
        a = ours.get_array('image.data', pulses=ours_sel)
        b = theirs.get_array('image.data', pulses=their_sel)
        assert a.dims == b.dims
        np.testing.assert_array_equal(a.coords['pulse'], b.coords['pulse'])
        np.testing.assert_array_equal(a.coords['train'], b.coords['train'])
        np.testing.assert_array_equal(a.coords['module'], b.coords['module'])
        np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(ours.frame_counts.values, theirs.frame_counts.values)
    a = ours.get_array('image.data', unstack_pulses=False)
    b = theirs.get_array('image.data', unstack_pulses=False)
    assert a.dims == b.dims
    np.testing.assert_array_equal(a.values, b.values)
    assert list(a.indexes['train_pulse']) == list(b.indexes['train_pulse'])
    # the key objects: EXtra-data's (modules, frames, ...) layout, also after selections
    for sel, their_sel in [(None, None), (by_index[1:3], extra_data.by_index[1:3])]:
        ka, kb = ours['image.data'], theirs['image.data']
        if sel is not None:
            ka, kb = ka.select_pulses(sel), kb.select_pulses(their_sel)
        assert ka.shape == kb.shape and ka.ndim == kb.ndim
        assert ka.dimensions == kb.dimensions
        assert ka.buffer_shape(module_gaps=True) == kb.buffer_shape(module_gaps=True)
        np.testing.assert_array_equal(ka.ndarray(), kb.ndarray())
        xa, xb = ka.xarray(), kb.xarray()
        assert xa.dims == xb.dims
        assert list(xa.indexes['train_pulse']) == list(xb.indexes['train_pulse'])
        np.testing.assert_array_equal(ka.dask_array().compute(), kb.dask_array().compute())
        np.testing.assert_array_equal(ka.train_id_coordinates(), kb.train_id_coordinates())
        np.testing.assert_array_equal(ka[:2].ndarray(), kb[:2].ndarray())
    # (extra-data's key data_availability fails after select_pulses: compared without)
    np.testing.assert_array_equal(ours.data_availability(), theirs.data_availability())
    np.testing.assert_array_equal(ours.data_availability(module_gaps=True),
                                  theirs.data_availability(module_gaps=True))


def test_construction_opens_no_file(agipd_corr_path, open_run, monkeypatch):
    from exfel_data import file_access, run_map
    # Per-source indexes are read on first use and kept in the run's cache from then on.
    AGIPD1M(open_run(agipd_corr_path)).data_counts()
    run_map._save_pending()
    run = open_run(agipd_corr_path)

    def no_open(filename):
        raise AssertionError(f"opened {filename}")
    monkeypatch.setattr(file_access.handle_pool, 'get', no_open)
    det = AGIPD1M(run)
    assert det.data_counts().to_numpy().min() == 4
    assert det.select_trains(np.s_[:3]).frame_counts.tolist() == [4, 4, 4]


def test_agipd500k(runs_dir, open_run):
    from exfel_data.detectors import AGIPD500K
    from exfel_data.testing import AGIPD500K as Sim500K

    path = make_run(runs_dir / 'agipd500k', n_trains=3, progress=False,
                    devices=list(Sim500K(raw=False, frames_per_train=2, module_shape=SHAPE)))
    run = open_run(path)
    det = AGIPD500K(run)
    assert det.detector_name == 'HED_DET_AGIPD500K2G' and det.n_modules == 8
    assert det.get_array(module_gaps=True).shape == (8, 3, 2) + SHAPE
    assert identify_multimod_detectors(run) == {('HED_DET_AGIPD500K2G', AGIPD500K)}


def test_per_train_keys_and_gaps_lazily(agipd_raw_path, open_run):
    det = AGIPD1M(open_run(agipd_raw_path), raw=True, modules=[1, 3])
    counts = det.get_array('header.pulseCount')
    assert counts.dims == ('module', 'train')
    assert (counts.values == 4).all()
    lazy = det.get_dask_array('image.data', module_gaps=True, roi=np.s_[0])
    assert lazy.shape == (16, N_TRAINS, 4) + SHAPE
    eager = det.get_array('image.data', module_gaps=True, roi=np.s_[0])
    np.testing.assert_array_equal(lazy.values, eager.values)
    assert (eager.values[0] == 0).all() and (eager.values[1] != 0).any()


def test_corrected_with_legacy_links(runs_dir, open_run):
    path = make_run(runs_dir / 'links', n_trains=3, progress=False, devices=list(SimAGIPD(
        raw=False, frames_per_train=2, module_shape=SHAPE, corrected_naming='output+links')))
    run = open_run(path)
    with warnings.catch_warnings():
        warnings.simplefilter('error', DetectorDataWarning)
        det = AGIPD1M(run)
    assert det.modno_to_source[0].endswith('/CORR/0CH0:output')
    assert det.get_array().shape == (16, 3, 2) + SHAPE


def test_stacked_train_pulse_layout(messy_path, open_run):
    with pytest.warns(DetectorDataWarning):
        det = AGIPD1M(open_run(messy_path), raw=True)
    flat = det.get_array('image.data', unstack_pulses=False, roi=np.s_[0])
    assert flat.dims == ('module', 'train_pulse', 'slow_scan', 'fast_scan')
    assert flat.shape[1] == 8 * 4  # every slot has some module's frame
    full = det.get_array('image.data', roi=np.s_[0])
    np.testing.assert_array_equal(flat.values, full.values.reshape(16, 32, *SHAPE))
    assert flat.indexes['train_pulse'].names == ['train', 'pulse']
    sparse = det.get_array('image.data', by_id[[20, 99]], unstack_pulses=False)
    assert sparse.shape[1] == 8


def test_masked_data_messy(runs_dir, open_run):
    devices = list(SimAGIPD(raw=False, frames_per_train=4, module_shape=SHAPE))
    path = make_run(runs_dir / 'messy_corr', n_trains=4, devices=devices, progress=False,
                    defects=[FrameCountMismatch('AGIPD05', (1,), frames=2)])
    with pytest.warns(DetectorDataWarning):
        det = AGIPD1M(open_run(path))
    data = det.get_array().values
    mask = det.get_array('image.mask', fill_value=0).values
    masked = det.masked_data().unstacked_ndarray()
    np.testing.assert_array_equal(masked, np.where(mask != 0, np.nan, data))
    assert np.isnan(masked[5, 1, 2:]).all()


def test_empty_selections(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    none = det.select_trains(by_id[[]])
    assert none.get_array().shape == (16, 0, 0) + SHAPE
    assert none.get_dask_array().compute().shape == (16, 0, 0) + SHAPE
    assert list(none.trains()) == []
    no_pulse = det.get_dask_array(pulses=by_id[[999]])
    assert no_pulse.compute().shape == (16, N_TRAINS, 0) + SHAPE


def test_dask_task_refuses_module_file_replaced_after_planning(tmp_path):
    """A dask task reopens its file by name (on a worker, or after the handle was closed):
    a file replaced since the run was indexed must not be read under the old train IDs."""
    import os
    import shutil

    from exfel_data import FileChangedError, RunDirectory
    from exfel_data.detectors import AGIPD1M
    from exfel_data.file_access import handle_pool

    def agipd(path, first):
        return make_run(path, n_trains=4, trains_per_file=4, first_train_id=first,
                        devices=[SimAGIPD(raw=False, frames_per_train=2, n_modules=2,
                                          module_shape=(8, 4))], progress=False)

    a, b = agipd(tmp_path / 'a' / 'r0001', 10000), agipd(tmp_path / 'b' / 'r0001', 20000)
    name = sorted(p.name for p in a.glob('*AGIPD01*.h5'))[0]
    det = AGIPD1M(RunDirectory(a, cache=False))
    arr = det.get_dask_array('image.data')      # planned: files indexed and checked
    st = os.stat(a / name)
    shutil.copyfile(b / name, a / (name + '.tmp'))  # rsync -t style: renamed into place
    os.replace(a / (name + '.tmp'), a / name)
    os.utime(a / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    handle_pool.forget_all()                     # as on a worker: nothing open yet
    with pytest.raises(FileChangedError, match=name):
        arr.compute(scheduler='synchronous')
