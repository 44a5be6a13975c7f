"""The low-level EXDF writer: block writes, index, errors, temporary files."""

import h5py
import numpy as np
import pytest

from exfel_data.write import ExdfWriteError, ExdfWriter, train_timestamps

SRC = 'SPB_DET_AGIPD1M-1/DET/0CH0:xtdf'
MOTOR = 'SPB_IRU_MOTORS/MOTOR/X'
TIDS = np.arange(10000, 10010, dtype=np.uint64)


def test_block_writes_and_index(tmp_path):
    path = tmp_path / 'RAW-R0001-AGIPD00-S00000.h5'
    counts = np.array([4, 4, 0, 4, 2, 4, 4, 4, 4, 4])
    data = np.arange(34 * 3 * 2, dtype=np.uint16).reshape(34, 3, 2)
    with ExdfWriter(path, TIDS, format_version='1.3', proposal=1234, sequence=3) as w:
        w.add_control_source(MOTOR)
        w.add_control_key(MOTOR, 'actualPosition', np.float64,
                          attrs={'unitSymbol': 'm', 'metricPrefixSymbol': 'm'})
        w.write(MOTOR, 'actualPosition', np.linspace(0, 1, 10))
        w.add_run_key(MOTOR, 'classId', 'SimulatedMotor')
        w.add_instrument_source(SRC, {'image': counts, 'header': 1})
        w.add_instrument_key(SRC, 'image.data', np.uint16, (3, 2), chunks=(1, 3, 2), rows=40)
        for start in range(0, 34, 8):     # rows in blocks
            w.write(SRC, 'image.data', data[start:start + 8], start)
        assert not path.exists()          # written under a temporary name
    with h5py.File(path, 'r') as f:
        assert f['INDEX/trainId'][:].tolist() == TIDS.tolist()
        np.testing.assert_array_equal(f['INDEX/timestamp'][:], train_timestamps(TIDS))
        assert f[f'INDEX/{SRC}/image/count'][:].tolist() == counts.tolist()
        assert f[f'INDEX/{SRC}/image/first'][:].tolist() == (np.cumsum(counts) - counts).tolist()
        assert f[f'INDEX/{SRC}/header/count'][:].tolist() == [1] * 10
        ds = f[f'INSTRUMENT/{SRC}/image/data']
        assert ds.shape == (40, 3, 2) and ds.chunks == (1, 3, 2)
        np.testing.assert_array_equal(ds[:34], data)
        assert f[f'INSTRUMENT/{SRC}/image/trainId'][:].tolist() == np.repeat(TIDS, counts).tolist()
        assert f[f'INSTRUMENT/{SRC}/header/trainId'][:].tolist() == TIDS.tolist()
        grp = f[f'CONTROL/{MOTOR}/actualPosition']
        assert grp.attrs['unitSymbol'] == 'm'
        np.testing.assert_array_equal(grp['value'][:], np.linspace(0, 1, 10))
        np.testing.assert_array_equal(grp['timestamp'][:], train_timestamps(TIDS))
        assert f[f'RUN/{MOTOR}/classId/value'][0] == b'SimulatedMotor'
        assert f['METADATA/proposalNumber'][0] == 1234
        assert f['METADATA/sequenceNumber'][0] == 3
        assert f['METADATA/dataSources/dataSourceId'][:].tolist() == [
            f'CONTROL/{MOTOR}'.encode(), f'INSTRUMENT/{SRC}/header'.encode(),
            f'INSTRUMENT/{SRC}/image'.encode()]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_errors_name_source_and_key(tmp_path):
    with ExdfWriter(tmp_path / 'a.h5', TIDS) as w:
        w.add_instrument_source(SRC, {'image': 2})
        w.add_instrument_key(SRC, 'image.data', np.float32, (4,))
        with pytest.raises(ExdfWriteError, match=r"'XGM' was not declared.*0CH0:xtdf"):
            w.write('XGM', 'data.x', np.zeros(3))
        with pytest.raises(ExdfWriteError, match="image.mask"):
            w.write(SRC, 'image.mask', np.zeros((3, 4)))
        with pytest.raises(ExdfWriteError, match=r"rows 18:22.*\(20, 4\)"):
            w.write(SRC, 'image.data', np.zeros((4, 4)), start=18)
        with pytest.raises(ExdfWriteError, match="index groups"):
            w.add_instrument_key(SRC, 'data.x', np.float32)
        with pytest.raises(ExdfWriteError, match="one entry per train"):
            w.add_control_source(MOTOR, counts=[1, 1])
        with pytest.raises(ExdfWriteError, match="already declared"):
            w.add_instrument_source(SRC, {'image': 1})
    with pytest.raises(ExdfWriteError, match="format version '2.0'"):
        ExdfWriter(tmp_path / 'b.h5', TIDS, format_version='2.0')


