"""from_paths, legacy_sources, info(with_aggregators=), validity_flag and plot_missing_data,
checked against the real extra-data on the same files."""

import os
import shutil

import h5py
import numpy as np
import pytest

import exfel_data as ed

XGM = "SPB_XTD9_XGM/DOOCS/MAIN"


def test_from_paths_matches_extra_data(spb_run, tmp_path):
    import extra_data

    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(os.path.join(spb_run, "RAW-R0238-DA01-S00001.h5"), other)
    paths = [os.path.join(spb_run, "RAW-R0238-DA01-S00000.h5"),
             str(other / "RAW-R0238-DA01-S00001.h5")]
    ours = ed.DataCollection.from_paths(paths)
    theirs = extra_data.DataCollection.from_paths(paths)
    assert ours.all_sources == theirs.all_sources
    assert ours.train_ids == theirs.train_ids == list(range(10000, 10064))
    np.testing.assert_array_equal(ours[XGM, "beamPosition.ixPos"].ndarray(),
                                  theirs[XGM, "beamPosition.ixPos"].ndarray())


def test_from_paths_skips_unreadable_files(spb_run, tmp_path):
    bad = tmp_path / "RAW-R0238-DA02-S00000.h5"
    bad.write_bytes(b"not hdf5")
    good = os.path.join(spb_run, "RAW-R0238-DA01-S00000.h5")
    with pytest.warns(UserWarning, match="Skipping unreadable file .*DA02-S00000.h5"):
        run = ed.DataCollection.from_paths([good, bad])
    assert len(run.files) == 1
    with pytest.raises(ed.ExfelDataError, match="(?s)No readable EXDF files.*DA02"), \
            pytest.warns(UserWarning):
        ed.DataCollection.from_paths([bad])


@pytest.fixture(scope="module")
def modern_proc_run(tmp_path_factory):
    from extra_data.tests.make_examples import make_modern_spb_proc_run

    d = tmp_path_factory.mktemp("modern_proc")
    make_modern_spb_proc_run(str(d))
    return str(d)


def test_legacy_sources_match_extra_data(modern_proc_run, capsys):
    import extra_data

    run = ed.RunDirectory(modern_proc_run)
    assert run.legacy_sources == extra_data.RunDirectory(modern_proc_run).legacy_sources
    assert len(run.legacy_sources) == 16
    run.info()
    out = capsys.readouterr().out
    assert "16 legacy source names:\n  - SPB_DET_AGIPD1M-1/DET/* -> SPB_DET_AGIPD1M-1/CORR/* (16)" \
        in out
    sel = run.select("*/CORR/0CH0*")
    assert sel.legacy_sources == {"SPB_DET_AGIPD1M-1/DET/0CH0:xtdf":
                                  "SPB_DET_AGIPD1M-1/CORR/0CH0:output"}


def test_info_with_aggregators(spb_run, capsys):
    import extra_data

    theirs = extra_data.RunDirectory(spb_run)
    ed.RunDirectory(spb_run).info(with_aggregators=True)
    out = capsys.readouterr().out
    for src in ("SPB_IRU_CAM/CAM/SIDEMIC:daqOutput", XGM, XGM + ":output"):
        assert f"  - [{theirs[src].aggregator}] {src}\n" in out + "\n"


def test_validity_flag_matches_extra_data(tmp_path):
    from extra_data.file_access import FileAccess as TheirFileAccess
    from extra_data.tests.make_examples import make_agipd_file

    from exfel_data.file_access import FileAccess

    path = str(tmp_path / "CORR-R9999-AGIPD07-S00000.h5")
    make_agipd_file(path, format_version="1.0")
    with h5py.File(path, "r+") as f:
        f["INDEX/flag"][30] = 0
    ours = FileAccess(path).validity_flag
    assert not ours[30] and ours.sum() == len(ours) - 1
    np.testing.assert_array_equal(ours, TheirFileAccess(path).validity_flag)


