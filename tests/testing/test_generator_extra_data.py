"""Differential check: the installed extra-data reads our runs as we meant them."""

import extra_data
import h5py
import numpy as np
import pytest

from exfel_data.testing import AGIPD1M, XGM, Motor, RunPlan

AGIPD3 = 'SPB_DET_AGIPD1M-1/DET/3CH0:xtdf'
XGM_CTRL = 'SA1_XTD2_XGM/XGM/DOOCS'
XGM_OUT = 'SA1_XTD2_XGM/XGM/DOOCS:output'


@pytest.mark.filterwarnings('ignore:Train validation is not fully supported')
@pytest.mark.parametrize('version', ['1.0', '1.1', '1.2', '1.3'])
def test_extra_data_reads_our_run(tmp_path, version):
    devices = [XGM(n_samples=40), Motor(),
               *AGIPD1M(frames_per_train=2, modules=[0, 3], module_shape=(16, 8))]
    plan = RunPlan(n_trains=15, format_version=version, devices=devices, trains_per_file=6)
    run = extra_data.RunDirectory(plan.write(tmp_path / 'r'), parallelize=False)
    np.testing.assert_array_equal(run.train_ids, plan.train_ids)
    assert run.all_sources == set(plan.sources)
    assert run.instrument_sources == {XGM_OUT, AGIPD3, 'SPB_DET_AGIPD1M-1/DET/0CH0:xtdf'}
    xgm = plan.device(XGM_CTRL)
    assert run[XGM_OUT].keys() == set(xgm.keys(XGM_OUT))
    ctrl_keys = {k + s for k in xgm.keys(XGM_CTRL) for s in ('.value', '.timestamp')}
    assert run[XGM_CTRL].keys() == ctrl_keys
    tids = plan.train_ids
    for source, key in [(XGM_OUT, 'data.intensityTD'), (XGM_CTRL, 'pulseEnergy.photonFlux'),
                        (XGM_CTRL, 'beamPosition.ixPos.timestamp'), (AGIPD3, 'image.data'),
                        (AGIPD3, 'image.pulseId'), (AGIPD3, 'header.pulseCount')]:
        got = run[source, key].ndarray()
        np.testing.assert_array_equal(got, plan.device(source).values(key, tids), key)
    assert run[AGIPD3, 'image.data'].data_counts(labelled=False).tolist() == [2] * 15
    assert run.get_run_value(XGM_CTRL, 'classId') == 'DoocsXGM'
    # a train in the middle, through the train-dict path
    tid, data = run.select_trains(extra_data.by_id[[int(tids[7])]]).train_from_index(0)
    assert tid == tids[7]
    np.testing.assert_array_equal(data[AGIPD3]['image.cellId'][:, 0], [1, 2])
    assert data[XGM_CTRL]['location.value'] == b'SASE1 XTD2'


def test_extra_data_corrected_legacy_names(tmp_path):
    devices = AGIPD1M(raw=False, frames_per_train=2, n_modules=2, module_shape=(16, 8),
                      corrected_naming='output+links')
    plan = RunPlan(n_trains=4, devices=devices)
    run = extra_data.RunDirectory(plan.write(tmp_path / 'r'), parallelize=False)
    new = 'SPB_DET_AGIPD1M-1/CORR/1CH0:output'
    assert new in run.instrument_sources
    got = run[new, 'image.data'].ndarray()
    np.testing.assert_array_equal(got, plan.device(new).values('image.data', plan.train_ids))
    # the old name still resolves (extra-data warns that it is deprecated)
    with pytest.warns(DeprecationWarning):
        old = run['SPB_DET_AGIPD1M-1/DET/1CH0:xtdf', 'image.mask'].ndarray()
    np.testing.assert_array_equal(old, plan.device(new).values('image.mask', plan.train_ids))


@pytest.mark.parametrize('version', ['0.5', '1.3'])
def test_extra_data_handles_our_defects(tmp_path, version):
    from exfel_data.testing import OldIndexLayout, RogueTrainId, TrailingZeros, TruncatedFile

    devices = [XGM(n_samples=10), Motor(), Motor('M/Y', aggregator='DA02')]
    rogue, trunc = RogueTrainId(sequence=1), TruncatedFile('DA02', 0)
    plan = RunPlan(n_trains=12, devices=devices, trains_per_file=6, format_version=version,
                   defects=[TrailingZeros(2), rogue, trunc]
                   + ([OldIndexLayout()] if version == '0.5' else []))
    run_dir = plan.write(tmp_path / 'r')
    # extra-data skips the truncated file and by default keeps suspect trains
    run = extra_data.RunDirectory(run_dir, parallelize=False)
    assert set(run.train_ids) == set(plan.train_ids) | set(plan.affected_train_ids(rogue))
    # the rogue ID is flagged (1.3) or guessed (0.5) away; zeros are padding
    run = extra_data.RunDirectory(run_dir, inc_suspect_trains=False, parallelize=False)
    np.testing.assert_array_equal(run.train_ids, plan.train_ids)
    # the truncated DA02 file held the second motor's first 3 trains
    counts = run['M/Y', 'actualPosition'].data_counts(labelled=False)
    assert counts.tolist() == [0] * 3 + [1] * 9


