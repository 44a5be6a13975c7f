"""The run generator writes the EXDF layout of each version with the documented values."""

import h5py
import numpy as np
import pytest
from gen_h5_helpers import file_index, read_key

from exfel_data.testing import (
    AGIPD1M,
    XGM,
    Camera,
    Motor,
    RunPlan,
    make_run,
)

TINY = (32, 16)
AGIPD0 = 'SPB_DET_AGIPD1M-1/DET/0CH0:xtdf'
XGM_CTRL = 'SA1_XTD2_XGM/XGM/DOOCS'
XGM_OUT = 'SA1_XTD2_XGM/XGM/DOOCS:output'


def tiny_devices(raw=True, n_modules=2, **kw):
    return [XGM(n_samples=50), Motor('SPB_IRU_MOTORS/MOTOR/X'),
            Camera(shape=(8, 6)),
            *AGIPD1M(raw=raw, frames_per_train=3, n_modules=n_modules, module_shape=TINY, **kw)]


def test_file_names_and_sequences(tmp_path):
    plan = RunPlan(n_trains=20, devices=tiny_devices(), trains_per_file=8, run_number=238)
    run_dir = plan.write(tmp_path / 'r0238')
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == sorted(f.name for f in plan.files)
    assert 'RAW-R0238-DA01-S00000.h5' in names
    assert 'RAW-R0238-AGIPD01-S00002.h5' in names
    # DA02 starts with a half-length file, so its boundaries differ from DA01's
    assert [len(f.train_ids) for f in plan.files if f.aggregator == 'DA01'] == [8, 8, 4]
    assert [len(f.train_ids) for f in plan.files if f.aggregator == 'DA02'] == [4, 8, 8]
    with h5py.File(run_dir / 'RAW-R0238-DA02-S00001.h5', 'r') as f:
        np.testing.assert_array_equal(f['INDEX/trainId'][:], np.arange(10004, 10012))
        assert f['METADATA/runNumber'][0] == 238
        assert f['METADATA/sequenceNumber'][0] == 1
        assert f['METADATA/proposalNumber'][0] == 700000
    # no temporary files left behind
    assert not [p for p in run_dir.iterdir() if not p.name.endswith('.h5')]


def test_corrected_data_class_and_names(tmp_path):
    run_dir = make_run(tmp_path / 'r1', n_trains=4,
                       devices=AGIPD1M(raw=False, n_modules=1, frames_per_train=2,
                                       module_shape=TINY, corrected_naming='output+links',
                                       compression='gzip'))
    (path,) = run_dir.iterdir()
    assert path.name == 'CORR-R0001-AGIPD00-S00000.h5'
    with h5py.File(path, 'r') as f:
        new = 'SPB_DET_AGIPD1M-1/CORR/0CH0:output'
        assert f[f'INSTRUMENT/{new}/image/data'].shape[1:] == TINY
        assert f[f'INSTRUMENT/{new}/image/data'].dtype == np.float32
        assert f[f'INSTRUMENT/{new}/image/mask'].dtype == np.uint32
        assert f[f'INSTRUMENT/{new}/image/gain'].dtype == np.uint8
        assert f[f'INSTRUMENT/{new}/image/gain'].compression == 'gzip'
        assert f[f'INSTRUMENT/{new}/image/gain'].chunks == (1,) + TINY
        assert f[f'INSTRUMENT/{new}/image/cellId'].ndim == 1
        for section in ('INDEX', 'INSTRUMENT'):
            link = f.get(f'{section}/{AGIPD0}', getlink=True)
            assert isinstance(link, h5py.SoftLink)
            assert link.path == f'/{section}/{new}'
        ids = [s.decode() for s in f['METADATA/dataSources/dataSourceId'][:]]
        assert f'INSTRUMENT/{new}/image' in ids
        assert f'INSTRUMENT/{AGIPD0}/image' in ids


