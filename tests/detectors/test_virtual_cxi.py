"""det.write_virtual_cxi(): EXtra-data's virtual CXI layout, values read through HDF5."""

import contextlib
import io
import warnings

import h5py
import numpy as np
import pytest

from exfel_data.detectors import AGIPD1M, JUNGFRAU, LPD1M
from exfel_data.testing import AGIPD1M as SimAGIPD
from exfel_data.testing import FrameCountMismatch, MissingTrains, make_run


def _datasets(f):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not isinstance(
                f.get(name, getlink=True), h5py.SoftLink):
            out[name] = obj
    f.visititems(visit)
    return out


@pytest.mark.parametrize('path_fixture, ours_cls, theirs_name', [
    ('agipd_raw_path', AGIPD1M, 'AGIPD1M'),
    ('lpd_raw_path', LPD1M, 'LPD1M'),
])
def test_same_file_as_extra_data(request, path_fixture, ours_cls, theirs_name, open_run,
                                 tmp_path):
    import extra_data
    from extra_data import components

    path = request.getfixturevalue(path_fixture)
    ours = ours_cls(open_run(path), raw=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        theirs = getattr(components, theirs_name)(extra_data.RunDirectory(str(path)), raw=True)
        theirs.write_virtual_cxi(str(tmp_path / 'theirs.cxi'))
    assert ours.write_virtual_cxi(tmp_path / 'ours.cxi') == tmp_path / 'ours.cxi'
    with h5py.File(tmp_path / 'ours.cxi') as a, h5py.File(tmp_path / 'theirs.cxi') as b:
        da, db = _datasets(a), _datasets(b)
        assert sorted(da) == sorted(db)
        for name, ds in db.items():
            x, y = da[name][()], ds[()]
            assert x.shape == y.shape and x.dtype.kind == y.dtype.kind, name
            if x.dtype.kind == 'O':
                assert list(x) == list(y), name
            else:
                np.testing.assert_array_equal(x, y, err_msg=name)
            assert dict(da[name].attrs) == dict(ds.attrs), name
        assert dict(a['entry_1'].attrs) == dict(b['entry_1'].attrs)
        assert a['entry_1/data_1/data'].is_virtual
    assert not list(tmp_path.glob('.*tmp'))


def test_messy_corrected_run(runs_dir, open_run, tmp_path):
    # EXtra-data refuses runs whose modules disagree on frame counts; here they are filled
    devices = list(SimAGIPD(raw=False, frames_per_train=4, module_shape=(16, 8),
                            modules=range(6)))
    path = make_run(runs_dir / 'messy_vcxi', n_trains=4, devices=devices, progress=False,
                    defects=[MissingTrains('AGIPD03', (1,)),
                             FrameCountMismatch('AGIPD05', (2,), frames=2)])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        det = AGIPD1M(open_run(path))
    det.write_virtual_cxi(tmp_path / 'x.cxi', fillvalues={'mask': 7})
    data = det['image.data'].ndarray()          # (modules, frames, ss, fs), NaN-filled
    mask = det['image.mask'].ndarray(fill_value=7)
    with h5py.File(tmp_path / 'x.cxi') as f:
        d = f['entry_1/instrument_1/detector_1']
        assert d['data'].shape == (16, 16, 16, 8)      # 4 trains x 4 frames, 16 modules
        np.testing.assert_array_equal(d['data'][:, :6], data.swapaxes(0, 1))
        assert np.isnan(d['data'][:, 6:]).all()       # modules not in the run
        assert np.isnan(d['data'][4:8, 3]).all()      # module 3 misses train 10001
        assert np.isnan(d['data'][10:12, 5]).all()    # module 5 has 2 frames in 10002
        np.testing.assert_array_equal(d['mask'][:, :6], mask.swapaxes(0, 1))
        assert (d['gain'][:, 6:] == 0).all()
        np.testing.assert_array_equal(d['module_identifier'], np.arange(16))
        np.testing.assert_array_equal(f['entry_1/trainId'], np.repeat(det.train_ids, 4))
        np.testing.assert_array_equal(f['entry_1/pulseId'], np.tile([16, 20, 24, 28], 4))
        assert f['entry_1/experiment_identifier'][1].decode() == f'{det.train_ids[0]}:20'
        np.testing.assert_array_equal(f['entry_1/cellId'][:4, 0], [1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['masks'\]"):
        det.write_virtual_cxi(tmp_path / 'y.cxi', fillvalues={'masks': 1})


def test_jungfrau_cells_are_frames(jungfrau_path, open_run, tmp_path):
    det = JUNGFRAU(open_run(jungfrau_path))
    det.write_virtual_cxi(tmp_path / 'jf.cxi')
    adc = det.get_array('data.adc').values             # (module, train, cell, ss, fs)
    n_mod, n_trains, cells = adc.shape[:3]
    with h5py.File(tmp_path / 'jf.cxi') as f:
        d = f['entry_1/instrument_1/detector_1']
        np.testing.assert_array_equal(d['module_identifier'], [1, 2, 3, 4])
        np.testing.assert_array_equal(
            d['data'][()], adc.reshape((n_mod, n_trains * cells) + adc.shape[3:]).swapaxes(0, 1))
        np.testing.assert_array_equal(f['entry_1/cellId'][:, 0],
                                      np.tile(np.arange(cells), n_trains))
        np.testing.assert_array_equal(f['entry_1/trainId'], np.repeat(det.train_ids, cells))
