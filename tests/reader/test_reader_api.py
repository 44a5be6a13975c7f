"""Collection / source / key API on a run with known values."""

import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from reader_runs import CAM, DET, STRUCT, XGM, XGM_OUT

import exfel_data as ed

TIDS = np.arange(10000, 10030)


def test_train_ids_and_sources(small_run):
    np.testing.assert_array_equal(small_run.train_ids, TIDS)
    assert small_run.train_ids == TIDS.tolist()  # a list of ints, as in EXtra-data
    assert np.asarray(small_run.train_ids).dtype == np.uint64
    assert small_run.control_sources == {XGM, "MOTOR/X"}
    assert small_run.instrument_sources == {XGM_OUT, CAM, DET.format(0), DET.format(1)}
    assert small_run.all_sources == small_run.control_sources | small_run.instrument_sources
    assert small_run.keys_for_source(XGM) == {
        f"{k}.{s}" for k in ["beamPosition.ixPos", "state", "pulses"]
        for s in ["value", "timestamp"]}
    assert small_run.keys_for_source(CAM) == {"data.image.pixels"}


def test_control_values(small_run):
    kd = small_run[XGM, "beamPosition.ixPos"]
    assert kd.key == "beamPosition.ixPos.value"
    np.testing.assert_array_equal(kd.ndarray(), TIDS * 0.5)
    assert kd.shape == (30,) and kd.dtype == np.float64 and kd.entry_shape == ()
    assert kd.units == "μm" and kd.units_name == "micrometer"
    s = kd.series()
    assert s.name == f"{XGM}/beamPosition.ixPos"
    assert s.index.name == "trainId" and s.loc[10003] == 5001.5
    pulses = small_run[XGM, "pulses"].ndarray()
    assert pulses.shape == (30, 2) and pulses.dtype == np.int32
    np.testing.assert_array_equal(pulses[:, 1], TIDS + 1)


def test_vlen_strings_come_back_as_str(small_run):
    arr = small_run[XGM, "state"].ndarray()
    assert arr.dtype == object
    assert arr[:3].tolist() == ["OFF", "ON", "OFF"]
    assert small_run[XGM, "state"].xarray().values[1] == "ON"
    _, d = small_run.train_from_id(10001)
    assert d[XGM]["state.value"] == "ON"
    with pytest.raises(ValueError, match="differ"):
        small_run[XGM, "state"].as_single_value()
    assert small_run[XGM, "state"][ed.by_id[[10001, 10003]]].as_single_value() == "ON"


def test_structured_dtype(small_run):
    kd = small_run[XGM_OUT, "data.record"]
    assert kd.dtype == STRUCT
    arr = kd.ndarray()
    np.testing.assert_array_equal(arr["a"], TIDS)
    ds = kd.xarray()
    assert isinstance(ds, xr.Dataset)
    np.testing.assert_array_equal(ds["b"].values, TIDS / 2)


def test_instrument_xarray_and_roi(small_run):
    kd = small_run[CAM, "data.image.pixels"]
    assert kd.shape == (30, 4, 6) and kd.entry_shape == (4, 6) and kd.dtype == np.uint16
    arr = kd.xarray()
    assert arr.dims == ("trainId", "dim_0", "dim_1")
    np.testing.assert_array_equal(arr.coords["trainId"], TIDS)
    np.testing.assert_array_equal(arr.values[:, 0, 0], TIDS % 7)
    roi = kd.ndarray(roi=np.s_[1:3, 2])
    assert roi.shape == (30, 2)
    named = small_run.get_array(CAM, "data.image.pixels", extra_dims=["y", "x"])
    assert named.dims == ("trainId", "y", "x")


def test_multi_entry_key(small_run):
    kd = small_run[DET.format(1), "image.data"]
    counts = TIDS % 3
    assert kd.shape == (counts.sum(), 3, 4)
    np.testing.assert_array_equal(kd.data_counts(labelled=False), counts)
    dc = kd.data_counts()
    assert isinstance(dc, pd.Series) and dc.loc[10001] == 2 and dc.loc[10002] == 0
    coords = kd.train_id_coordinates()
    np.testing.assert_array_equal(coords, np.repeat(TIDS, counts))
    np.testing.assert_array_equal(kd.ndarray()[:, 0, 0], (coords - 10000) * 10 + 1)
    x = kd.xarray()
    np.testing.assert_array_equal(x.coords["trainId"], coords)
    dropped = kd.drop_empty_trains()
    np.testing.assert_array_equal(dropped.train_ids, TIDS[counts > 0])
    t, arr = kd.train_from_id(10001)
    assert t == 10001 and arr.shape == (2, 3, 4)
    t, arr = kd.train_from_id(10000)
    assert arr.shape == (3, 4)
    got = {t: a.shape for t, a in kd.trains()}
    assert 10002 not in got and got[10001] == (2, 3, 4) and got[10000] == (3, 4)