def test_plot_missing_data(sa3_file):
    import matplotlib

    matplotlib.use("Agg")
    from exfel_data.missing_data import missing_trains

    run = ed.H5File(sa3_file).with_aliases({"cam3": "SA3_XTD10_IMGFEL/CAM/BEAMVIEW3:daqOutput"})
    expected = {}
    with h5py.File(sa3_file, "r") as f:  # independent truth: INDEX counts
        for src in run.all_sources:
            if run[src].is_run_only:
                continue
            sec = "CONTROL" if run[src].is_control else "INSTRUMENT"
            groups = [""] if sec == "CONTROL" else [g for g in f[f"INDEX/{src}"]]
            counts = sum(f[f"INDEX/{src}/{g}/count" if g else f"INDEX/{src}/count"][:]
                         for g in groups)
            if (counts > 0).mean() * 100 <= 95:
                expected["cam3" if src.endswith("BEAMVIEW3:daqOutput") else src] = counts == 0
    got = missing_trains(run)
    assert set(got) == set(expected) and "cam3" in got
    for label, mask in got.items():
        np.testing.assert_array_equal(mask, expected[label])
    assert list(got) == sorted(got, key=lambda k: (-got[k].sum(), k))  # most missing first
    ax = run.plot_missing_data()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0].startswith(next(iter(got))) and any(lb.startswith("cam3 (") for lb in labels)


# -- selection details users' EXtra-data code relies on ------------------------------------
def test_control_key_glob_matches_values_as_extra_data(spb_run):
    import extra_data

    ours, theirs = ed.RunDirectory(spb_run), extra_data.RunDirectory(spb_run)
    for glob in ("*.ixPos", "beamPosition.ixPos*", "beamPosition.*.value"):
        assert ours.select(XGM, glob)[XGM].keys() == theirs.select(XGM, glob)[XGM].keys()
    # a source glob whose key glob matches in only some sources
    sel = ours.select("*_XGM/DOOCS*", "*.ixPos")
    assert sel.all_sources == theirs.select("*_XGM/DOOCS*", "*.ixPos").all_sources
    dropped = ours.deselect("*_XGM/DOOCS*", "*.ixPos")
    assert "beamPosition.ixPos.value" not in dropped[XGM].keys()
    assert "beamPosition.iyPos.value" in dropped[XGM].keys()


def test_key_glob_matching_nothing_is_key_and_value_error(spb_run):
    run = ed.RunDirectory(spb_run).select(XGM, "beamPosition.ixPos")
    with pytest.raises(ed.KeyGlobError, match="No key 'beamPosition.iyPos' for source") as exc:
        run.select(XGM, "beamPosition.iyPos")
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, ValueError)
    with pytest.raises(ed.PropertyNameError) as exc:  # an explicit name: KeyError only
        run.select({XGM: {"beamPosition.iyPos"}})
    assert not isinstance(exc.value, ValueError)


def test_require_all_dropping_every_train_warns(sa3_file):
    run = ed.H5File(sa3_file)
    with pytest.warns(UserWarning, match=r"50/50 \(100%\) trains dropped.*without data: "
                                         r"SA3_XTD10_IMGFEL/CAM/BEAMVIEW:daqOutput"):
        sel = run.select(["*/BEAMVIEW:daqOutput", "*/BEAMVIEW2:daqOutput"], require_all=True)
    assert sel.train_ids == []


def test_by_id_range_outside_the_data_warns(spb_run):
    run = ed.RunDirectory(spb_run)
    with pytest.warns(UserWarning, match="ends before the first train ID 10000"):
        assert run.select_trains(ed.by_id[9000:9100]).train_ids == []
    with pytest.warns(UserWarning, match="starts after the last train ID 10063"):
        assert list(run.trains(train_range=ed.by_id[12000:12500])) == []


def test_roi_as_by_index(spb_run):
    import extra_data

    cam = "SPB_IRU_CAM/CAM/SIDEMIC:daqOutput"
    ours = ed.RunDirectory(spb_run).get_array(cam, "data.image.pixels", roi=ed.by_index[:5, 2:4])
    theirs = extra_data.RunDirectory(spb_run).get_array(
        cam, "data.image.pixels", roi=extra_data.by_index[:5, 2:4])
    assert ours.shape == theirs.shape == (64, 5, 2)
    np.testing.assert_array_equal(ours.values, theirs.values)


