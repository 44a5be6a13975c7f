"""extra-data's by_id / by_index (as EXtra passes them) select the same as ours."""

import extra_data
import numpy as np
import pytest

from exfel_data import RunDirectory, by_id, by_index
from exfel_data.detectors.frames import normalise_pulses
from exfel_data.testing import XGM, make_run


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return RunDirectory(make_run(tmp_path_factory.mktemp('sel') / 'r0001', n_trains=6,
                                 devices=[XGM(n_samples=4)]))


@pytest.mark.parametrize('ours, peers', [
    (by_id[[10001, 10004]], extra_data.by_id[[10001, 10004]]),
    (by_id[10002:10005], extra_data.by_id[10002:10005]),
    (by_index[1:6:2], extra_data.by_index[1:6:2]),
    (by_index[[0, 5]], extra_data.by_index[[0, 5]]),
])
def test_peer_selectors(run, ours, peers):
    assert run.select_trains(peers).train_ids == run.select_trains(ours).train_ids
    src = run['SA1_XTD2_XGM/XGM/DOOCS:output']
    np.testing.assert_array_equal(src.select_trains(peers)['data.intensityTD'].ndarray(),
                                  src.select_trains(ours)['data.intensityTD'].ndarray())


def test_peer_selector_missing_train_named(run):
    with pytest.raises(Exception, match='10042'):
        run.select_trains(extra_data.by_id[[10042]])


def test_peer_pulse_selectors():
    peer = normalise_pulses(extra_data.by_id[[16, 20]])
    assert peer.kind == 'id' and peer.value.tolist() == [16, 20]
    peer = normalise_pulses(extra_data.by_index[:3])
    assert peer.kind == 'index' and peer.value == slice(None, 3)
