"""DataCollection.write / write_virtual / get_virtual_dataset: the files they make read back
(with exfel_data, the real extra-data and plain h5py) as the data they came from."""

import os

import h5py
import numpy as np
import pytest

import exfel_data as ed

XGM = "SPB_XTD9_XGM/DOOCS/MAIN"
CAM = "SPB_IRU_CAM/CAM/SIDEMIC:daqOutput"


def _all_keys(data):
    return sorted((s, k) for s in data.all_sources for k in data[s].keys())


def _assert_same_data(new, old):
    assert new.all_sources == old.all_sources
    assert new.train_ids == old.train_ids
    # the writer adds each index group's trainId dataset, as DAQ files have
    added = set(_all_keys(new)) - set(_all_keys(old))
    assert all(k.endswith(".trainId") for _, k in added), added
    for s, k in added:
        group = k.partition(".")[0]
        sibling = next(k2 for s2, k2 in _all_keys(old) if s2 == s and k2.startswith(group))
        np.testing.assert_array_equal(new[s, k].ndarray(), np.repeat(
            np.asarray(old.train_ids),
            old[s, sibling].data_counts(labelled=False).astype(np.int64)))
    assert set(_all_keys(old)) <= set(_all_keys(new))
    for s, k in _all_keys(old):
        a, b = new[s, k], old[s, k]
        np.testing.assert_array_equal(a.ndarray(), b.ndarray(), err_msg=f"{s} {k}")
        assert a.dtype == b.dtype and a.entry_shape == b.entry_shape, (s, k)
        np.testing.assert_array_equal(a.data_counts(labelled=False),
                                      b.data_counts(labelled=False), err_msg=f"{s} {k}")


def test_write_copies_a_selection(spb_run, tmp_path):
    import extra_data

    sel = ed.RunDirectory(spb_run).select(["*XGM*", CAM]).select_trains(np.s_[20:50])
    out = sel.write(tmp_path / "sel.h5")
    assert out == tmp_path / "sel.h5" and os.listdir(tmp_path) == ["sel.h5"]
    with ed.H5File(out) as new:
        _assert_same_data(new, sel)
        assert new.get_run_value(XGM, "beamPosition.ixPos") == sel.get_run_value(
            XGM, "beamPosition.ixPos")
    theirs = extra_data.H5File(str(out))  # the real extra-data reads it too
    assert theirs.train_ids == list(range(10020, 10050))
    np.testing.assert_array_equal(theirs[CAM, "data.image.pixels"].ndarray(),
                                  sel[CAM, "data.image.pixels"].ndarray())


def test_write_virtual_maps_every_key(sa3_file, tmp_path):
    import extra_data

    # empty, RUN-only and nested-channel sources; not the 2.5 GB sparse camera frames
    run = ed.H5File(sa3_file).deselect("*BEAMVIEW*", "data.image.pixels")
    out = run.write_virtual(tmp_path / "v.h5")
    assert os.listdir(tmp_path) == ["v.h5"]
    with h5py.File(out, "r") as f:
        virtual = []
        f["INSTRUMENT"].visititems(lambda name, obj: virtual.append(name) if isinstance(
            obj, h5py.Dataset) and obj.is_virtual else None)
        assert "SA3_XTD10_IMGFEL/CAM/BEAMVIEW3:daqOutput/data/trainId" in virtual
        assert f["CONTROL/SA3_XTD10_MCP/MOTOR/X2/actualPosition/value"].is_virtual
        assert isinstance(f.get("RUN/SA3_XTD10_MCP/MOTOR/X2", getlink=True), h5py.HardLink)
        assert f["RUN/SA3_XTD10_MCP/MOTOR/X2/actualPosition/value"][0] == 3.25
    with ed.H5File(out) as new:
        _assert_same_data(new, run)
    # the real extra-data reads the virtual file as the original
    theirs = extra_data.H5File(str(out))
    ref = extra_data.H5File(sa3_file).deselect("*BEAMVIEW*", "data.image.pixels")
    assert theirs.all_sources == ref.all_sources
    for s, k in _all_keys(run):
        np.testing.assert_array_equal(theirs[s, k].ndarray(), ref[s, k].ndarray(),
                                      err_msg=f"{s} {k}")


def test_write_virtual_of_selected_trains_across_files(spb_run, tmp_path):
    import extra_data

    sel = ed.RunDirectory(spb_run).select(["*XGM*", CAM]).select_trains(np.s_[25:40])
    out = sel.write_virtual(tmp_path / "v.h5")
    with ed.H5File(out) as new:
        _assert_same_data(new, sel)
    theirs = extra_data.H5File(str(out))
    assert theirs.train_ids == list(range(10025, 10040))


def test_failed_write_leaves_nothing(spb_run, tmp_path, monkeypatch):
    from exfel_data.write import single_file

    def broken(kd):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(single_file, "virtual_layout", broken)
    target = tmp_path / "v.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        ed.RunDirectory(spb_run).select("*XGM*").write_virtual(target)
    assert os.listdir(tmp_path) == ["v.h5"] and target.read_bytes() == b"old"


def test_get_virtual_dataset_spans_sequence_files(spb_run, tmp_path):
    run = ed.RunDirectory(spb_run)
    ds = run.get_virtual_dataset(CAM, "data.image.pixels")
    assert ds.is_virtual and ds.shape == (64, 32, 24) and ds.dtype == np.uint16
    parts = []
    for seq in range(2):
        with h5py.File(os.path.join(spb_run, f"RAW-R0238-DA01-S{seq:05}.h5"), "r") as f:
            parts.append(f[f"INSTRUMENT/{CAM}/data/image/pixels"][:32])
    np.testing.assert_array_equal(ds[:], np.concatenate(parts))

    kd = run[CAM, "data.image.pixels"].select_trains(np.s_[30:34])
    path = tmp_path / "vds.h5"
    ds = kd.get_virtual_dataset(path)
    assert ds.file.filename == str(path) and ds.shape == (4, 32, 24)
    np.testing.assert_array_equal(ds[:], kd.ndarray())


def test_write_and_write_virtual_keep_strings_structs_and_empty_trains(small_run, tmp_path):
    import extra_data

    for method in ("write", "write_virtual"):
        out = getattr(small_run, method)(tmp_path / f"{method}.h5")
        with ed.H5File(out) as new:
            _assert_same_data(new, small_run)
        theirs = extra_data.H5File(str(out))
        np.testing.assert_array_equal(
            theirs["SA1_XTD2_XGM/DOOCS/MAIN", "state"].ndarray(),
            extra_data.RunDirectory(os.path.dirname(small_run.files[0].filename))[
                "SA1_XTD2_XGM/DOOCS/MAIN", "state"].ndarray())


def test_get_virtual_dataset_refuses_strings(small_run):
    with pytest.raises(TypeError, match="SA1_XTD2_XGM/DOOCS/MAIN state.value: variable-length"):
        small_run.get_virtual_dataset("SA1_XTD2_XGM/DOOCS/MAIN", "state.value")