def test_union_of_raw_and_proc_of_one_run_is_single_run(spb_run, tmp_path):
    import extra_data

    proc = tmp_path / "proc"
    proc.mkdir()
    shutil.copy(os.path.join(spb_run, "RAW-R0238-AGIPD00-S00000.h5"),
                proc / "CORR-R0238-AGIPD00-S00000.h5")
    raw = ed.RunDirectory(spb_run).deselect("*AGIPD*")
    both = raw.union(ed.RunDirectory(proc))
    theirs = extra_data.RunDirectory(spb_run).deselect("*AGIPD*").union(
        extra_data.RunDirectory(str(proc)))
    assert both.is_single_run and theirs.is_single_run
    assert both.run_metadata()["runNumber"] == theirs.run_metadata()["runNumber"]
    other_run = tmp_path / "other"
    other_run.mkdir()
    shutil.copy(os.path.join(spb_run, "RAW-R0238-DA01-S00000.h5"), other_run)
    with h5py.File(other_run / "RAW-R0238-DA01-S00000.h5", "r+") as f:
        f["METADATA/runNumber"][0] = 239
    assert not ed.RunDirectory(proc).union(ed.RunDirectory(other_run)).is_single_run


# -- xarray(extra_dims=, extra_coords=) with a roi, as EXtra-data 1.25 ---------------------
AGIPD0 = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"


@pytest.mark.parametrize("roi, extra_dims, extra_coords", [
    ((), None, None),
    (np.s_[:, 10:20, 5:15], ["raw_proc", "ss", "fs"], None),
    (np.s_[..., 30:40], ["a", "b", "c"], None),
    (np.s_[0, :, :], ["a", "b", "c"], None),
    (np.s_[:, [30, 33], -3:], ["a", "b", "c"], None),
    (np.s_[:, 10:20, 5:15], ["a", "b", "fs"], {"fs": np.linspace(0, 9, 10)}),
    (np.s_[:, 15, 5:15], None, True),
    (np.s_[:, 15, 5:15], None, {"dim_0": [100, 200]}),
    (np.s_[:, 15, 5:15], None, None),
])
def test_xarray_dims_and_coords_match_extra_data(spb_run, roi, extra_dims, extra_coords):
    import extra_data

    ours = ed.RunDirectory(spb_run)[AGIPD0, "image.data"].select_trains(np.s_[:3])
    theirs = extra_data.RunDirectory(spb_run)[AGIPD0, "image.data"].select_trains(np.s_[:3])
    a = ours.xarray(roi=roi, extra_dims=extra_dims, extra_coords=extra_coords)
    b = theirs.xarray(roi=roi, extra_dims=extra_dims, extra_coords=extra_coords)
    assert a.dims == b.dims and a.shape == b.shape
    assert set(a.coords) == set(b.coords)
    for name in b.coords:
        np.testing.assert_array_equal(a.coords[name].values, b.coords[name].values)
    np.testing.assert_array_equal(a.values, b.values)


def test_xarray_extra_coords_errors(spb_run):
    kd = ed.RunDirectory(spb_run)[AGIPD0, "image.data"]
    with pytest.raises(ValueError, match=r"extra_coords names \['fs'\].*dims of the array"):
        kd.xarray(roi=np.s_[:, 10:20, 5:15], extra_coords={"fs": np.arange(5, 15)})
    with pytest.raises(ValueError, match="extra_dims needs 3 names"):
        kd.xarray(extra_dims=["a"])


def test_empty_key_dask_array(sa3_file):
    kd = ed.H5File(sa3_file)["SA3_XTD10_IMGFEL/CAM/BEAMVIEW:daqOutput", "data.image.pixels"]
    arr = kd.dask_array(labelled=True)
    assert arr.shape == (0,) + kd.entry_shape and arr.dtype == kd.dtype
    assert arr.compute().shape == (0,) + kd.entry_shape


