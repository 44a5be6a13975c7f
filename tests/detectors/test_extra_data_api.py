"""Detector API details code written for EXtra-data 1.25 relies on, checked against the real
extra-data on the same generated runs."""

from __future__ import annotations

import warnings

import extra_data
import extra_data.components as theirs
import numpy as np
import pytest

from exfel_data import by_id, by_index
from exfel_data.detectors import AGIPD1M, JUNGFRAU, LPD1M, NoMaskError

N_TRAINS = 12  # as tests/detectors/conftest.py generates


def _their_run(path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return extra_data.RunDirectory(path)


def _quiet(cls, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return cls(*args, **kw)


def test_train_ids_are_a_list(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    ref = theirs.AGIPD1M(_their_run(agipd_corr_path))
    assert det.train_ids == ref.train_ids
    assert det['image.data'].train_ids == ref['image.data'].train_ids
    parts = list(det.split_trains(parts=3))
    assert sum([p.train_ids for p in parts], []) == det.train_ids
    assert np.asarray(det.train_ids).dtype == np.uint64


def test_det_data_holds_only_module_sources(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    ref = theirs.AGIPD1M(_their_run(agipd_corr_path))
    assert det.data.all_sources == ref.data.all_sources
    assert 'proc data' in repr(det)


def test_pulse_and_cell_id_coordinates(agipd_corr_path, open_run):
    kd = AGIPD1M(open_run(agipd_corr_path))['image.data']
    ref = theirs.AGIPD1M(_their_run(agipd_corr_path))['image.data']
    np.testing.assert_array_equal(kd.pulse_id_coordinates(), ref.pulse_id_coordinates())
    np.testing.assert_array_equal(kd.cell_id_coordinates(), ref.cell_id_coordinates())
    sel, ref_sel = kd.select_pulses(np.s_[1:3]), ref.select_pulses(np.s_[1:3])
    np.testing.assert_array_equal(sel.pulse_id_coordinates(), ref_sel.pulse_id_coordinates())
    np.testing.assert_array_equal(sel.train_id_coordinates(), ref_sel.train_id_coordinates())


def test_empty_pulse_selection_drops_trains(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path)).select_trains(by_index[:3])
    ref = theirs.AGIPD1M(_their_run(agipd_corr_path)).select_trains(np.s_[:3])
    for sel in ('by_id[:0]', 'by_index[:0]', 'by_id[[1000]]', 'by_id[[20, 24]]'):
        ours = det.get_array('image.data', pulses=eval(sel, {'by_id': by_id,
                                                              'by_index': by_index}))
        expected = ref.get_array('image.data', pulses=eval(sel, vars(extra_data)))
        assert ours.shape == expected.shape, sel
        np.testing.assert_array_equal(ours, expected)


def test_key_is_not_iterable(agipd_corr_path, open_run):
    kd = AGIPD1M(open_run(agipd_corr_path))['image.data']
    assert len(kd[:2].train_ids) == 2
    with pytest.raises(TypeError):
        iter(kd)


def test_ndarray_out_and_decompress_threads(agipd_corr_path, lpd_raw_path, open_run):
    for cls, ref_cls, path in ((AGIPD1M, theirs.AGIPD1M, agipd_corr_path),
                               (LPD1M, theirs.LPD1M, lpd_raw_path)):
        kd = _quiet(cls, open_run(path))['image.data']
        expected = _quiet(ref_cls, _their_run(path))['image.data'].ndarray()
        out = np.full(kd.shape, 7, dtype=np.float64)
        assert kd.ndarray(out=out, decompress_threads=4) is out
        np.testing.assert_array_equal(out, expected)
        sel = kd.select_pulses(np.s_[1:])  # frames axis not a plain reshape: copied in
        out = np.zeros(sel.shape, expected.dtype)
        np.testing.assert_array_equal(sel.ndarray(out=out), sel.ndarray())
        with pytest.raises(ValueError, match=r'out= must have shape'):
            kd.ndarray(out=np.zeros((1, 2)))


def test_masked_data_of_raw_is_runtime_error(agipd_raw_path, open_run):
    det = _quiet(AGIPD1M, open_run(agipd_raw_path))
    with pytest.raises(RuntimeError, match='image.mask'):
        det.masked_data()
    with pytest.raises(NoMaskError, match='raw'):
        det.masked_data()


def test_jungfrau_cells(jungfrau_path, open_run):
    jf = JUNGFRAU(open_run(jungfrau_path))
    with pytest.raises(ValueError, match='one entry per train'):
        jf['data.adc'].pulse_id_coordinates()
    ref = theirs.JUNGFRAU(_their_run(jungfrau_path))
    assert jf.frames_per_train == ref.frames_per_train == 2
    np.testing.assert_array_equal(jf.cell_ids(), ref.cell_ids())
    assert jf.cell_ids().dtype == ref.cell_ids().dtype
    assert [len(p.train_ids) for p in jf.split_trains(frames_per_part=4)] == \
        [len(p.train_ids) for p in ref.split_trains(frames_per_part=4)]
    (tid, ours), (ref_tid, expected) = next(iter(jf.trains())), next(iter(ref.trains()))
    assert tid == ref_tid
    assert ours['data.adc'].dims == expected['data.adc'].dims
    np.testing.assert_array_equal(ours['data.adc'], expected['data.adc'])
    for kd, ref_kd in ((jf['data.adc'], ref['data.adc']),
                       (jf.masked_data(), ref.masked_data())):
        assert kd.xarray().dims[:2] == ref_kd.xarray().dims[:2] == ('module', 'trainId')
        np.testing.assert_array_equal(kd.xarray(), ref_kd.xarray())
        np.testing.assert_array_equal(kd.xarray().coords['trainId'],
                                      ref_kd.xarray().coords['trainId'])
        assert kd.dimensions[:2] == ref_kd.dimensions[:2]


def test_split_trains_like_extra_data(agipd_corr_path, open_run):
    det = AGIPD1M(open_run(agipd_corr_path))
    ref = theirs.AGIPD1M(_their_run(agipd_corr_path))
    for kw in (dict(parts=5, frames_per_part=16), dict(trains_per_part=3, frames_per_part=16),
               dict(frames_per_part=4), dict(frames_per_part=1000), dict(parts=4)):
        assert [p.train_ids for p in det.split_trains(**kw)] == \
            [p.train_ids for p in ref.split_trains(**kw)], kw
    assert sum(len(p.train_ids) for p in det.split_trains(parts=5)) == N_TRAINS


def test_write_frames_as_extra_data(agipd_raw_path, open_run, tmp_path):
    from exfel_data import H5File
    from exfel_data.exceptions import TrainIDError

    det = _quiet(AGIPD1M, open_run(agipd_raw_path))
    ref = _quiet(theirs.AGIPD1M, _their_run(agipd_raw_path))
    tids = np.asarray(det.train_ids)
    pulse_ids = det['image.data'].pulse_id_coordinates()[:4]  # this run's first 4 pulse IDs
    trains = np.repeat(tids[[1, 3, 4]], 2)
    pulses = np.tile(pulse_ids[[0, 2]], 3)
    ours = det.write_frames(tmp_path / 'ours.h5', trains, pulses)
    ref.write_frames(tmp_path / 'theirs.h5', trains, pulses)
    with H5File(ours) as mine, extra_data.H5File(tmp_path / 'theirs.h5') as other:
        assert mine.instrument_sources == other.instrument_sources
        assert mine.train_ids == other.train_ids
        for src in sorted(other.instrument_sources)[:3]:
            for key in sorted(other[src].keys()):
                np.testing.assert_array_equal(mine[src, key].ndarray(),
                                              other[src, key].ndarray(), err_msg=key)
                np.testing.assert_array_equal(mine[src, key].data_counts(labelled=False),
                                              other[src, key].data_counts(labelled=False))
    assert not list(tmp_path.glob('.*tmp'))
    with pytest.raises(ValueError, match='same length|one entry per frame'):
        det.write_frames(tmp_path / 'bad.h5', trains, pulses[:-1])
    with pytest.raises(TrainIDError, match='123'):
        det.write_frames(tmp_path / 'bad.h5', [123], [0])
    assert not (tmp_path / 'bad.h5').exists()


def test_jungfrau_virtual_cxi_maps_each_file_once(jungfrau_path, open_run, tmp_path):
    # As EXtra-data (its test_write_virtual_cxi_jungfrau): one mapping per module file,
    # the cells of consecutive trains being consecutive frames
    import h5py

    det = JUNGFRAU(open_run(jungfrau_path))
    det.write_virtual_cxi(tmp_path / 'ours.cxi')
    files = {f for m in det.modules
             for f in det.data[det.modno_to_source[m], 'data.adc'].source_file_paths}
    with h5py.File(tmp_path / 'ours.cxi') as f:
        data = f['entry_1/instrument_1/detector_1/data']
        assert len(data.virtual_sources()) == len(files) == 8
        adc = det.get_array('data.adc').values  # (module, train, cell, ss, fs)
        np.testing.assert_array_equal(data[()], np.concatenate(
            adc.swapaxes(0, 1).swapaxes(1, 2)))


def test_jungfrau_cell_ids_need_every_module(tmp_path, open_run):
    from exfel_data.detectors import ModuleMismatchError
    from exfel_data.testing import JUNGFRAU as SimJF
    from exfel_data.testing import MissingTrains, make_run

    path = make_run(tmp_path / 'jf', n_trains=3, progress=False,
                    devices=[*SimJF(raw=False, cells=2, n_modules=2, module_shape=(4, 8))],
                    defects=[MissingTrains('JNGFR02', (0,))])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        jf = JUNGFRAU(open_run(path))
    with pytest.raises(ModuleMismatchError, match=r"memoryCell.* 10000 .*2: None"):
        jf.cell_ids()
    np.testing.assert_array_equal(jf.select_trains(np.s_[1:]).cell_ids(), [0, 1])