def _presets():
    from exfel_data.testing import DSSC1M, JUNGFRAU, LPD1M
    small = dict(frames_per_train=2, n_modules=2, module_shape=(16, 8))
    return [
        ('AGIPD1M', lambda: AGIPD1M(raw=False, corrected_naming='output', **small), False),
        ('LPD1M', lambda: LPD1M(**small), True),
        ('DSSC1M', lambda: DSSC1M(**small), True),
        ('JUNGFRAU', lambda: JUNGFRAU(cells=2, n_modules=2, module_shape=(16, 8)), True),
    ]


@pytest.mark.parametrize('cls_name, make, raw', _presets(), ids=[p[0] for p in _presets()])
def test_extra_data_detector_components(tmp_path, cls_name, make, raw):
    from extra_data import components

    modules = make()
    plan = RunPlan(n_trains=3, devices=modules)
    run = extra_data.RunDirectory(plan.write(tmp_path / 'r'), parallelize=False)
    det = getattr(components, cls_name)(run, raw=raw)
    assert det.detector_name == modules.name
    key = 'data.adc' if cls_name == 'JUNGFRAU' else 'image.data'
    arr = det[key].ndarray()
    for i, mod in enumerate(modules):
        expected = mod.values(key, plan.train_ids)
        if raw and key == 'image.data':
            expected = expected[:, 0]       # extra-data drops the single gain plane
        got = arr[i].reshape(expected.shape)
        np.testing.assert_array_equal(got, expected)


def test_extra_data_reads_reduction_section(tmp_path):
    from exfel_data.testing import LitFrameFinder

    plan = RunPlan(n_trains=5, devices=[Motor(), LitFrameFinder(n_cells=8)])
    run_dir = plan.write(tmp_path / 'r')
    src = 'SPB_DET_AGIPD1M-1/REDU/LITFRM:daqFilter'
    with h5py.File(run_dir / 'RAW-R0001-DA01-S00000.h5', 'r') as f:
        assert f['METADATA/auxiliarySources/REDUCTION'][:].tolist() == [
            f'REDUCTION/{src}/data'.encode()]
        assert f'INSTRUMENT/{src}' not in f
        assert f'REDUCTION/{src}/data/trainId' not in f
    run = extra_data.RunDirectory(run_dir, parallelize=False)
    assert run.all_sources == {'SPB_IRU_MOTORS/MOTOR/X'}
    got = run.auxiliary[f'DA01@{src}']['data.dataFramePattern'].ndarray()
    np.testing.assert_array_equal(
        got, plan.device(src).values('data.dataFramePattern', plan.train_ids))
    assert got[0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]


def test_extra_data_digitizer_and_run_only_source(tmp_path):
    from exfel_data.testing import Digitizer, RunOnlySource

    info = 'SPB_RR_SYS/MDL/RUN_INFO'
    adc = 'SQS_DIGITIZER_UTC1/ADC/1:output'
    plan = RunPlan(n_trains=4, devices=[Digitizer(n_samples=30), RunOnlySource(info)])
    run_dir = plan.write(tmp_path / 'r')
    with h5py.File(run_dir / 'RAW-R0001-DA01-S00000.h5', 'r') as f:
        assert f[f'INDEX/{info}/count'][:].tolist() == [0] * 4
        assert len(f[f'CONTROL/{info}']) == 0
        assert f[f'RUN/{info}/sample/value'][0] == b'lysozyme'
    run = extra_data.RunDirectory(run_dir, parallelize=False)
    assert info in run.control_sources
    assert run[info].keys() == set()
    assert run.get_run_value(info, 'sample') == 'lysozyme'
    assert run.get_run_value(info, 'photonEnergy') == 9.3
    got = run[adc, 'data.rawData'].ndarray()
    assert got.dtype == np.int16 and got.shape == (4, 30)
    np.testing.assert_array_equal(got, plan.device(adc).values('data.rawData', plan.train_ids))