def test_run_folder_with_extra_data_overview_file(spb_run, tmp_path):
    """EXtra-data writes overview.h5 (virtual datasets over all files) into run folders:
    RunDirectory leaves it out, H5File reads it like the run."""
    from extra_data import RunDirectory as TheirRunDirectory
    from extra_data.voview import VirtualOverviewFileWriter

    run_dir = tmp_path / "r0238"
    shutil.copytree(spb_run, run_dir)
    VirtualOverviewFileWriter(str(run_dir / "overview.h5"),
                              TheirRunDirectory(str(run_dir), _use_voview=False)).write()
    assert TheirRunDirectory(str(run_dir)).files[0].filename.endswith("overview.h5")
    orig = ed.RunDirectory(spb_run)
    run = ed.RunDirectory(run_dir)
    assert not any(f.filename.endswith("overview.h5") for f in run.files)
    assert run.all_sources == orig.all_sources and run.train_ids == orig.train_ids
    overview = ed.H5File(run_dir / "overview.h5")
    assert overview.all_sources == orig.all_sources and overview.train_ids == orig.train_ids
    cam = "SPB_IRU_CAM/CAM/SIDEMIC:daqOutput"
    np.testing.assert_array_equal(overview[cam, "data.image.pixels"].ndarray(),
                                  orig[cam, "data.image.pixels"].ndarray())