def test_ndarray_out_and_read_chunks_into(small_run):
    from exfel_data.reading import read_chunks_into

    kd = small_run[DET.format(0), "image.data"]
    out = np.zeros((2,) + kd.shape, dtype=np.float32)
    # Non-contiguous destination, dtype conversion
    read_chunks_into(kd.data_chunks(), out[1], roi=())
    np.testing.assert_array_equal(out[1], kd.ndarray())
    strided = np.zeros(kd.shape[:1] + (3, 8), np.uint16)[:, :, ::2]
    read_chunks_into(kd.data_chunks(), strided)
    np.testing.assert_array_equal(strided, kd.ndarray())
    with pytest.raises(ValueError, match="needs"):
        kd.ndarray(out=np.zeros((1, 3, 4), np.uint16))


def test_data_chunks_contract(small_run):
    kd = small_run[XGM, "beamPosition.ixPos"]
    chunks = kd.data_chunks()
    assert len(chunks) == 2
    c0, c1 = chunks
    assert c0.dataset_path == f"/CONTROL/{XGM}/beamPosition/ixPos/value"
    assert c0.first == 0 and c1.first == 0
    np.testing.assert_array_equal(c0.train_ids, TIDS[:15])
    np.testing.assert_array_equal(c1.counts, np.ones(15))
    assert c1.file.filename.endswith("S00001.h5")
    sel = kd.select_trains(np.s_[10:20]).data_chunks()
    assert [(c.first, len(c.train_ids)) for c in sel] == [(10, 5), (0, 5)]


def test_select_variants(small_run):
    assert small_run.select("*XGM*").all_sources == {XGM, XGM_OUT}
    sel = small_run.select([(XGM, "beamPosition.*"), (CAM, "*")])
    assert sel.all_sources == {XGM, CAM}
    assert sel.keys_for_source(XGM) == {"beamPosition.ixPos.value",
                                        "beamPosition.ixPos.timestamp"}
    sel = small_run.select({XGM: {"state"}, CAM: None})
    assert sel.keys_for_source(XGM) == {"state.value"}
    assert sel.keys_for_source(CAM) == {"data.image.pixels"}
    sel = small_run.select("*/DET/*", "image.data")
    assert sel.keys_for_source(DET.format(0)) == {"image.data"}
    assert len(small_run.select(sel).all_sources) == 2
    # original unchanged
    assert len(small_run.all_sources) == 6
    de = small_run.deselect("*/DET/*").deselect(XGM, "state*")
    assert de.all_sources == {XGM, XGM_OUT, CAM, "MOTOR/X"}
    assert "state.value" not in de.keys_for_source(XGM)
    with pytest.raises(ed.SourceNameError, match=r"No source 'NOPE\*'.*run\.all_sources"):
        small_run.select("NOPE*")
    with pytest.raises(ed.PropertyNameError,
                       match=rf"No key 'nothing\.\*' for source '{XGM}'.*keys_for_source"):
        small_run.select(XGM, "nothing.*")


def test_select_require_all(small_run):
    sel = small_run.select("*/DET/*", "image.data", require_all=True)
    np.testing.assert_array_equal(sel.train_ids, TIDS[TIDS % 3 > 0])
    trains = [t for t, _ in small_run.select("*/DET/0*", "image.*").trains(require_all=True)]
    assert trains == TIDS[TIDS % 3 > 0].tolist()


def test_select_trains_variants(small_run):
    r = small_run
    np.testing.assert_array_equal(r.select_trains(ed.by_id[10005:10008]).train_ids,
                                  [10005, 10006, 10007])
    np.testing.assert_array_equal(r.select_trains(ed.by_index[:3]).train_ids, TIDS[:3])
    np.testing.assert_array_equal(r.select_trains(np.s_[-2:]).train_ids, TIDS[-2:])
    np.testing.assert_array_equal(r.select_trains([0, 29]).train_ids, [10000, 10029])
    np.testing.assert_array_equal(r.select_trains(TIDS % 10 == 0).train_ids,
                                  [10000, 10010, 10020])
    np.testing.assert_array_equal(r[ed.by_id[[10003, 10001]]].train_ids, [10001, 10003])
    np.testing.assert_array_equal(r.select_trains(ed.by_id[10000:10010:3]).train_ids,
                                  [10000, 10003, 10006, 10009])
    with pytest.raises(ed.TrainIDError, match="10050.*30 trains from 10000 to 10029"):
        r.select_trains(ed.by_id[[10050]])
    with pytest.raises(ValueError, match="length 3"):
        r.select_trains(np.array([True, False, True]))
    sub = r.select_trains(np.s_[20:])
    assert all(f.filename.endswith(("S00001.h5", "DET00-S00000.h5", "DET01-S00000.h5"))
               for f in sub[XGM].files)
    np.testing.assert_array_equal(sub[XGM, "beamPosition.ixPos"].ndarray(), TIDS[20:] * .5)


