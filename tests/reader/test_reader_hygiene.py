"""Train ID hygiene: padding, corrupt rows, suspect trains, duplicates, old layouts."""

import os
import warnings

import h5py
import numpy as np
import pytest
from reader_exdf import write_exdf

import exfel_data as ed

XGM = "SA1_XTD2_XGM/DOOCS/MAIN"
OUT = "SA1_XTD2_XGM/DOOCS/MAIN:output"


def _one_source_file(path, tids, **kw):
    n = len(tids)
    write_exdf(path, tids, control={XGM: {"pos/x": np.arange(n, dtype=np.float64)}},
               instrument={OUT: {"data": (np.ones(n, int),
                                          {"intensity": np.arange(n * 3.).reshape(n, 3)})}},
               **kw)


def test_trailing_zeros_dropped(tmp_path):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    _one_source_file(p, np.arange(100, 110), pad=6)
    run = ed.H5File(p)
    np.testing.assert_array_equal(run.train_ids, np.arange(100, 110))
    np.testing.assert_array_equal(run[XGM, "pos/x".replace("/", ".")].ndarray(), np.arange(10.))


def test_zero_in_middle_is_corrupt_row(tmp_path):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    tids = np.arange(100, 110)
    tids[4] = 0
    _one_source_file(p, tids)
    with pytest.warns(UserWarning, match="train ID 0"):
        run = ed.H5File(p)
    assert 0 not in run.train_ids
    assert len(run.train_ids) == 9
    kd = run[XGM, "pos.x"]
    np.testing.assert_array_equal(kd.ndarray(), [0, 1, 2, 3, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(kd.train_id_coordinates(), np.delete(np.arange(100, 110), 4))
    got = [(t, d[XGM]["pos.x.value"]) for t, d in run.trains()]
    assert got[4] == (105, 5.0)


@pytest.mark.parametrize("version", ["1.0", "1.2", "1.3"])
def test_flag_zero_is_suspect(tmp_path, version):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    tids = np.arange(100, 110)
    tids[3] = 900  # rogue ID from a device
    flag = np.ones(10)
    flag[3] = 0
    origin = np.full(10, -1) if version >= "1.2" else None
    if origin is not None:
        origin[3] = 1  # index in dataSourceId: the instrument source
    _one_source_file(p, tids, version=version, flag=flag, origin=origin)
    with pytest.warns(UserWarning, match="1 suspect train ID.*included"):
        run = ed.H5File(p)
    assert 900 in run.train_ids
    (s,) = run.suspect_trains
    assert (os.path.basename(s.file), s.row, s.train_id) == (p.name, 3, 900)
    if version >= "1.2":
        assert s.origin == OUT
    with pytest.warns(UserWarning, match="skipped"):
        strict = ed.H5File(p, inc_suspect_trains=False)
    assert 900 not in strict.train_ids and len(strict.train_ids) == 9
    np.testing.assert_array_equal(strict[XGM, "pos.x"].ndarray(), np.delete(np.arange(10.), 3))
    assert [t for t, _ in strict.trains()] == strict.train_ids.tolist()
    # included: the rogue train is sorted to the end, its value comes along
    np.testing.assert_array_equal(run[XGM, "pos.x"].select_trains(ed.by_id[[900]]).ndarray(),
                                  [3.0])


def test_format_11_flag_inverted_and_timeserver_ignored(tmp_path):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    tids = np.arange(100, 110)
    flag = np.zeros(10)
    flag[2] = 3  # in 1.1 non-zero marks a train not from the time server
    _one_source_file(p, tids, version="1.1", flag=flag, timeserver=True)
    with pytest.warns(UserWarning, match="suspect"):
        run = ed.H5File(p, inc_suspect_trains=False)
    assert run.all_sources == {XGM, OUT}
    assert 102 not in run.train_ids and len(run.train_ids) == 9


def test_format_05_guess_and_old_index(tmp_path):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    tids = np.arange(100, 110)
    tids[6] = 2000  # out of order: dropping it alone makes the sequence increasing
    _one_source_file(p, tids, version="0.5", old_index=True)
    with pytest.warns(UserWarning, match="suspect"):
        run = ed.H5File(p, inc_suspect_trains=False)
    np.testing.assert_array_equal(run.train_ids, np.delete(np.arange(100, 110), 6))
    assert run.suspect_trains[0].train_id == 2000
    np.testing.assert_array_equal(run[OUT, "data.intensity"].ndarray()[:, 0],
                                  np.delete(np.arange(0, 30, 3.), 6))


def test_guess_drops_fewest():
    from exfel_data.format import guess_valid_trains

    tids = np.array([1, 2, 3, 10, 11, 4, 5, 6, 7, 8], dtype=np.uint64)
    valid = guess_valid_trains(tids)
    assert valid.sum() == 8
    assert not valid[3] and not valid[4]
    assert guess_valid_trains(np.array([5, 1, 2, 3], np.uint64)).tolist() == \
        [False, True, True, True]


def test_old_index_with_multiple_entries(tmp_path):
    p = tmp_path / "RAW-R0001-DET00-S00000.h5"
    counts = np.array([2, 0, 3])
    write_exdf(p, [1, 2, 3], version="0.5", old_index=True,
               instrument={"DET/1CH0:xtdf": {"image": (counts, {"cellId": np.arange(5)})}})
    kd = ed.H5File(p)["DET/1CH0:xtdf", "image.cellId"]
    np.testing.assert_array_equal(kd.data_counts(labelled=False), counts)
    np.testing.assert_array_equal(kd.train_id_coordinates(), [1, 1, 3, 3, 3])


def test_duplicate_train_in_two_files(tmp_path):
    _one_source_file(tmp_path / "RAW-R0001-DA01-S00000.h5", np.arange(100, 110))
    _one_source_file(tmp_path / "RAW-R0001-DA01-S00001.h5", np.arange(108, 120))
    with pytest.raises(ed.DuplicateTrainError) as exc:
        ed.RunDirectory(tmp_path)
    msg = str(exc.value)
    assert "RAW-R0001-DA01-S00000.h5" in msg and "RAW-R0001-DA01-S00001.h5" in msg
    assert "108" in msg


def test_duplicate_within_file_hints_suspect(tmp_path):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    tids = np.arange(100, 110)
    tids[2] = 105
    _one_source_file(p, tids, version="0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ed.DuplicateTrainError, match="inc_suspect_trains=False"):
            ed.H5File(p)
        run = ed.H5File(p, inc_suspect_trains=False)
    assert len(run.train_ids) == 9


def test_sources_merged_across_sequence_files_and_aggregators(tmp_path):
    _one_source_file(tmp_path / "RAW-R0001-DA01-S00000.h5", np.arange(100, 110))
    _one_source_file(tmp_path / "RAW-R0001-DA01-S00001.h5", np.arange(110, 125))
    write_exdf(tmp_path / "RAW-R0001-DA02-S00000.h5", np.arange(95, 120),
               control={"MOTOR/X": {"actualPosition": np.linspace(0, 1, 25)}})
    run = ed.RunDirectory(tmp_path)
    np.testing.assert_array_equal(run.train_ids, np.arange(95, 125))
    kd = run[XGM, "pos.x"]
    np.testing.assert_array_equal(kd.ndarray(), np.r_[np.arange(10.), np.arange(15.)])
    assert len(kd.data_chunks()) == 2
    counts = kd.data_counts(labelled=False)
    assert counts[:5].sum() == 0 and counts[5:].all()
    tid, d = run.train_from_id(97)
    assert XGM in d and "pos.x.value" not in d[XGM]
    assert d["MOTOR/X"]["actualPosition.value"] == pytest.approx(2 / 24)
    assert [t for t, _ in run.trains(require_all=True)] == list(range(100, 120))


def test_truncated_file_skipped_with_warning(tmp_path):
    _one_source_file(tmp_path / "RAW-R0001-DA01-S00000.h5", np.arange(100, 110))
    bad = tmp_path / "RAW-R0001-DA01-S00001.h5"
    _one_source_file(bad, np.arange(110, 120))
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 3])
    with pytest.warns(UserWarning, match=r"Skipping unreadable file .*S00001\.h5"):
        run = ed.RunDirectory(tmp_path)
    np.testing.assert_array_equal(run.train_ids, np.arange(100, 110))


def test_no_readable_file(tmp_path):
    (tmp_path / "RAW-R0001-DA01-S00000.h5").write_bytes(b"not hdf5")
    with pytest.warns(UserWarning):
        with pytest.raises(ed.ExfelDataError, match="No readable EXDF files"):
            ed.RunDirectory(tmp_path)


def test_missing_index_dataset_names_file_and_path(tmp_path):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    _one_source_file(p, np.arange(100, 110))
    with h5py.File(p, "r+") as f:
        del f[f"INDEX/{OUT}/data"]
    from exfel_data.file_access import FileAccess

    fa = FileAccess(str(p))  # indexes are read on first use of a source
    with pytest.raises(ed.FileStructureError) as exc:
        fa.get_index(OUT, "data")
    assert p.name in str(exc.value) and f"INDEX/{OUT}/data" in str(exc.value)
    with pytest.raises(ed.FileStructureError, match=f"INDEX/{OUT}/data"):
        ed.H5File(p)[OUT, "data.intensity"].ndarray()


def test_index_beyond_dataset(tmp_path):
    p = tmp_path / "RAW-R0001-DA01-S00000.h5"
    _one_source_file(p, np.arange(100, 110))
    with h5py.File(p, "r+") as f:
        f[f"INDEX/{OUT}/data/count"][9] = 5
    run = ed.H5File(p)
    with pytest.raises(ed.FileStructureError, match="INDEX points"):
        run[OUT, "data.intensity"].ndarray()