@pytest.mark.parametrize("data", ["default", "all", ["proc", "raw"], ["raw", "proc"]])
def test_open_run_combined_folders_match_extra_data(spb_run, tmp_path, monkeypatch, data):
    import extra_data

    prop = tmp_path / "SPB" / "202401" / "p700000"
    (prop / "raw").mkdir(parents=True)
    os.symlink(spb_run, prop / "raw" / "r0238")
    proc = prop / "proc" / "r0238"
    proc.mkdir(parents=True)
    shutil.copy(os.path.join(spb_run, "RAW-R0238-AGIPD00-S00000.h5"),
                proc / "CORR-R0238-AGIPD00-S00000.h5")
    monkeypatch.setenv("EXFEL_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("EXTRA_DATA_DATA_ROOT", str(tmp_path))
    ours = ed.open_run(700000, 238, data=data, aliases=None)
    theirs = extra_data.open_run(700000, 238, data=data, aliases=None)
    assert ours.all_sources == theirs.all_sources
    src = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"   # in both folders: the later one wins
    expected = "proc" if data in ("all", ["raw", "proc"]) else "raw"
    assert f"/{expected}/" in ours[src].files[0].filename
    assert f"/{expected}/" in str(theirs[src].files[0].filename)
    assert ours.is_single_run


def test_open_run_default_without_proc_is_raw(spb_run, tmp_path, monkeypatch):
    prop = tmp_path / "SPB" / "202401" / "p700000"
    (prop / "raw").mkdir(parents=True)
    os.symlink(spb_run, prop / "raw" / "r0238")
    monkeypatch.setenv("EXFEL_DATA_ROOT", str(tmp_path))
    run = ed.open_run(700000, 238)  # data='default', as in EXtra-data
    assert run.all_sources == ed.RunDirectory(spb_run).all_sources
    with pytest.raises(FileNotFoundError, match="proc/r0238 not found"):
        ed.open_run(700000, 238, data=["proc", "raw"])  # the first folder must be there
    with pytest.warns(UserWarning, match=r"No data of this run in 'proc' \(.*proc/r0238 "
                                         "not found.*; using the other folders"):
        assert ed.open_run(700000, 238, data=["raw", "proc"]).all_sources == run.all_sources
    (prop / "proc" / "r0238").mkdir(parents=True)  # calibration not run yet: no files
    assert ed.open_run(700000, 238).all_sources == run.all_sources
    with pytest.warns(UserWarning, match=r"No data of this run in 'proc' \(No .h5 files"):
        assert ed.open_run(700000, 238, data="all").all_sources == run.all_sources
    with pytest.raises(ValueError, match="a folder name, 'all', 'default' or a list"):
        ed.open_run(700000, 238, data=[])


def test_open_run_raw_with_modern_proc_matches_extra_data(spb_run, modern_proc_run,
                                                          tmp_path, monkeypatch):
    """Default data: raw DET sources next to proc CORR ones whose files keep the DET names
    as legacy links: a DET name that raw has is the raw source, not a legacy name (as
    there). A proposal folder may be a Path; parallelize= is accepted."""
    import extra_data

    prop = tmp_path / "SPB" / "202401" / "p700000"
    for folder, run in (("raw", spb_run), ("proc", modern_proc_run)):
        (prop / folder).mkdir(parents=True)
        os.symlink(run, prop / folder / "r0238")
    monkeypatch.setenv("EXFEL_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("EXTRA_DATA_DATA_ROOT", str(tmp_path))
    ours = ed.open_run(prop, 238, aliases=None, parallelize=False)
    theirs = extra_data.open_run(prop, 238, aliases=None, parallelize=False)
    # raw has modules 0 and 4: the other 14 DET names are legacy names of proc sources
    legacy = {f"SPB_DET_AGIPD1M-1/DET/{m}CH0:xtdf": f"SPB_DET_AGIPD1M-1/CORR/{m}CH0:output"
              for m in range(16) if m not in (0, 4)}
    assert ours.legacy_sources == theirs.legacy_sources == legacy
    # EXtra-data lists legacy names in all_sources too (docs/compat.md)
    assert ours.all_sources == theirs.all_sources - set(legacy)
    for m in (0, 4):
        det, corr = f"SPB_DET_AGIPD1M-1/DET/{m}CH0:xtdf", f"SPB_DET_AGIPD1M-1/CORR/{m}CH0:output"
        assert "/raw/" in ours[det].files[0].filename
        assert "/proc/" in ours[corr].files[0].filename


def _count_blocks(text: str) -> dict[str, list[str]]:
    """``{source: [its 'data for N trains ...' lines]}`` from info(counts=True) output."""
    blocks: dict[str, list[str]] = {}
    source = None
    for line in text.splitlines():
        if line.startswith("  - "):
            source = line[4:].split(" ")[0]
        elif "data for" in line and source is not None:
            blocks.setdefault(source, []).append(line.strip().replace("\u2013", "-"))
    return blocks


def test_info_counts_match_extra_data(tmp_path, capsys):
    """info(counts=True): trains with data and entries per train for each instrument
    source and index group, the same figures as EXtra-data's (a camera without data, LPD
    modules with 128 frames per train)."""
    import extra_data
    from extra_data.tests.make_examples import make_fxe_run

    make_fxe_run(str(tmp_path))
    ed.RunDirectory(tmp_path).info(counts=True)
    ours = _count_blocks(capsys.readouterr().out)
    extra_data.RunDirectory(tmp_path).info(counts=True)
    theirs = _count_blocks(capsys.readouterr().out)
    assert ours == theirs
    assert ours["FXE_XAD_GEC/CAM/CAMERA_NODATA:daqOutput"] == [
        "data for 0 trains (0.00%), 0 entries per train"]
    assert "image: data for 480 trains (100.00%), 128 entries per train" in \
        ours["FXE_DET_LPD1M-1/DET/0CH0:xtdf"]
    assert len(ours) == 20
    ed.RunDirectory(tmp_path).info(group_sources=False)
    lines = capsys.readouterr().out.splitlines()
    for src in ("FXE_XAD_GEC/CAM/CAMERA:daqOutput", "FXE_XAD_GEC/CAM/CAMERA_NODATA:daqOutput",
                "SA1_XTD2_XGM/DOOCS/MAIN:output"):
        assert f"  - {src}" in lines


def test_select_trains_by_boolean_xarray_matches_extra_data(spb_run):
    """A boolean DataArray over trainId selects the trains where it is true (a threshold
    on one source's data applied to the run), as in EXtra-data; trains it has that the
    data has not are ignored."""
    import extra_data
    import xarray as xr

    ours, theirs = ed.RunDirectory(spb_run), extra_data.RunDirectory(spb_run)
    key = (XGM, "beamPosition.ixPos")
    values = theirs[key].ndarray()
    mask = ours[key].xarray() > np.median(values)
    expected = [int(t) for t in theirs[key].xarray().trainId[values > np.median(values)]]
    assert 0 < len(expected) < len(theirs.train_ids)
    assert ours.select_trains(mask).train_ids == expected
    assert [int(t) for t in theirs.select_trains(mask).train_ids] == expected
    assert ours[key].select_trains(mask).train_ids == expected
    np.testing.assert_array_equal(ours.select_trains(mask)[key].ndarray(),
                                  values[values > np.median(values)])
    extra = xr.DataArray([True, True], coords={"trainId": [expected[0], 99]}, dims=["trainId"])
    assert ours.select_trains(extra).train_ids == [expected[0]]
    with pytest.raises(TypeError, match="must be boolean, not float32"):
        ours.select_trains(ours[key].xarray())
    with pytest.raises(ValueError, match="needs a 'trainId' coordinate; this one has none"):
        ours.select_trains(xr.DataArray(np.ones(3, dtype=bool)))
