"""EXtra-data's public API on exfel_data objects (issue 11): what its users' code relies on.

Expected values come from the generator (reader_runs.make_small_run), plain h5py, or the
real extra-data opening the same files.
"""

import pickle

import numpy as np
import pytest
from reader_runs import CAM, XGM

import exfel_data as ed
from exfel_data.train_id_list import TrainIdList

TIDS = list(range(10000, 10030))


# -- train_ids is a list, as in EXtra-data ------------------------------------------------
def test_train_ids_are_lists_at_every_level(small_run):
    for obj in (small_run, small_run[XGM], small_run[XGM, "beamPosition.ixPos"]):
        assert isinstance(obj.train_ids, list)
        assert obj.train_ids == TIDS
        assert all(type(t) is int for t in obj.train_ids)
    sel = small_run.select_trains(np.s_[5:7])
    assert sel.train_ids + sel.train_ids == [10005, 10006, 10005, 10006]
    assert not small_run.select_trains(np.s_[40:]).train_ids  # empty list is falsy


def test_train_id_list_as_array_is_free_and_readonly(small_run):
    tids = small_run.train_ids
    arr = np.asarray(tids)
    assert arr.dtype == np.uint64 and arr.tolist() == TIDS
    assert np.asarray(tids) is arr  # the same array every time: no conversion
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 1
    assert np.asarray(tids, dtype=np.int64).dtype == np.int64


def test_train_id_list_mutation_rebuilds_array():
    tids = TrainIdList(np.arange(3, dtype=np.uint64))
    tids.append(7)
    tids[0] = 5
    np.testing.assert_array_equal(np.asarray(tids), [5, 1, 2, 7])
    assert pickle.loads(pickle.dumps(tids)) == [5, 1, 2, 7]


# -- sources and keys, checked against the real extra-data on the same files ---------------
SPB_XGM = "SPB_XTD9_XGM/DOOCS/MAIN"
SPB_DET = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"


@pytest.fixture()
def both_spb(spb_run):
    import extra_data

    return ed.RunDirectory(spb_run), extra_data.RunDirectory(spb_run)


def test_source_attributes_match_extra_data(both_spb):
    ours, theirs = both_spb
    for src in (SPB_XGM, SPB_XGM + ":output", SPB_DET):
        a, b = ours[src], theirs[src]
        assert (a.device_class, a.data_category, a.aggregator, a.storage_class) == \
            (b.device_class, b.data_category, b.aggregator, b.storage_class)
        assert a.is_run_only is b.is_run_only is False
        assert a.keys(inc_timestamps=False) == b.keys(inc_timestamps=False)
    assert ours[SPB_XGM].device_class == "DoocsXGM"
    assert ours[SPB_XGM].aggregator == "DA01" and ours[SPB_DET].aggregator == "AGIPD00"
    assert ours[SPB_XGM].run_values() == theirs[SPB_XGM].run_values()
    assert ours[SPB_XGM].run_values(inc_timestamps=False) == \
        theirs[SPB_XGM].run_values(inc_timestamps=False)
    assert ours[SPB_XGM].run_keys(False) == theirs[SPB_XGM].run_keys(False)
    kd = ours[SPB_XGM, "pulseEnergy.conversion"]
    assert kd.run_value() == theirs[SPB_XGM, "pulseEnergy.conversion"].run_value()
    with pytest.raises(ValueError, match="instrument source"):
        ours[SPB_DET].run_values()


def test_storage_class_from_facility_path():
    from exfel_data.euxfel_paths import file_name_info, storage_class

    assert storage_class("/gpfs/exfel/exp/SPB/202401/p001234/proc/r0042/CORR-R0042-AGIPD00"
                         "-S00000.h5") == "proc"
    assert storage_class("/gpfs/exfel/d/raw/SPB/202401/p001234/r0042/x.h5") == "raw"
    assert storage_class("/tmp/r0042/RAW-R0042-DA01-S00000.h5") is None
    assert file_name_info("RAW-R0042-DA01-S00000.h5") == ("RAW", "DA01")
    assert file_name_info("notes.h5") == (None, None)