def test_split_and_union(small_run):
    parts = list(small_run.split_trains(trains_per_part=8))
    assert sorted(len(p.train_ids) for p in parts) == [7, 7, 8, 8]
    np.testing.assert_array_equal(np.concatenate([p.train_ids for p in parts]), TIDS)
    parts = list(small_run[CAM, "data.image.pixels"].split_trains(parts=3))
    assert sum(p.shape[0] for p in parts) == 30
    a = small_run.select(XGM).select_trains(np.s_[:10])
    b = small_run.select(CAM).select_trains(np.s_[5:15])
    u = a | b
    assert u.all_sources == {XGM, CAM}
    np.testing.assert_array_equal(u.train_ids, TIDS[:15])
    assert u[XGM, "state"].shape == (15,)
    assert a.union(b, small_run.select("MOTOR/X")).all_sources == {XGM, CAM, "MOTOR/X"}


def test_errors_name_value_and_available(small_run):
    with pytest.raises(ed.SourceNameError, match=r"No source 'SA1_XTD2_XGM/DOOCS/MAN'\. Did you "
                       r"mean 'SA1_XTD2_XGM/DOOCS/MAIN'\? See run\.all_sources .*\(6 selected\)"
                       ) as exc:
        small_run["SA1_XTD2_XGM/DOOCS/MAN"]
    assert isinstance(exc.value, KeyError)
    with pytest.raises(ed.PropertyNameError, match=(
            r"No key 'beamPosition\.ixPoz' for source 'SA1_XTD2_XGM/DOOCS/MAIN'\. Did you mean "
            r"'beamPosition\.ixPos\.value'\? See run\.keys_for_source\('SA1_XTD2_XGM/DOOCS/MAIN'"
            r"\) \(6 keys\)")) as exc:
        small_run[XGM, "beamPosition.ixPoz"]
    assert isinstance(exc.value, KeyError)
    with pytest.raises(ed.TrainIDError, match=r"Train ID 5 not found .*30 trains from 10000 "
                                               r"to 10029.*run\.train_ids"):
        small_run.train_from_id(5)
    with pytest.raises(IndexError, match="Train index 30 out of range for 30 trains"):
        small_run.train_from_index(30)
    with pytest.raises(TypeError, match="scalar entries"):
        small_run[CAM, "data.image.pixels"].series()
    with pytest.raises(ed.NoDataError, match=r"No data for source 'SPB_DET_AGIPD1M-1/DET/0CH0:"
                                             r"xtdf', key 'image.data' in the selected trains"):
        small_run[DET.format(0), "image.data"][ed.by_id[[10002]]].as_single_value()


def test_as_single_value_and_run_values(small_run):
    assert small_run["MOTOR/X", "actualPosition"].as_single_value() == 2.5
    with pytest.raises(ValueError, match="tolerance"):
        small_run[XGM, "beamPosition.ixPos"].as_single_value()
    assert small_run[XGM, "beamPosition.ixPos"].as_single_value(atol=10) == \
        pytest.approx(np.median(TIDS * .5))
    assert small_run.get_run_value("MOTOR/X", "actualPosition") == 2.5
    assert small_run.get_run_value("MOTOR/X", "actualPosition.value") == 2.5
    assert small_run.get_run_value(XGM, "state") == "OFF"
    assert small_run.get_run_values("MOTOR/X", inc_timestamps=False) == {"actualPosition": 2.5}
    md = small_run.run_metadata()
    assert md["dataFormatVersion"] == "1.3" and md["runNumber"] == 7
    assert type(md["runNumber"]) is int  # not a numpy scalar
    assert md["creationDate"] == "20261122T020000Z"


def test_dataframe_and_series(small_run):
    df = small_run.get_dataframe(fields=[(XGM, "*"), (XGM_OUT, "*"), ("MOTOR/X", "*")])
    assert set(df.columns) == {f"{XGM}/beamPosition.ixPos", f"{XGM}/state",
                               "MOTOR/X/actualPosition"}
    assert len(df) == 30 and df.index.name == "trainId"
    s = small_run.get_series("MOTOR/X", "actualPosition")
    assert (s == 2.5).all()