@pytest.mark.parametrize('version', ['0.5', '1.0', '1.1', '1.2', '1.3'])
def test_structure_per_version(tmp_path, version):
    run_dir = make_run(tmp_path / 'r', n_trains=6, format_version=version,
                       devices=tiny_devices(n_modules=1), trains_per_file=100)
    with h5py.File(run_dir / 'RAW-R0001-DA01-S00000.h5', 'r') as f:
        meta = f['METADATA']
        if version == '0.5':
            assert 'dataFormatVersion' not in meta
            ids = meta['dataSourceId'][:]
            assert 'dataSources' not in meta
            assert set(f['INDEX']) >= {'trainId'} and 'flag' not in f['INDEX']
        else:
            assert meta['dataFormatVersion'][0] == version.encode()
            ids = meta['dataSources/dataSourceId'][:]
            roots = meta['dataSources/root'][:]
            devs = meta['dataSources/deviceId'][:]
            assert [r + b'/' + d if r else d for r, d in zip(roots, devs, strict=True)] \
                == list(ids)
            assert f['INDEX/timestamp'].dtype == np.uint64
            assert f['INDEX/flag'].dtype == np.int32
            good = 0 if version == '1.1' else 1
            assert (f['INDEX/flag'][:] == good).all()
            for name in ('creationDate', 'daqLibrary', 'karaboFramework'):
                assert meta[name].shape == (1,)
        assert ('origin' in f['INDEX']) == (version in ('1.2', '1.3'))
        ids = {s.decode() for s in ids}
        assert ('Karabo_TimerServer' in ids) == (version == '1.1')
        assert f'CONTROL/{XGM_CTRL}' in ids
        assert f'INSTRUMENT/{XGM_OUT}/data' in ids
        np.testing.assert_array_equal(f['INDEX/trainId'][:], np.arange(10000, 10006))
        assert f['INDEX/trainId'].dtype == np.uint64
        assert f[f'INDEX/{XGM_CTRL}/count'][:].tolist() == [1] * 6
        assert f[f'INDEX/{XGM_OUT}/data/first'][:].tolist() == list(range(6))
        grp = f[f'CONTROL/{XGM_CTRL}/beamPosition/ixPos']
        assert grp['value'].shape == (6,) and grp['timestamp'].dtype == np.uint64
        assert (grp.attrs.get('unitSymbol') == 'm') == (version == '1.3')
        assert f[f'RUN/{XGM_CTRL}/classId/value'][0] == b'DoocsXGM'
        assert f[f'RUN/{XGM_CTRL}/beamPosition/ixPos/value'].shape == (1,)
        # preallocated instrument datasets, redundant trainId per index group
        assert f[f'INSTRUMENT/{XGM_OUT}/data/intensityTD'].shape == (32, 50)
        assert f[f'INSTRUMENT/{XGM_OUT}/data/trainId'][:6].tolist() == list(range(10000, 10006))
    with h5py.File(run_dir / 'RAW-R0001-AGIPD00-S00000.h5', 'r') as f:
        img = f[f'INSTRUMENT/{AGIPD0}/image/data']
        assert img.shape[1:] == (2,) + TINY and img.dtype == np.uint16
        assert img.chunks == (1, 2) + TINY
        assert f[f'INSTRUMENT/{AGIPD0}/image/cellId'].shape[1:] == (1,)
        assert f[f'INDEX/{AGIPD0}/image/count'][:].tolist() == [3] * 6
        assert f[f'INDEX/{AGIPD0}/header/count'][:].tolist() == [1] * 6


def test_values_match_devices(tmp_path):
    plan = RunPlan(n_trains=12, devices=tiny_devices(), trains_per_file=5)
    run_dir = plan.write(tmp_path / 'r')
    tids = plan.train_ids
    for source, key in [(XGM_CTRL, 'beamPosition.ixPos'), (XGM_CTRL, 'location'),
                        (XGM_OUT, 'data.intensityTD'), (AGIPD0, 'image.data'),
                        (AGIPD0, 'image.cellId'), (AGIPD0, 'header.pulseCount'),
                        ('SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput', 'data.image.pixels'),
                        ('SPB_IRU_MOTORS/MOTOR/X', 'actualPosition')]:
        got_tids, got = read_key(run_dir, source, key)
        np.testing.assert_array_equal(np.unique(got_tids), tids)
        expected = plan.device(source).values(key, tids, source=source)
        np.testing.assert_array_equal(got, expected, err_msg=f'{source} {key}')
        assert got.dtype == expected.dtype
    # values are non-zero and depend on train, frame and position
    img = plan.device(AGIPD0).values('image.data', tids[:2])
    assert img.shape == (6, 2) + TINY and img.min() > 0
    assert len({img[i].tobytes() for i in range(6)}) == 6
    assert len(np.unique(img[0])) > 10
    ts = plan.device(XGM_CTRL).values('beamPosition.ixPos.timestamp', tids)
    assert ts.dtype == np.uint64 and (np.diff(ts.astype(np.int64)) == 10**8).all()


