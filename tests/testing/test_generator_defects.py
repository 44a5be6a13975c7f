"""Each defect writes exactly what its docstring says."""

import h5py
import numpy as np
import pytest
from gen_h5_helpers import read_key

from exfel_data.testing import (
    AGIPD1M,
    STRUCTURED_DTYPE,
    XGM,
    EmptySource,
    FrameCountMismatch,
    MissingTrains,
    Motor,
    OldIndexLayout,
    OverlappingSequences,
    PaddedSourceList,
    RepeatedTrainId,
    RogueTrainId,
    RunPlan,
    SourceGaps,
    StructuredKey,
    TrailingZeros,
    TruncatedFile,
    VlenStringKey,
    ZeroTrainId,
)

XGM_CTRL = 'SA1_XTD2_XGM/XGM/DOOCS'
XGM_OUT = 'SA1_XTD2_XGM/XGM/DOOCS:output'


def devices():
    return [XGM(n_samples=20), Motor(), Motor('SPB_IRU_MOTORS/MOTOR/Y', aggregator='DA02'),
            *AGIPD1M(frames_per_train=4, modules=[2, 3, 5], module_shape=(8, 4))]


def plan_with(tmp_path, *defects, version='1.3', **kw):
    plan = RunPlan(n_trains=12, devices=devices(), trains_per_file=6, defects=defects,
                   format_version=version, **kw)
    return plan, plan.write(tmp_path / 'r')


def index(run_dir, name, path='INDEX/trainId'):
    with h5py.File(run_dir / name, 'r') as f:
        return f[path][:] if path in f else None


def test_trailing_zeros(tmp_path):
    d = TrailingZeros(n=3, aggregator='DA01')
    plan, run_dir = plan_with(tmp_path, d)
    tids = index(run_dir, 'RAW-R0001-DA01-S00000.h5')
    assert tids.tolist() == list(range(10000, 10006)) + [0, 0, 0]
    assert index(run_dir, 'RAW-R0001-DA01-S00000.h5', f'INDEX/{XGM_CTRL}/count').tolist() \
        == [1] * 6 + [0] * 3
    assert index(run_dir, 'RAW-R0001-DA01-S00000.h5', 'INDEX/flag')[6:].tolist() == [0] * 3
    assert len(index(run_dir, 'RAW-R0001-DA02-S00000.h5')) == 3   # other aggregators intact
    assert plan.affected_train_ids(d).size == 0


@pytest.mark.parametrize('version', ['0.5', '1.0', '1.1', '1.3'])
def test_rogue_train_id(tmp_path, version):
    d = RogueTrainId(aggregator='DA01', sequence=1, position=2)
    plan, run_dir = plan_with(tmp_path, d, version=version)
    rogue = 10011 + 1_000_000
    assert plan.affected_train_ids(d).tolist() == [rogue]
    name = 'RAW-R0001-DA01-S00001.h5'
    assert plan.defect_log[0].files == [name]
    assert index(run_dir, name).tolist() == [10006, 10007, rogue, 10008, 10009, 10010, 10011]
    flag = index(run_dir, name, 'INDEX/flag')
    if version == '0.5':
        assert flag is None
    elif version == '1.1':
        assert flag.tolist() == [0, 0, 1, 0, 0, 0, 0]
    else:
        assert flag.tolist() == [1, 1, 0, 1, 1, 1, 1]
    if version == '1.3':
        assert index(run_dir, name, 'INDEX/origin').tolist() == [-1, -1, 0, -1, -1, -1, -1]
    tids, vals = read_key(run_dir, XGM_CTRL, 'beamPosition.ixPos')
    assert rogue in tids
    expected = plan.device(XGM_CTRL).values('beamPosition.ixPos', tids)
    np.testing.assert_array_equal(vals, expected)


def test_repeated_train_id(tmp_path):
    d = RepeatedTrainId(aggregator='DA01', sequence=0, position=3)
    plan, run_dir = plan_with(tmp_path, d)
    assert plan.affected_train_ids(d).tolist() == [10003]
    name = 'RAW-R0001-DA01-S00000.h5'
    assert index(run_dir, name).tolist() == [10000, 10001, 10002, 10003, 10003, 10004, 10005]
    assert index(run_dir, name, 'INDEX/flag').tolist() == [1, 1, 1, 1, 0, 1, 1]
    tids, _ = read_key(run_dir, XGM_OUT, 'data.intensityTD')
    assert (tids == 10003).sum() == 2


