"""Differential check: the installed extra-data reads our runs as we meant them."""

import numpy as np
import pytest

from exfel_data.testing import AGIPD1M, XGM, Motor, RunPlan

extra_data = pytest.importorskip('extra_data')

AGIPD3 = 'SPB_DET_AGIPD1M-1/DET/3CH0:xtdf'
XGM_CTRL = 'SA1_XTD2_XGM/XGM/DOOCS'
XGM_OUT = 'SA1_XTD2_XGM/XGM/DOOCS:output'


@pytest.mark.parametrize('version', ['1.0', '1.2', '1.3'])
def test_extra_data_reads_our_run(tmp_path, version):
    devices = [XGM(n_samples=40), Motor(),
               *AGIPD1M(frames_per_train=2, modules=[0, 3], module_shape=(16, 8))]
    plan = RunPlan(n_trains=15, format_version=version, devices=devices, trains_per_file=6)
    run = extra_data.RunDirectory(plan.write(tmp_path / 'r'))
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
    run = extra_data.RunDirectory(plan.write(tmp_path / 'r'))
    new = 'SPB_DET_AGIPD1M-1/CORR/1CH0:output'
    assert new in run.instrument_sources
    got = run[new, 'image.data'].ndarray()
    np.testing.assert_array_equal(got, plan.device(new).values('image.data', plan.train_ids))
    # the old name still resolves (extra-data warns that it is deprecated)
    with pytest.warns(DeprecationWarning):
        old = run['SPB_DET_AGIPD1M-1/DET/1CH0:xtdf', 'image.mask'].ndarray()
    np.testing.assert_array_equal(old, plan.device(new).values('image.mask', plan.train_ids))