def test_index_consistent(tmp_path):
    run_dir = make_run(tmp_path / 'r', n_trains=9, devices=tiny_devices(), trains_per_file=4)
    for path in run_dir.iterdir():
        with h5py.File(path, 'r') as f:
            for source, group, first, count in file_index(f):
                assert (first[1:] == (first + count)[:-1]).all(), (path, source)
                base = f'INSTRUMENT/{source}/{group}' if group else f'CONTROL/{source}'
                datasets = _datasets(f[base])
                assert datasets
                for ds in datasets:
                    assert ds.shape[0] >= first[-1] + count[-1], (path, ds.name)


def _datasets(group):
    found = []
    group.visititems(lambda n, o: found.append(o) if isinstance(o, h5py.Dataset) else None)
    return found


def test_jungfrau_lpd_dssc_shapes():
    from exfel_data.testing import DSSC1M, JUNGFRAU, LPD1M
    jf = JUNGFRAU(cells=2, module_shape=(4, 8))
    assert [m.name for m in jf][0] == 'SPB_IRDA_JF4M/DET/JNGFR01:daqOutput'
    assert [m.aggregator for m in jf] == [f'JNGFR{i:02d}' for i in range(1, 9)]
    adc = jf[0].values('data.adc', [10000, 10001])
    assert adc.shape == (2, 2, 4, 8) and adc.dtype == np.uint16
    assert JUNGFRAU(raw=False, n_modules=1)[0].spec(
        'SPB_IRDA_JF4M/DET/JNGFR01:daqOutput').keys['data.adc'].dtype == np.float32
    lpd = LPD1M(frames_per_train=2)
    assert lpd[3].aggregator == 'LPD03' and lpd[3].name == 'FXE_DET_LPD1M-1/DET/3CH0:xtdf'
    assert lpd[0].spec(lpd[0].name).keys['image.data'].entry_shape == (1, 256, 256)
    dssc = DSSC1M(modules=[5])
    assert len(dssc) == 1 and dssc[0].aggregator == 'DSSC05'
    assert dssc[0].spec(dssc[0].name).keys['image.data'].entry_shape == (1, 128, 512)
    assert AGIPD1M()[15].spec(AGIPD1M()[15].name).keys['image.data'].entry_shape \
        == (2, 512, 128)


def test_refuses_to_mix_runs(tmp_path):
    devices = [Motor()]
    make_run(tmp_path / 'r', n_trains=4, devices=devices, run_number=1)
    with pytest.raises(FileExistsError, match='overwrite=True'):
        make_run(tmp_path / 'r', n_trains=4, devices=devices, run_number=2)
    make_run(tmp_path / 'r', n_trains=4, devices=devices, run_number=2, overwrite=True)
    assert [p.name for p in (tmp_path / 'r').iterdir()] == ['RAW-R0002-DA01-S00000.h5']


def test_default_devices_sizes():
    from exfel_data.testing import default_devices
    devs = default_devices()
    assert [d.aggregator for d in devs[:4]] == ['DA01', 'DA01', 'DA02', 'DA02']
    assert len(devs) == 4 + 16
    assert devs[4].spec(devs[4].name).keys['image.data'].entry_shape == (2, 512, 128)
    small = default_devices(frames_per_train=2, module_shape=(8, 4), camera_shape=(4, 4))
    assert small[4].frames_per_train == 2
    assert small[3].shape == (4, 4)


def test_proposal_layout(tmp_path):
    from exfel_data.testing import proposal_run_dir
    path = proposal_run_dir(tmp_path, 2712, 5, instrument='MID', cycle='202301', data='proc')
    assert path == tmp_path / 'MID' / '202301' / 'p002712' / 'proc' / 'r0005'
    run_dir = make_run(path, n_trains=2, devices=[Motor()], run_number=5, proposal=2712)
    assert [p.name for p in run_dir.iterdir()] == ['RAW-R0005-DA01-S00000.h5']
    with pytest.raises(ValueError, match='proc'):
        proposal_run_dir(tmp_path, data='processed')


def test_preset_frame_counts_change_every_module(tmp_path):
    det = AGIPD1M(frames_per_train=3, n_modules=2, module_shape=TINY, frame_counts={10001: 1})
    plan = RunPlan(n_trains=3, devices=det)
    run_dir = plan.write(tmp_path / 'r')
    for m in det:
        with h5py.File(run_dir / f'RAW-R0001-{m.aggregator}-S00000.h5', 'r') as f:
            assert f[f'INDEX/{m.name}/image/count'][:].tolist() == [3, 1, 3]
        tids, data = read_key(run_dir, m.name, 'image.data')
        np.testing.assert_array_equal(data, m.values('image.data', plan.train_ids))
        assert m.values('header.pulseCount', plan.train_ids).tolist() == [3, 1, 3]