def test_exception_removes_temporary_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with ExdfWriter(tmp_path / 'a.h5', TIDS) as w:
            w.add_control_source(MOTOR)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_flags_padding_and_legacy_links(tmp_path):
    flags = np.ones(10, bool)
    flags[4] = False
    with ExdfWriter(tmp_path / 'a.h5', TIDS, format_version='1.2', flags=flags,
                    index_padding=2) as w:
        w.add_instrument_source('D/CORR/0CH0:output', {'image': 1}, legacy_name='D/DET/0CH0:xtdf')
        w.add_instrument_key('D/CORR/0CH0:output', 'image.data', np.float32)
    with h5py.File(tmp_path / 'a.h5', 'r') as f:
        assert f['INDEX/flag'][:].tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0]
        assert f['INDEX/origin'][:].tolist() == [-1] * 4 + [0] + [-1] * 5 + [0, 0]
        assert f['INDEX/trainId'][-2:].tolist() == [0, 0]
        assert f.get('INSTRUMENT/D/DET/0CH0:xtdf', getlink=True).path == \
            '/INSTRUMENT/D/CORR/0CH0:output'
        assert f['INDEX/D/DET/0CH0:xtdf/image/count'].shape == (12,)


def test_run_only_source(tmp_path):
    with ExdfWriter(tmp_path / 'a.h5', TIDS, format_version='1.0') as w:
        w.add_run_key('SYS/MDL/INFO', 'sample', 'lysozyme')
        w.add_run_key('SYS/MDL/INFO', 'energy', np.float32(9.3))
        with pytest.raises(ExdfWriteError, match="already written"):
            w.add_run_key('SYS/MDL/INFO', 'energy', 1.0)
        w.add_run_key(MOTOR, 'classId', 'Motor')       # RUN keys first, then the data
        w.add_control_source(MOTOR)
    with h5py.File(tmp_path / 'a.h5', 'r') as f:
        assert f['METADATA/dataSources/dataSourceId'][:].tolist() == [
            f'CONTROL/{MOTOR}'.encode(), b'CONTROL/SYS/MDL/INFO']
        assert f['INDEX/SYS/MDL/INFO/count'][:].tolist() == [0] * 10
        assert f[f'INDEX/{MOTOR}/count'][:].tolist() == [1] * 10
        assert f['RUN/SYS/MDL/INFO/energy/value'].dtype == np.float32


def test_strings_are_stored_as_vlen_bytes(tmp_path):
    from exfel_data.write.exdf_writer import STRING_DTYPE
    with ExdfWriter(tmp_path / 'a.h5', TIDS[:3]) as w:
        w.add_control_source(MOTOR)
        w.add_control_key(MOTOR, 'state', STRING_DTYPE)
        w.write(MOTOR, 'state', ['ON', b'MOVING', 'd\u00e9j\u00e0'])
        w.add_run_key(MOTOR, 'names', ['x', 'y'])
    with h5py.File(tmp_path / 'a.h5', 'r') as f:
        assert f[f'CONTROL/{MOTOR}/state/value'][:].tolist() == [
            b'ON', b'MOVING', 'd\u00e9j\u00e0'.encode()]
        assert f[f'RUN/{MOTOR}/names/value'].shape == (1, 2)
