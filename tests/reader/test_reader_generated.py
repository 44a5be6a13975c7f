"""Reading runs from exfel_data.testing (expected values known) in every format version,
each generator defect, and differential checks against extra-data on the same files."""

import io
import os
import pickle
import warnings

import h5py
import numpy as np
import pytest

import exfel_data as ed
import exfel_data.testing as T

XGM = "SA1_XTD2_XGM/XGM/DOOCS"
MOTOR = "SPB_IRU_MOTORS/MOTOR/X"
CAM = "SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput"
MOD = "SPB_DET_AGIPD1M-1/DET/{}CH0:xtdf"


def devices():
    return [T.XGM(n_samples=8), T.Motor(MOTOR), T.Camera(shape=(6, 5)),
            *T.AGIPD1M(frames_per_train=3, module_shape=(8, 4), n_modules=3)]


def write(tmp_path, version="1.3", defects=(), n_trains=20, **kw):
    plan = T.RunPlan(n_trains=n_trains, format_version=version, devices=devices(),
                     defects=list(defects), trains_per_file=8, **kw)
    return plan, str(plan.write(tmp_path / "r0001"))


def open_quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ed.RunDirectory(path, **kw)


@pytest.mark.parametrize("version", ["0.5", "1.0", "1.1", "1.2", "1.3"])
def test_values_every_version(tmp_path, version):
    plan, path = write(tmp_path, version)
    run = ed.RunDirectory(path)
    np.testing.assert_array_equal(run.train_ids, plan.train_ids)
    assert run.all_sources == set(plan.sources)
    tids = plan.train_ids
    for src, key in [(XGM, "beamPosition.ixPos"), (XGM + ":output", "data.intensityTD"),
                     (MOTOR, "actualPosition"), (CAM, "data.image.pixels"),
                     (MOD.format(2), "image.data"), (MOD.format(0), "image.cellId"),
                     (XGM, "location")]:
        kd = run[src, key]
        expected = plan.device(src).values(key, tids, source=src)
        got = kd.ndarray()
        assert got.shape == expected.shape and got.dtype.kind == \
            ("O" if expected.dtype.kind in "OSU" else expected.dtype.kind), (src, key)
        if expected.dtype.kind == "S" or expected.dtype.kind == "O":
            expected = np.array([x.decode() if isinstance(x, bytes) else x
                                 for x in expected.ravel()], dtype=object)
        np.testing.assert_array_equal(got, expected, err_msg=f"{src} {key}")
    # train iteration agrees with bulk reads
    frames = run[MOD.format(1), "image.data"].ndarray()
    seen = [d[MOD.format(1)]["image.data"] for _, d in run.select(MOD.format(1)).trains()]
    np.testing.assert_array_equal(np.concatenate(seen), frames)
    if version == "1.3":  # the generator writes the motor position in millimetres
        assert run[MOTOR, "actualPosition"].units == "mm"


