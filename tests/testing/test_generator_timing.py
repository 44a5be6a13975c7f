"""Generated XGM pulse energies and timeserver bunch pattern, read back by the real peers."""

import extra_data
import numpy as np
import pytest
from euxfel_bunch_pattern import indices_at_sase

from exfel_data.testing import XGM, Timeserver, bunch_pattern_table, make_run

XGM_NAME = 'SA1_XTD2_XGM/XGM/DOOCS'
TS_NAME = 'SPB_RR_SYS/TSYS/TIMESERVER'


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    pulses = {1: [100, 104, 108], 2: [500, 501], 3: [900]}
    path = make_run(tmp_path_factory.mktemp('timing') / 'r0001', n_trains=4,
                    devices=[XGM(pulses=3, n_samples=50), Timeserver(pulses=pulses, length=2700)])
    return path


def test_bunch_pattern_decodes_to_the_pulse_ids(run_dir):
    run = extra_data.RunDirectory(str(run_dir))
    tables = run[f'{TS_NAME}:outputBunchPattern', 'data.bunchPatternTable'].ndarray()
    assert tables.shape == (4, 2700) and tables.dtype == np.uint32
    for table in tables:   # decoded by the facility's own bit definitions
        assert indices_at_sase(table, 1).tolist() == [100, 104, 108]
        assert indices_at_sase(table, 2).tolist() == [500, 501]
        assert indices_at_sase(table, 3).tolist() == [900]
    np.testing.assert_array_equal(run[TS_NAME, 'bunchPatternTable'].ndarray(), tables)
    assert run.get_run_value(TS_NAME, 'classId') == 'TimeServer'


def test_xgm_pulse_layout(run_dir):
    run = extra_data.RunDirectory(str(run_dir))
    energy = run[f'{XGM_NAME}:output', 'data.intensityTD'].ndarray()
    tids = np.asarray(run.train_ids)
    expected = 500.0 + 2.0 * (tids.astype(np.int64) % 97)[:, None] + 0.5 * np.arange(3)
    np.testing.assert_array_equal(energy[:, :3], expected.astype(np.float32))
    assert (energy[:, 3:] == 1.0).all()   # the XGM's "no pulse" value
    np.testing.assert_array_equal(XGM.pulse_energies(tids, 3), energy[:, :3])
    sa1 = run[f'{XGM_NAME}:output', 'data.intensitySa1TD'].ndarray()
    np.testing.assert_array_equal(sa1[:, :3], expected.astype(np.float32) + 100)
    assert (run[XGM_NAME, 'pulseEnergy.numberOfBunchesActual'].ndarray() == 3).all()


def test_bad_patterns_are_refused():
    with pytest.raises(ValueError, match='SASE 4 unknown'):
        bunch_pattern_table({4: [1]})
    with pytest.raises(ValueError, match='SASE 1 pulse IDs 10..5000 do not fit a table of 4096'):
        bunch_pattern_table({1: [10, 5000]})
    with pytest.raises(ValueError, match='SASE 3 pulse IDs overlap'):
        Timeserver(pulses={1: [10, 12], 3: [12]})
    with pytest.raises(ValueError, match=r'pulses=20 must be in 0..n_samples \(10\)'):
        XGM(pulses=20, n_samples=10)