def test_train_timestamps(small_run):
    ts = small_run.train_timestamps()
    assert ts.dtype == np.dtype("datetime64[ns]")
    assert (np.diff(ts) == np.timedelta64(100, "ms")).sum() >= 27
    lab = small_run.train_timestamps(labelled=True)
    assert lab.index[0] == 10000


def test_dask_array_lazy_and_picklable(small_run):
    kd = small_run[DET.format(0), "image.data"]
    arr = kd.dask_array()
    assert arr.shape == kd.shape and arr.dtype == kd.dtype
    graph = pickle.dumps(dict(arr.__dask_graph__()))
    assert b"h5py" not in graph
    np.testing.assert_array_equal(arr.compute(), kd.ndarray())
    lab = kd.dask_array(labelled=True)
    np.testing.assert_array_equal(lab.coords["trainId"], kd.train_id_coordinates())
    np.testing.assert_array_equal(small_run.get_dask_array(XGM, "state").compute()[:2],
                                  ["OFF", "ON"])


def test_pickle_keydata_and_collection(small_run):
    kd = pickle.loads(pickle.dumps(small_run[XGM, "beamPosition.ixPos"]))
    np.testing.assert_array_equal(kd.ndarray(), TIDS * 0.5)
    run2 = pickle.loads(pickle.dumps(small_run))
    np.testing.assert_array_equal(run2[CAM, "data.image.pixels"].ndarray()[:, 0, 0], TIDS % 7)


def test_dask_distributed_cluster(small_run):
    import distributed
    kd = small_run[DET.format(1), "image.data"]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        res = client.compute(kd.dask_array().sum()).result()
    assert res == kd.ndarray().astype(np.int64).sum()


def test_info_text(small_run, capsys):
    small_run.info()
    out = capsys.readouterr().out
    assert "# of trains:    30" in out
    assert "First train ID: 10000" in out and "Last train ID:  10029" in out
    assert "2 detector modules of SPB_DET_AGIPD1M-1 (modules 0-1)" in out
    assert "1-2 frames/train, missing in 10 trains" in out
    assert "2 control sources:" in out and "  - MOTOR/X" in out
    small_run.info(details_for_sources=[XGM])
    out = capsys.readouterr().out
    assert "beamPosition.ixPos.value: scalar float64 [μm]" in out


def test_context_manager_closes_files(small_run_dir):
    from exfel_data.file_access import handle_pool

    with ed.RunDirectory(small_run_dir) as run:
        run[CAM, "data.image.pixels"].ndarray()
        cam_files = {f.filename for f in run[CAM, "data.image.pixels"].files}
        assert len(cam_files) == 2 and cam_files <= handle_pool.filenames()  # read: open
    names = {f.filename for f in run.files}
    assert not names & handle_pool.filenames()
    # reopened on demand
    assert run[CAM, "data.image.pixels"].shape == (30, 4, 6)
    run[CAM, "data.image.pixels"].ndarray()


def test_trains_options(small_run):
    sel = small_run.select([(CAM, "*"), (XGM, "state"), (DET.format(0), "image.cellId")])
    tid, d = next(iter(sel.trains(flat_keys=True)))
    assert tid == 10000
    assert d[(XGM, "state.value")] == "OFF"
    assert d[(CAM, "metadata")] == {"source": CAM, "timestamp.tid": 10000}
    assert d[(CAM, "data.image.pixels")].shape == (4, 6)
    tid, d = sel.train_from_index(0, keep_dims=True)
    assert d[CAM]["data.image.pixels"].shape == (1, 4, 6)
    assert d[DET.format(0)]["image.cellId"].shape == (1,)
    assert np.shape(d[XGM]["state.value"]) == ()  # control values stay per-train values
    got = [t for t, _ in small_run.trains(devices=[(CAM, "*")], train_range=ed.by_id[10005:])]
    assert got == list(range(10005, 10030))
    assert len(small_run.trains()) == 30


def test_select_by_collection_and_dict_deselect(small_run):
    a = small_run.select({XGM: ["state", "pulses"]})
    b = small_run.select(a)
    assert b.keys_for_source(XGM) == a.keys_for_source(XGM)
    c = small_run.deselect({XGM: ["state"], CAM: None})
    assert CAM not in c.all_sources
    assert "state.value" not in c.keys_for_source(XGM)
    assert (XGM, "pulses") in c and (XGM, "state") not in c