def test_missing_trains(tmp_path):
    d = MissingTrains(aggregator='AGIPD03', positions=(1, 2))
    plan, run_dir = plan_with(tmp_path, d)
    assert plan.affected_train_ids(d).tolist() == [10001, 10002]
    assert plan.defect_log[0].files == ['RAW-R0001-AGIPD03-S00000.h5']
    assert 10001 not in index(run_dir, 'RAW-R0001-AGIPD03-S00000.h5')
    assert 10001 in index(run_dir, 'RAW-R0001-AGIPD02-S00000.h5')
    tids, data = read_key(run_dir, 'SPB_DET_AGIPD1M-1/DET/3CH0:xtdf', 'image.data')
    assert set(np.unique(tids)) == set(range(10000, 10012)) - {10001, 10002}


def test_frame_count_mismatch(tmp_path):
    d = FrameCountMismatch(aggregator='AGIPD05', positions=(3, 7))
    plan, run_dir = plan_with(tmp_path, d)
    src = 'SPB_DET_AGIPD1M-1/DET/5CH0:xtdf'
    assert plan.affected_train_ids(d).tolist() == [10003, 10007]
    assert 'RAW-R0001-AGIPD05-S00001.h5' in plan.defect_log[0].files
    counts = index(run_dir, 'RAW-R0001-AGIPD05-S00000.h5', f'INDEX/{src}/image/count')
    assert counts.tolist() == [4, 4, 4, 2, 4, 4]
    tids, data = read_key(run_dir, src, 'image.data')
    np.testing.assert_array_equal(data, plan.device(src).values('image.data', plan.train_ids))
    assert plan.device(src).values('header.pulseCount', [10003]).tolist() == [2]


def test_truncated_file(tmp_path):
    d = TruncatedFile(aggregator='DA02', sequence=1)
    plan, run_dir = plan_with(tmp_path, d)
    assert plan.affected_train_ids(d).tolist() == list(range(10003, 10009))
    with pytest.raises(OSError):
        h5py.File(run_dir / 'RAW-R0001-DA02-S00001.h5', 'r')
    h5py.File(run_dir / 'RAW-R0001-DA02-S00000.h5', 'r').close()


def test_empty_source(tmp_path):
    d = EmptySource(XGM_OUT)
    plan, run_dir = plan_with(tmp_path, d)
    with h5py.File(run_dir / 'RAW-R0001-DA01-S00001.h5', 'r') as f:
        assert f'INSTRUMENT/{XGM_OUT}/data' in [
            s.decode() for s in f['METADATA/dataSources/dataSourceId'][:]]
        assert (f[f'INDEX/{XGM_OUT}/data/count'][:] == 0).all()
        assert f[f'INSTRUMENT/{XGM_OUT}/data/intensityTD'].shape == (0, 20)
        assert (f[f'INDEX/{XGM_CTRL}/count'][:] == 1).all()
    assert plan.affected_train_ids(d).tolist() == list(range(10000, 10012))


def test_overlapping_sequences(tmp_path):
    d = OverlappingSequences(aggregator='DA01', sequence=0)
    plan, run_dir = plan_with(tmp_path, d)
    assert plan.defect_log[0].files == ['RAW-R0001-DA01-S00000.h5', 'RAW-R0001-DA01-S00001.h5']
    assert index(run_dir, 'RAW-R0001-DA01-S00001.h5')[:2].tolist() == [10005, 10006]
    assert plan.affected_train_ids(d).tolist() == [10005]


def test_vlen_and_structured_keys(tmp_path):
    plan, run_dir = plan_with(tmp_path, VlenStringKey(), StructuredKey(n=3))
    tids, msgs = read_key(run_dir, XGM_CTRL, 'status.message')
    assert msgs[0] == b'train 10000'
    np.testing.assert_array_equal(msgs, plan.device(XGM_CTRL).values('status.message', tids))
    tids, peaks = read_key(run_dir, XGM_OUT, 'data.peaks')
    assert peaks.dtype == STRUCTURED_DTYPE and peaks.shape == (12, 3)
    np.testing.assert_array_equal(peaks, plan.device(XGM_OUT).values('data.peaks', tids))
    with h5py.File(run_dir / 'RAW-R0001-DA01-S00000.h5', 'r') as f:
        assert h5py.check_string_dtype(
            f[f'CONTROL/{XGM_CTRL}/status/message/value'].dtype) is not None