def test_key_paths_bounds_and_trains_match_extra_data(both_spb):
    ours, theirs = both_spb
    kd, kt = ours[SPB_XGM, "beamPosition.ixPos"], theirs[SPB_XGM, "beamPosition.ixPos"]
    assert kd.source_file_paths == kt.source_file_paths
    assert kd[:20].source_file_paths == kt[:20].source_file_paths  # only the first file
    dd, dt = ours[SPB_DET, "image.data"], theirs[SPB_DET, "image.data"]
    for a, b in zip(dd.train_index_bounds(), dt.train_index_bounds(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert dd.train_index_bounds(labelled=True).equals(dt.train_index_bounds(labelled=True))
    assert [len(c.files) for c in ours[SPB_XGM].split_trains(3)] == \
        [len(c.files) for c in theirs[SPB_XGM].split_trains(3)] == [1, 2, 1]


def test_source_union_coordinates_and_counts(both_spb):
    ours, theirs = both_spb
    xgm = ours[SPB_XGM]
    both = xgm.select_trains(np.s_[:10]) | xgm.select_trains(np.s_[-10:])
    assert both.train_ids == TIDS_SPB[:10] + TIDS_SPB[-10:]
    with pytest.raises(ValueError, match="same source"):
        xgm.union(ours[SPB_DET])
    det = ours[SPB_DET]
    np.testing.assert_array_equal(det.train_id_coordinates("image"),
                                  theirs[SPB_DET].train_id_coordinates("image"))
    with pytest.raises(ValueError, match="different counts"):
        det.train_id_coordinates()
    with pytest.raises(ValueError, match="no selected keys in index group 'preamble'"):
        det.data_counts(index_group="preamble")
    assert det.drop_empty_trains(index_group="image").train_ids == \
        theirs[SPB_DET].drop_empty_trains(index_group="image").train_ids
    a = ours.get_data_counts(SPB_DET, "image.data")
    b = theirs.get_data_counts(SPB_DET, "image.data")
    assert a.to_dict() == b.to_dict() and a.index.tolist() == TIDS_SPB


TIDS_SPB = list(range(10000, 10064))


def test_select_by_objects_sets_and_require_any(both_spb):
    ours, theirs = both_spb
    kd = ours[SPB_XGM, "beamPosition.ixPos"]
    assert ours.select([kd]).keys_for_source(SPB_XGM) == {"beamPosition.ixPos.value"}
    assert ours.select({(SPB_XGM, "beamPosition.ixPos")}).all_sources == {SPB_XGM}
    assert ours.select({SPB_XGM: set()}).keys_for_source(SPB_XGM) == \
        theirs.select({SPB_XGM: set()}).keys_for_source(SPB_XGM)
    assert ours.select(SPB_DET, "*", require_any=True).train_ids == \
        theirs.select(SPB_DET, "*", require_any=True).train_ids
    with pytest.raises(ValueError, match="not both"):
        ours.select(SPB_DET, require_all=True, require_any=True)


def test_trains_is_an_iterator(small_run):
    it = small_run.select(XGM).trains()
    assert next(it)[0] == 10000 and next(it)[0] == 10001
    assert [t for t, _ in small_run.select(XGM).trains()] == TIDS


def test_train_timestamps_options_match_extra_data(spb_run):
    # Each aggregator stores its own time for a train; with one aggregator open both
    # libraries must give the same times (with several they may pick different files).
    import extra_data

    ours = ed.RunDirectory(spb_run, include="*DA01*")
    theirs = extra_data.RunDirectory(spb_run, include="*DA01*")
    np.testing.assert_array_equal(ours.train_timestamps(), theirs.train_timestamps())
    for kw in ({"labelled": True}, {"labelled": True, "euxfel_local_time": True},
               {"pydatetime": True}, {"pydatetime": True, "euxfel_local_time": True}):
        a, b = ours.train_timestamps(**kw), theirs.train_timestamps(**kw)
        if kw.get("labelled"):
            assert a.tolist() == b.tolist() and str(a.dt.tz) == str(b.dt.tz)
        else:
            assert a == b
    with pytest.raises(ValueError, match="needs labelled=True or pydatetime=True"):
        ours.train_timestamps(euxfel_local_time=True)


def test_selection_detector_info_and_train_info(both_spb, capsys):
    ours, theirs = both_spb
    assert ours.select(SPB_XGM, "beamPosition.*").selection == {
        SPB_XGM: {f"beamPosition.{p}.{s}" for p in ("ixPos", "iyPos")
                  for s in ("value", "timestamp")}}
    assert ours.detector_sources == theirs.detector_sources
    assert ours.detector_info(SPB_DET) == theirs.detector_info(SPB_DET)
    ours.train_info(10004)
    out = capsys.readouterr().out
    assert out.startswith("Train [10004] information\nDevices\n\tInstruments\n")
    assert f"\t- {SPB_DET}\n" in out and "\tControls\n\t- SA1_XTD2_XGM/DOOCS/MAIN\n" in out
    with pytest.raises(ed.TrainIDError, match="Train ID 99 not found"):
        ours.train_info(99)


def test_run_only_source_index_groups_and_single_str_value(small_run, both_spb):
    ours, _ = both_spb
    det = ours[SPB_DET]
    assert det.select_keys("header.*").index_groups == {"header"}
    with pytest.raises(ed.IndexGroupError, match="no selected keys in index group 'image'"):
        det.select_keys("header.*").one_key("image")
    assert ours[SPB_XGM].index_groups == {""}
    state = small_run[XGM, "state"]
    assert state[ed.by_id[[10001, 10003]]].as_single_value() == "ON"
    with pytest.raises(TypeError, match="reduce_by only applies to numbers"):
        state.as_single_value(reduce_by="mean")


def test_key_run_value_errors(small_run):
    assert small_run["MOTOR/X", "actualPosition"].run_value() == 2.5
    with pytest.raises(ValueError, match="only control sources have RUN values"):
        small_run[CAM, "data.image.pixels"].run_value()
    assert small_run[XGM, "state"].run_value() == "OFF"  # the first train's value
