"""Runs written by another tool (extra-data's mock writer) read like extra-data reads them."""

import warnings

import extra_data
import numpy as np

import exfel_data as ed


def _pairs(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ed.RunDirectory(path), extra_data.RunDirectory(path)


def test_sources_trains_keys(fxe_run):
    ours, theirs = _pairs(fxe_run)
    np.testing.assert_array_equal(ours.train_ids, theirs.train_ids)
    assert ours.all_sources == theirs.all_sources
    assert ours.control_sources == theirs.control_sources
    assert ours.instrument_sources == theirs.instrument_sources
    for src in sorted(ours.all_sources):
        assert ours.keys_for_source(src) == theirs.keys_for_source(src), src


def test_values_and_coords(fxe_run):
    ours, theirs = _pairs(fxe_run)
    for src in ["SA1_XTD2_XGM/DOOCS/MAIN", "SA1_XTD2_XGM/DOOCS/MAIN:output",
                "FXE_XAD_GEC/CAM/CAMERA:daqOutput", "FXE_XAD_GEC/CAM/CAMERA_NODATA:daqOutput",
                "FXE_DET_LPD1M-1/DET/3CH0:xtdf"]:
        for key in sorted(ours.keys_for_source(src)):
            if key == "image.data":
                continue  # 8 GB of fill values; covered by shape check
            a, b = ours[src, key], theirs[src, key]
            assert a.shape == b.shape, (src, key)
            assert a.dtype == b.dtype
            xa, xb = a.xarray(), b.xarray()
            np.testing.assert_array_equal(xa.values, xb.values, err_msg=f"{src} {key}")
            np.testing.assert_array_equal(xa.coords["trainId"], xb.coords["trainId"])
            assert xa.dims == xb.dims
            assert xa.name == xb.name
            np.testing.assert_array_equal(a.data_counts(labelled=False),
                                          b.data_counts(labelled=False))
    assert ours["FXE_DET_LPD1M-1/DET/3CH0:xtdf", "image.data"].shape == \
        theirs["FXE_DET_LPD1M-1/DET/3CH0:xtdf", "image.data"].shape


def test_control_key_without_value(fxe_run):
    ours, theirs = _pairs(fxe_run)
    a = ours["SA1_XTD2_XGM/DOOCS/MAIN", "beamPosition.ixPos"].ndarray()
    b = theirs["SA1_XTD2_XGM/DOOCS/MAIN", "beamPosition.ixPos.value"].ndarray()
    np.testing.assert_array_equal(a, b)
    assert a.any()  # real values, not fill


def _compare_train_dicts(d1, d2):
    assert d1.keys() == d2.keys()
    for src in d1:
        assert d1[src].keys() == d2[src].keys(), src
        assert d1[src]["metadata"] == d2[src]["metadata"]
        for k in d1[src]:
            if k != "metadata":
                if isinstance(d2[src][k], bytes):  # extra-data gives bytes, we give str
                    assert d1[src][k] == d2[src][k].decode()
                    continue
                np.testing.assert_array_equal(d1[src][k], d2[src][k], err_msg=f"{src} {k}")
                assert np.shape(d1[src][k]) == np.shape(d2[src][k])


def test_trains_match(fxe_run):
    ours, theirs = _pairs(fxe_run)
    sel = ["SA1_XTD2_XGM/DOOCS/MAIN", "SA1_XTD2_XGM/DOOCS/MAIN:output",
           "FXE_XAD_GEC/CAM/CAMERA_NODATA:daqOutput", ("FXE_DET_LPD1M-1/DET/0CH0:xtdf",
                                                      "image.cellId")]
    # Trains 380-439 cross the DA01 sequence file boundary (S00001 starts at 10400)
    a_it = ours.select(sel).select_trains(np.s_[380:440]).trains()
    b_it = theirs.select(sel).select_trains(np.s_[380:440]).trains()
    n = 0
    for (t1, d1), (t2, d2) in zip(a_it, b_it, strict=True):
        assert t1 == t2
        _compare_train_dicts(d1, d2)
        n += 1
    assert n == 60


def test_train_from_id_and_index(spb_run):
    ours, theirs = _pairs(spb_run)
    sel = ["SPB_XTD9_XGM/DOOCS/MAIN*", "SPB_IRU_CAM/CAM/SIDEMIC:daqOutput"]
    for tid in [10000, 10031, 10032, 10063]:
        t1, d1 = ours.select(sel).train_from_id(tid)
        t2, d2 = theirs.select(sel).train_from_id(tid)
        assert t1 == t2 == tid
        _compare_train_dicts(d1, d2)
    t1, d1 = ours.select(sel).train_from_index(40, keep_dims=True)
    t2, d2 = theirs.select(sel).train_from_index(40, keep_dims=True)
    _compare_train_dicts(d1, d2)


def test_select_trains_and_keydata_selection(spb_run):
    ours, theirs = _pairs(spb_run)
    src, key = "SPB_DET_AGIPD1M-1/DET/4CH0:xtdf", "image.pulseId"
    for sel in [ed.by_id[10010:10040], np.s_[5:50:3], [1, 7, 30]]:
        tsel = sel if not isinstance(sel, type(ed.by_id)) \
            else extra_data.by_id[10010:10040]
        a = ours.select_trains(sel)[src, key]
        b = theirs.select_trains(tsel)[src, key]
        np.testing.assert_array_equal(a.ndarray(), b.ndarray())
        np.testing.assert_array_equal(a.train_id_coordinates(), b.train_id_coordinates())


def test_sa3_file_with_run_only_source(sa3_file):
    ours, theirs = ed.H5File(sa3_file), extra_data.H5File(sa3_file)
    assert ours.all_sources == theirs.all_sources
    for src in ours.control_sources:
        assert ours.keys_for_source(src) == theirs.keys_for_source(src)
    src = "SA3_XTD10_IMGFEL/CAM/BEAMVIEW2:daqOutput"
    k = "data.image.pixels"
    np.testing.assert_array_equal(ours[src, k].data_counts(labelled=False),
                                  theirs[src, k].data_counts(labelled=False))
    roi = np.s_[:4, :5]
    np.testing.assert_array_equal(ours[src, k].ndarray(roi=roi), theirs[src, k].ndarray(roi=roi))
    np.testing.assert_array_equal(ours[src, k].train_id_coordinates(),
                                  theirs[src, k].train_id_coordinates())
    src = "SA3_XTD10_MCP/ADC/1:channel_5.output"
    assert ours.keys_for_source(src) == theirs.keys_for_source(src)
    assert ours.get_run_value("SA3_XTD10_MCP/MOTOR/X2", "actualPosition") == \
        theirs.get_run_value("SA3_XTD10_MCP/MOTOR/X2", "actualPosition")
