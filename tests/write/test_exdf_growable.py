"""ExdfWriter for data arriving train by train: growable keys and append_trains."""
import h5py
import numpy as np
import pytest

import exfel_data
from exfel_data.validation import validate_run
from exfel_data.write.exdf_writer import ExdfWriteError, ExdfWriter

CAM = 'SPB_CAM/CAM/X:output'
MOTOR = 'SPB_MOTOR/MDL/Y'


def test_append_trains_growable_keys_and_a_late_source(tmp_path):
    images = np.random.default_rng(0).random((5, 256, 256)).astype(np.float32)  # raw chunks
    path = tmp_path / 'run' / 'RAW-R0001-DA01-S00000.h5'
    w = ExdfWriter(path, np.zeros(0, np.uint64))
    w.add_instrument_source(CAM, {'data': 0})
    w.add_instrument_key(CAM, 'data.image', np.float32, (256, 256), growable=True,
                         chunks=(1, 256, 256))
    w.add_instrument_key(CAM, 'data.n', np.int64, (), growable=True)
    w.append_trains([10, 11, 12], counts={CAM: {'data': 1}})
    w.write(CAM, 'data.image', images[:3], 0)
    w.write(CAM, 'data.n', [0, 1, 2], 0)
    # a source appearing after three trains; the camera misses train 13
    w.add_control_source(MOTOR, counts=0)
    w.add_control_key(MOTOR, 'position', np.float64, growable=True)
    w.append_trains([13, 14], counts={CAM: {'data': [0, 1]}, MOTOR: 1})
    w.write(CAM, 'data.image', images[3:4], 3)
    w.write(CAM, 'data.n', [4], 3)
    w.write(MOTOR, 'position', [1.5, 2.5], 0)
    w.write(MOTOR, 'position.timestamp', np.array([7, 8], np.uint64), 0)
    w.close()

    assert [str(p) for p in validate_run(path.parent)] == []
    with h5py.File(path) as f:
        assert f[f'INSTRUMENT/{CAM}/data/image'].shape == (4, 256, 256)
        np.testing.assert_array_equal(f[f'INDEX/{CAM}/data/count'][:], [1, 1, 1, 0, 1])
        np.testing.assert_array_equal(f[f'INDEX/{MOTOR}/count'][:], [0, 0, 0, 1, 1])
    run = exfel_data.RunDirectory(path.parent)
    assert run.train_ids == [10, 11, 12, 13, 14]
    got = run[CAM, 'data.image'].ndarray()
    np.testing.assert_array_equal(got, images[:4])
    assert run[CAM, 'data.n'].ndarray().tolist() == [0, 1, 2, 4]
    assert run[MOTOR, 'position'].ndarray().tolist() == [1.5, 2.5]
    assert run[MOTOR, 'position.timestamp'].ndarray().tolist() == [7, 8]


def test_append_trains_errors(tmp_path):
    w = ExdfWriter(tmp_path / 'x.h5', [])
    w.add_control_source(MOTOR, counts=0)
    with pytest.raises(ExdfWriteError, match=r"Sources \['NOPE'\] were not declared in x.h5"):
        w.append_trains([1], counts={'NOPE': 1})
    with pytest.raises(ExdfWriteError, match='2 train IDs but 1 timestamps'):
        w.append_trains([1, 2], timestamps=[5])
    w.abort()
    assert not list(tmp_path.iterdir())