@pytest.mark.parametrize("version", ["0.5", "1.0", "1.3"])
def test_differential_generated(tmp_path, version):
    import extra_data
    plan, path = write(tmp_path, version)
    ours = ed.RunDirectory(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = extra_data.RunDirectory(path)
    np.testing.assert_array_equal(ours.train_ids, theirs.train_ids)
    assert ours.all_sources == theirs.all_sources
    for src in ours.all_sources:
        assert ours.keys_for_source(src) == theirs.keys_for_source(src)
        if src in (MOD.format(1), MOD.format(2)):
            continue  # same as module 0
        for key in sorted(ours.keys_for_source(src)):
            a, b = ours[src, key], theirs[src, key]
            assert a.shape == b.shape and a.dtype == b.dtype, (src, key)
            xa, xb = a.xarray(), b.xarray()
            va, vb = xa.values, xb.values
            if vb.dtype.kind == "O":
                vb = np.array([x.decode() if isinstance(x, bytes) else x for x in vb.ravel()],
                              dtype=object).reshape(vb.shape)
            np.testing.assert_array_equal(va, vb, err_msg=f"{src} {key}")
            np.testing.assert_array_equal(xa.coords["trainId"], xb.coords["trainId"])
    t1, d1 = ours.train_from_index(9)
    t2, d2 = theirs.train_from_index(9)
    assert t1 == t2 and d1.keys() == d2.keys()
    for s in d1:
        assert d1[s].keys() == d2[s].keys()


def test_rogue_train_id(tmp_path):
    plan, path = write(tmp_path, "1.2", [T.RogueTrainId(aggregator="DA01", position=2)])
    (rogue,) = plan.defect_log[0].train_ids
    with pytest.warns(UserWarning, match="suspect"):
        run = ed.RunDirectory(path)
    assert rogue in run.train_ids
    (s,) = run.suspect_trains
    assert s.train_id == rogue and s.row == 2
    # INDEX/origin 0 (the generator's): the file's first METADATA data source, by name
    with h5py.File(s.file, "r") as f:
        first = f["METADATA/dataSources/dataSourceId"][0].decode()
    assert s.origin == first.split("/", 1)[1]
    strict = open_quiet(path, inc_suspect_trains=False)
    np.testing.assert_array_equal(strict.train_ids, plan.train_ids)
    kd = strict[XGM, "beamPosition.ixPos"]
    np.testing.assert_array_equal(
        kd.ndarray(), plan.device(XGM).values("beamPosition.ixPos", plan.train_ids))
    assert [t for t, _ in strict.select(XGM).trains()] == plan.train_ids.tolist()


@pytest.mark.parametrize("version", ["0.5", "1.1", "1.3"])
def test_repeated_train_id(tmp_path, version):
    plan, path = write(tmp_path, version, [T.RepeatedTrainId(aggregator="DA01", position=3)])
    (rep,) = plan.defect_log[0].train_ids
    with pytest.raises(ed.DuplicateTrainError, match=f"{rep}.*inc_suspect_trains=False"):
        open_quiet(path)
    run = open_quiet(path, inc_suspect_trains=False)
    np.testing.assert_array_equal(run.train_ids, plan.train_ids)
    np.testing.assert_array_equal(
        run[XGM, "beamPosition.ixPos"].ndarray(),
        plan.device(XGM).values("beamPosition.ixPos", plan.train_ids))


def test_missing_trains_and_frame_mismatch(tmp_path):
    plan, path = write(tmp_path, "1.3", [T.MissingTrains("AGIPD01", positions=(1, 2)),
                                         T.FrameCountMismatch("AGIPD02", positions=(4,))])
    run = ed.RunDirectory(path)
    counts = run[MOD.format(1), "image.data"].data_counts(labelled=False)
    assert counts[1] == counts[2] == 0 and counts[0] == 3
    counts2 = run[MOD.format(2), "image.data"].data_counts(labelled=False)
    assert counts2[4] != 3
    tid, d = run.train_from_index(1)
    assert "image.data" not in d[MOD.format(1)] and d[MOD.format(1)]["metadata"]
    assert "image.data" in d[MOD.format(0)]
    assert 10001 not in [t for t, _ in run.select("*/DET/*", "image.data").trains(
        require_all=True)]


def test_trailing_zeros_padded_sources_old_index(tmp_path):
    plan, path = write(tmp_path, "0.5", [T.TrailingZeros(n=5), T.PaddedSourceList(),
                                         T.OldIndexLayout()])
    run = ed.RunDirectory(path)
    np.testing.assert_array_equal(run.train_ids, plan.train_ids)
    np.testing.assert_array_equal(
        run[MOD.format(0), "image.cellId"].ndarray(),
        plan.device(MOD.format(0)).values("image.cellId", plan.train_ids))


def test_truncated_file_and_empty_source(tmp_path):
    plan, path = write(tmp_path, "1.3", [T.TruncatedFile("DA02", sequence=0),
                                         T.EmptySource(XGM + ":output")])
    with pytest.warns(UserWarning, match="Skipping unreadable file.*DA02-S00000"):
        run = ed.RunDirectory(path)
    lost = plan.defect_log[0].train_ids
    kd = run[CAM, "data.image.pixels"]
    assert not set(kd.train_id_coordinates().tolist()) & set(lost.tolist())
    empty = run[XGM + ":output", "data.intensityTD"]
    assert empty.shape == (0, 8) and empty.ndarray().shape == (0, 8)
    assert empty.data_counts(labelled=False).sum() == 0
    assert empty.xarray().sizes["trainId"] == 0
    assert empty.dask_array().shape == (0, 8)


def test_overlapping_sequences(tmp_path):
    plan, path = write(tmp_path, "1.3", [T.OverlappingSequences("DA01", sequence=0)])
    with pytest.raises(ed.DuplicateTrainError) as exc:
        ed.RunDirectory(path)
    assert "DA01-S00000.h5" in str(exc.value) and "DA01-S00001.h5" in str(exc.value)
    run = ed.RunDirectory(path, include="*DA02*")
    assert XGM not in run.all_sources


def test_vlen_and_structured_keys(tmp_path):
    plan, path = write(tmp_path, "1.3", [T.VlenStringKey(), T.StructuredKey()])
    run = ed.RunDirectory(path)
    msgs = run[XGM, "status.message"].ndarray()
    assert msgs[0] == f"train {plan.train_ids[0]}"
    peaks = run[XGM + ":output", "data.peaks"]
    assert peaks.dtype == T.STRUCTURED_DTYPE and peaks.entry_shape == (4,)
    arr = peaks.ndarray()
    np.testing.assert_array_equal(
        arr, plan.device(XGM + ":output").values("data.peaks", plan.train_ids))
    _, d = run.train_from_index(0)
    assert d[XGM]["status.message.value"] == msgs[0]


def test_legacy_source_names(tmp_path):
    plan = T.RunPlan(n_trains=6, format_version="1.3", trains_per_file=10, devices=[
        *T.AGIPD1M(raw=False, frames_per_train=2, module_shape=(4, 4), n_modules=2,
                   corrected_naming="output+links")])
    path = plan.write(tmp_path / "r0002")
    run = ed.RunDirectory(path)
    assert run.all_sources == {"SPB_DET_AGIPD1M-1/CORR/0CH0:output",
                               "SPB_DET_AGIPD1M-1/CORR/1CH0:output"}
    with pytest.warns(DeprecationWarning, match="legacy name"):
        kd = run["SPB_DET_AGIPD1M-1/DET/1CH0:xtdf", "image.data"]
    assert kd.source == "SPB_DET_AGIPD1M-1/CORR/1CH0:output" and kd.shape == (12, 4, 4)


def test_cache_reused_and_validated(tmp_path, monkeypatch):
    plan, path = write(tmp_path, "1.3")
    ed.RunDirectory(path)
    assert os.path.exists(os.path.join(path, ".exfel_data_map.npz"))
    from exfel_data import file_access, file_set

    scanned = []
    orig = file_set.scan_file
    monkeypatch.setattr(file_set, "scan_file",
                        lambda p, st=None: scanned.append(p) or orig(p, st))
    file_access.handle_pool.forget_all()
    run = ed.RunDirectory(path)
    assert scanned == []
    assert file_access.n_open_files() == 0  # opening needs no file
    np.testing.assert_array_equal(run.train_ids, plan.train_ids)
    np.testing.assert_array_equal(run[MOTOR, "actualPosition"].ndarray(),
                                  plan.device(MOTOR).values("actualPosition", plan.train_ids))
    # A changed file is rescanned; the others are not.
    target = os.path.join(path, sorted(f for f in os.listdir(path) if "DA01" in f)[0])
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    ed.RunDirectory(path)
    assert scanned == [target]


def test_cache_keeps_indexes_read_later(tmp_path, monkeypatch):
    from exfel_data import file_access, run_map

    plan, path = write(tmp_path, "1.3")
    run = ed.RunDirectory(path)
    assert all(not fa._index for fa in run.files)  # opening reads no per-source index
    expected = run[MOTOR, "actualPosition"].data_counts(labelled=False)
    assert run_map._pending  # the index just read is to be added to the cache...
    run_map._save_pending()  # ... when Python exits
    assert not run_map._pending
    again = ed.RunDirectory(path)

    def no_read(*args):
        raise AssertionError("index read from the file, not the cache")

    monkeypatch.setattr(file_access, "_read_index", no_read)
    np.testing.assert_array_equal(again[MOTOR, "actualPosition"].data_counts(labelled=False),
                                  expected)
    fa = again[MOTOR].files[-1]
    copy = pickle.loads(pickle.dumps(fa))  # as sent to dask workers: indexes included
    np.testing.assert_array_equal(copy.get_index(MOTOR, "")[1], fa.get_index(MOTOR, "")[1])


def _run_facts(run):
    return (run.train_ids, sorted(run.all_sources), sorted(run.control_sources),
            run.suspect_trains, dict(run._legacy),
            [(f.filename, f.format_version, f.source_ids, f.n_zero, f.n_suspect,
              f.train_span(True), f.train_span(False), f.valid.tolist(),
              sorted((s, g) for s in f.all_sources for g in f.index_groups(s)))
     for f in run.files])


@pytest.mark.parametrize("case", ["rogue", "legacy"])
def test_cache_round_trip_and_corrupt_cache(tmp_path, case):
    if case == "rogue":
        _, path = write(tmp_path, "1.2", [T.RogueTrainId(aggregator="DA01", position=2)])
    else:
        path = T.RunPlan(n_trains=6, format_version="1.3", trains_per_file=4, devices=[
            *T.AGIPD1M(raw=False, frames_per_train=2, module_shape=(4, 4), n_modules=2,
                       corrected_naming="output+links")]).write(tmp_path / "r0002")
    cold = _run_facts(open_quiet(path))
    cache = os.path.join(path, ".exfel_data_map.npz")
    assert os.path.exists(cache)
    assert _run_facts(open_quiet(path)) == cold
    if case == "rogue":
        assert cold[3][0].origin is not None  # who sent the rogue ID survives the cache
    with open(cache, "wb") as fh:
        fh.write(b"PK\x03\x04 not a zip file")
    assert _run_facts(open_quiet(path)) == cold  # a broken cache is ignored, rewritten
    assert _run_facts(open_quiet(path)) == cold


def test_cache_in_user_dir_when_run_readonly(tmp_path, monkeypatch):
    from exfel_data import run_map

    plan, path = write(tmp_path, "1.3")
    cache_dir = tmp_path / "usercache"
    monkeypatch.setenv("EXFEL_DATA_CACHE_DIR", str(cache_dir))
    real_write = run_map._write_atomically

    def write_cache(target, *args):  # the run folder is not writable (even for root)
        if os.path.dirname(target) == os.path.realpath(path):
            raise PermissionError(13, "Permission denied", target)
        return real_write(target, *args)

    monkeypatch.setattr(run_map, "_write_atomically", write_cache)
    before = set(os.listdir(path))
    run = ed.RunDirectory(path)
    (written,) = os.listdir(cache_dir)
    assert set(os.listdir(path)) == before
    text = io.StringIO()
    run.info(file=text)
    assert f"Index cache:    {cache_dir / written} (updated at exit" in text.getvalue()
    run = ed.RunDirectory(path)
    np.testing.assert_array_equal(run.train_ids, plan.train_ids)


def test_open_files_cap(tmp_path):
    from exfel_data import file_access

    plan, path = write(tmp_path, "1.3", n_trains=24)
    run = ed.RunDirectory(path, cache=False)
    assert len(run.files) > 10
    old = file_access.handle_pool.max_open
    try:
        ed.set_max_open_files(3)
        seen = []
        for src in run.instrument_sources:
            run[src, sorted(run.keys_for_source(src))[0]].ndarray()
            seen.append(file_access.n_open_files())
        for _ in run.trains():
            seen.append(file_access.n_open_files())
        # the cap is reached (files are kept open for reuse) and never passed
        assert max(seen) == 3
    finally:
        ed.set_max_open_files(old)


def test_open_run_env_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    for data in ("raw", "proc"):
        T.RunPlan(n_trains=5, format_version="1.3", trains_per_file=10,
                  devices=[T.Motor(MOTOR)] if data == "raw" else
                  [*T.AGIPD1M(raw=False, frames_per_train=2, module_shape=(4, 4),
                              n_modules=1)]).write(
            root / "SPB" / "202601" / "p001234" / data / "r0007")
    monkeypatch.setenv("EXFEL_DATA_ROOT", str(root))
    assert ed.open_run(1234, 7).all_sources == {MOTOR, MOD.format(0)}  # data='default'
    raw = ed.open_run(1234, 7, data="raw")
    assert raw.all_sources == {MOTOR}
    assert ed.open_run(1234, 7, data="proc").all_sources == {MOD.format(0)}
    assert ed.open_run("p001234", "r0007", data="all").all_sources == {MOTOR, MOD.format(0)}
    with pytest.raises(FileNotFoundError, match="p009999"):
        ed.open_run(9999, 7)
    with pytest.raises(FileNotFoundError, match="r0008"):
        ed.open_run(1234, 8)


def test_run_handler(tmp_path, capsys):
    plan, path = write(tmp_path, "1.3")
    h = ed.RunHandler(path)
    info = h.infos()
    assert info["n_trains"] == 20 and info["first_train"] == 10000
    assert "# of trains:    20" in capsys.readouterr().out
    tid, data = h.train_from_index(12, devices={MOD.format(1): {"image.data"}})
    assert tid == 10012 and set(data) == {MOD.format(1)}
    assert set(data[MOD.format(1)]) == {"image.data", "metadata"}
    assert data[MOD.format(1)]["image.data"].shape == (3, 2, 8, 4)
    tid, data = h.train_from_id(10003, devices={MOTOR: None})
    assert data[MOTOR]["actualPosition.value"] == plan.device(MOTOR).values(
        "actualPosition", [10003])[0]
    assert [t for t, _ in h.trains(devices={MOTOR: None})] == plan.train_ids.tolist()
    ordered = h.ordered_trains
    assert len(ordered) == 20 and ordered[0][0] == 10000


def test_union_of_runs_sharing_trains_names_the_real_files(tmp_path):
    """Two runs recording the same train IDs: union() names both runs' files as they are."""
    one = T.RunPlan(n_trains=6, devices=[T.XGM()], run_number=1).write(tmp_path / "r0001")
    two = T.RunPlan(n_trains=6, devices=[T.XGM(), T.Motor(MOTOR)],
                    run_number=2).write(tmp_path / "r0002")
    run1, run2 = ed.RunDirectory(one), ed.RunDirectory(two)
    with pytest.raises(ed.DuplicateTrainError, match="different folders that share train IDs"
                       ) as exc:
        run1.union(run2)
    assert exc.value.train_id == 10000
    assert exc.value.files == [str(one / "RAW-R0001-DA01-S00000.h5"),
                               str(two / "RAW-R0002-DA01-S00000.h5")]
    assert all(os.path.exists(f) for f in exc.value.files)
    # different sources from each run combine; run-level values then refuse to guess
    both = run1.union(run2.deselect("SA1_XTD2_XGM/*"))
    assert both.all_sources == run1.all_sources | {MOTOR}
    np.testing.assert_array_equal(both.train_ids, run1.train_ids)
    with pytest.raises(ed.MultiRunError, match=r"run_metadata\(\) needs data from a single "
                       r"run, but this data combines several \(runs .*r0001.*r0002"):
        both.run_metadata()


def test_union_of_runs_with_different_trains(tmp_path):
    one = T.RunPlan(n_trains=4, devices=[T.XGM()], run_number=1).write(tmp_path / "r0001")
    two = T.RunPlan(n_trains=4, first_train_id=10004, devices=[T.XGM()],
                    run_number=2).write(tmp_path / "r0002")
    both = ed.RunDirectory(one) | ed.RunDirectory(two)
    np.testing.assert_array_equal(both.train_ids, np.arange(10000, 10008))
    assert len(both[XGM, "beamPosition.ixPos"].ndarray()) == 8
    with pytest.raises(ed.MultiRunError, match=r"run_value\(\) needs data from a single run"):
        both.get_run_value(XGM, "beamPosition.ixPos")


def test_file_filter_chooses_files(tmp_path):
    plan, path = write(tmp_path)
    seen = []

    def only_da01_first_sequence(paths):
        seen.extend(paths)
        return [p for p in paths if p.endswith("-DA01-S00000.h5")]

    run = ed.RunDirectory(path, file_filter=only_da01_first_sequence)
    assert sorted(os.path.basename(p) for p in seen) == sorted(f.name for f in plan.files)
    assert [os.path.basename(f.filename) for f in run.files] == ["RAW-R0001-DA01-S00000.h5"]
    first = next(f for f in plan.files if f.name == "RAW-R0001-DA01-S00000.h5")
    np.testing.assert_array_equal(run.train_ids, first.train_ids)
    assert not any("AGIPD" in s for s in run.all_sources)
    with pytest.raises(FileNotFoundError, match=f"file_filter kept none of the "
                       f"{len(plan.files)} .h5 files matching '\\*' in "):
        ed.RunDirectory(path, file_filter=lambda paths: [])