def test_padded_source_list_and_old_index(tmp_path):
    plan, run_dir = plan_with(tmp_path, PaddedSourceList(2), OldIndexLayout(), version='0.5')
    with h5py.File(run_dir / 'RAW-R0001-DA01-S00000.h5', 'r') as f:
        assert f['METADATA/dataSourceId'][-2:].tolist() == [b'', b'']
        ix = f[f'INDEX/{XGM_OUT}/data']
        assert set(ix) == {'first', 'last', 'status'}
        assert ix['last'][:3].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match='0.5'):
        RunPlan(devices=devices(), defects=[OldIndexLayout()])


@pytest.mark.parametrize('version', ['0.5', '1.1', '1.2'])
def test_zero_train_id(tmp_path, version):
    d = ZeroTrainId(aggregator='DA02', sequence=1, position=2)
    plan, run_dir = plan_with(tmp_path, d, version=version)
    assert plan.affected_train_ids(d).tolist() == [10005]
    name = 'RAW-R0001-DA02-S00001.h5'
    assert index(run_dir, name).tolist() == [10003, 10004, 0, 10006, 10007, 10008]
    flag = index(run_dir, name, 'INDEX/flag')
    if version == '0.5':
        assert flag is None
    else:
        assert flag[2] == (1 if version == '1.1' else 0)
    motor = 'SPB_IRU_MOTORS/MOTOR/Y'
    assert index(run_dir, name, f'INDEX/{motor}/count').tolist() == [1] * 6
    tids, vals = read_key(run_dir, motor, 'actualPosition')
    np.testing.assert_array_equal(vals, plan.device(motor).values('actualPosition', tids))


def test_source_gaps(tmp_path):
    d = SourceGaps('SPB_IRU_MOTORS/MOTOR/X', positions=(4, 5, 6))
    plan, run_dir = plan_with(tmp_path, d)
    assert plan.affected_train_ids(d).tolist() == [10004, 10005, 10006]
    assert plan.defect_log[0].files == ['RAW-R0001-DA01-S00000.h5', 'RAW-R0001-DA01-S00001.h5']
    name = 'RAW-R0001-DA01-S00000.h5'
    assert index(run_dir, name).tolist() == list(range(10000, 10006))
    assert index(run_dir, name, 'INDEX/SPB_IRU_MOTORS/MOTOR/X/count').tolist() \
        == [1, 1, 1, 1, 0, 0]
    assert index(run_dir, name, f'INDEX/{XGM_CTRL}/count').tolist() == [1] * 6
    tids, vals = read_key(run_dir, 'SPB_IRU_MOTORS/MOTOR/X', 'actualPosition')
    assert tids.tolist() == [t for t in range(10000, 10012) if t not in (10004, 10005, 10006)]


def test_missing_trains_everywhere_makes_gaps(tmp_path):
    d = MissingTrains(aggregator=None, positions=(0, 6))
    plan, run_dir = plan_with(tmp_path, d)
    assert len(plan.defect_log[0].files) == 10    # 3 modules x 2, DA01 x 2, DA02 2 of 3
    for path in run_dir.iterdir():
        tids = index(run_dir, path.name)
        assert 10000 not in tids and 10006 not in tids


def test_plan_valid_and_source_train_ids(tmp_path):
    plan, run_dir = plan_with(tmp_path, RogueTrainId(), ZeroTrainId('DA02', 1, 0),
                              MissingTrains('AGIPD03', (1, 2)), TruncatedFile('DA02', 2),
                              SourceGaps('SPB_IRU_MOTORS/MOTOR/X', (4,)))
    np.testing.assert_array_equal(plan.valid_train_ids(), plan.train_ids)
    assert plan.source_train_ids('SPB_IRU_MOTORS/MOTOR/X').tolist() == \
        [t for t in range(10000, 10012) if t != 10004]
    assert plan.source_train_ids('SPB_DET_AGIPD1M-1/DET/3CH0:xtdf').tolist() == \
        [t for t in range(10000, 10012) if t not in (10001, 10002)]
    # DA02: S00001 lost 10003 to a zero, S00002 (10009..10011) is truncated
    assert plan.source_train_ids('SPB_IRU_MOTORS/MOTOR/Y').tolist() == \
        [10000, 10001, 10002] + list(range(10004, 10009))
    assert plan.source_train_ids('SPB_IRU_MOTORS/MOTOR/Y', include_unreadable=True)[-1] \
        == 10011
