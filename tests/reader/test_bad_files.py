"""Damaged and replaced files: never wrong data in silence (issue 10, reader side).

The corpus is generated in tmp_path (never committed): each case damages one sequence
file of a small run with plain h5py and states the expected outcome: ``opened`` (with a
warning naming the file where the reader can see the damage), ``skipped`` (a warning
naming the file at open) or ``error`` (a project error naming the file when the data is
read).
"""

import os
import re
import shutil
import warnings

import h5py
import numpy as np
import pytest

import exfel_data as ed
from exfel_data.rowindex import IndexWarning
from exfel_data.testing import XGM, make_run

CTRL = "SA1_XTD2_XGM/XGM/DOOCS"
OUT = "SA1_XTD2_XGM/XGM/DOOCS:output"
KEY = "data.intensityTD"
DS = f"INSTRUMENT/{OUT}/data/intensityTD"
BAD = "RAW-R0001-DA01-S00001.h5"  # the damaged file (trains 10003..10005)


def _run(path, first_train_id=10000):
    return make_run(path, n_trains=9, trains_per_file=3, devices=[XGM()],
                    first_train_id=first_train_id, progress=False)


def _open(path, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        run = ed.RunDirectory(path, **kw)
    return run, [str(x.message) for x in w]


def _expected_intensity(path):
    """intensityTD of all files in train order, read with plain h5py (the truth)."""
    tids, rows = [], []
    for name in sorted(os.listdir(path)):
        if name.endswith(".h5"):
            with h5py.File(os.path.join(path, name), "r") as f:
                count = f[f"INDEX/{OUT}/data/count"][:]
                n = int(np.count_nonzero(f["INDEX/trainId"][:]))
                assert (count[:n] == 1).all()
                tids.append(f["INDEX/trainId"][:n])
                rows.append(f[DS][:n])
    return np.concatenate(rows)[np.argsort(np.concatenate(tids), kind="stable")]


# -- stale metadata: the run map cache and lazily opened files ---------------------------

def _replace(src, dst, how):
    """Put the content of *src* at *dst*, keeping dst's size and mtime."""
    st = os.stat(dst)
    assert os.stat(src).st_size == st.st_size  # the case needs a same-size replacement
    if how == "in_place":        # cp over the file (same inode), then touch -r
        shutil.copyfile(src, dst)
    elif how == "rename":        # rsync -t / tar: a new file renamed into place
        shutil.copyfile(src, str(dst) + ".tmp")
        os.replace(str(dst) + ".tmp", dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(dst).st_mtime_ns == st.st_mtime_ns


@pytest.fixture
def two_runs(tmp_path):
    a = _run(tmp_path / "a" / "r0001")
    b = _run(tmp_path / "b" / "r0001", first_train_id=20000)
    return a, b


@pytest.mark.parametrize("how", ["in_place", "rename"])
def test_cache_not_trusted_for_same_size_same_mtime_replacement(two_runs, how):
    a, b = two_runs
    ed.RunDirectory(a)  # writes the run map
    assert os.path.exists(a / ".exfel_data_map.npz")
    _replace(b / BAD, a / BAD, how)
    run, _ = _open(a)
    expected = np.concatenate([np.arange(10000, 10003), np.arange(10006, 10009),
                               np.arange(20003, 20006)])
    np.testing.assert_array_equal(run.train_ids, expected)
    kd = run[OUT, KEY]
    np.testing.assert_array_equal(kd.ndarray(), _expected_intensity(a))


def test_cache_entry_also_checked_at_first_read(two_runs, monkeypatch):
    """A cache entry whose stat matches is still checked against the file when read."""
    a, b = two_runs
    ed.RunDirectory(a)
    _replace(b / BAD, a / BAD, "in_place")
    from exfel_data import run_map
    monkeypatch.setattr(run_map, "same_file", lambda info, st: True)  # a fooled stat check
    run, _ = _open(a)
    with pytest.raises(ed.FileChangedError, match=f"{BAD} changed on disk.*Open the run again"):
        run[OUT, KEY].ndarray()
    for fa in run.files:  # as if only size and mtime were recorded: the content check
        fa.ino = fa.ctime_ns = None
    with pytest.raises(ed.FileChangedError, match=f"{BAD}.*different INDEX/trainId"):
        run[OUT, KEY].ndarray()


@pytest.mark.parametrize("cache", [True, False])
def test_file_replaced_after_open_before_first_read(two_runs, cache):
    a, b = two_runs
    run, _ = _open(a, cache=cache)
    _replace(b / BAD, a / BAD, "rename")
    np.testing.assert_array_equal(run.select_trains(np.s_[:3])[OUT, KEY].ndarray(),
                                  _expected_intensity(a)[:3])  # other files still read
    with pytest.raises(ed.FileChangedError, match=BAD):
        run[OUT, KEY].ndarray()
    with pytest.raises(ed.FileChangedError, match=BAD):
        list(run.select(OUT).trains())


def test_dask_task_refuses_file_replaced_after_planning(two_runs):
    a, b = two_runs
    run, _ = _open(a, cache=False)
    arr = run[OUT, KEY].dask_array()  # planned (files opened, checked) before the change
    _replace(b / BAD, a / BAD, "rename")
    with pytest.raises(ed.FileChangedError, match=BAD):
        arr.compute()


def test_file_truncated_after_open(tmp_path):
    path = _run(tmp_path / "r0001")
    run, _ = _open(path)
    with open(path / BAD, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ed.FileStructureError, match=f"{BAD}.*cannot open.*file_filter"):
        run[OUT, KEY].ndarray()


def test_touched_file_is_rescanned(tmp_path):
    """Only ctime changes (chmod, touch -r with the same content): same data, rescanned."""
    a = _run(tmp_path / "r0001")
    ed.RunDirectory(a)
    st = os.stat(a / BAD)
    os.chmod(a / BAD, 0o444)
    os.utime(a / BAD, ns=(st.st_atime_ns, st.st_mtime_ns))
    from exfel_data import file_set
    scanned = []
    orig = file_set.scan_file
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(file_set, "scan_file", lambda p, st=None: scanned.append(p) or orig(p, st))
        run, _ = _open(a)
    assert [os.path.basename(p) for p in scanned] == [BAD]
    np.testing.assert_array_equal(run[OUT, KEY].ndarray(), _expected_intensity(a))


# -- the corpus of damaged files --------------------------------------------------------

def _edit(path, fn):
    with h5py.File(path / BAD, "r+") as f:
        fn(f)


def all_zero_train_ids(f):
    f["INDEX/trainId"][:] = 0


def flag_shorter_than_train_ids(f):
    flag = f["INDEX/flag"][:2]
    del f["INDEX/flag"]
    f["INDEX/flag"] = flag


def overlapping_index(f):
    f[f"INDEX/{OUT}/data/first"][2] = 0  # train 10005 claims the rows of 10003


def reversed_index(f):
    first = f[f"INDEX/{OUT}/data/first"]
    first[:3] = first[:3][::-1]


def count_2_62(f):
    f[f"INDEX/{OUT}/data/count"][1] = 2**62


def count_past_dataset(f):
    f[f"INDEX/{OUT}/data/count"][2] = 50


def other_dtype(f):
    data = f[DS][:]
    del f[DS]
    f[DS] = data.astype(np.float64)


def other_shape(f):
    data = f[DS][:]
    del f[DS]
    f[DS] = data[:, :10]


def deleted_dataset(f):
    del f[DS]


def damaged_object_header(f):
    addr = h5py.h5o.get_info(f[DS].id).addr
    name = f.filename
    f.flush()
    f.close()
    with open(name, "r+b") as fh:
        fh.seek(addr)
        fh.write(b"\xff" * 64)


def corrupt_compressed_chunk(f):
    data = f[DS][:]
    del f[DS]
    ds = f.create_dataset(DS, data=data, chunks=(1,) + data.shape[1:], compression="gzip")
    info = ds.id.get_chunk_info(1)
    name = f.filename
    f.flush()
    f.close()
    with open(name, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\x00\xff" * (info.size // 2))


def unknown_version(f):
    del f["METADATA/dataFormatVersion"]
    f["METADATA/dataFormatVersion"] = np.array([b"banana"], dtype=object)


def unreadable(f):
    name = f.filename
    f.close()
    with open(name, "r+b") as fh:
        fh.truncate(1000)


# (damage, expected outcome, message regex (file name always required))
CORPUS = [
    (all_zero_train_ids, "opened", "all \\d+ rows of INDEX/trainId are 0"),
    (flag_shorter_than_train_ids, "skipped", "INDEX/flag"),
    (unreadable, "skipped", "Skipping unreadable file"),
    (unknown_version, "opened", "unknown dataFormatVersion 'banana'"),
    (overlapping_index, "opened", "overlap or run backwards"),
    (reversed_index, "opened", "overlap or run backwards"),
    (count_2_62, "error", "impossible row numbers"),
    (count_past_dataset, "error", "INDEX points to rows up to 51"),
    (other_dtype, "error", "float64 \\(1000,\\) in this file but float32"),
    (other_shape, "error", "\\(10,\\) in this file but float32 \\(1000,\\)"),
    (deleted_dataset, "error", "not in this file"),
    (damaged_object_header, "error", "intensityTD"),
    (corrupt_compressed_chunk, "error", "source 'SA1_XTD2_XGM/XGM/DOOCS:output', key "
                                        "'data.intensityTD'.*file_filter"),
]


@pytest.mark.parametrize("damage, outcome, message", CORPUS,
                         ids=[c[0].__name__ for c in CORPUS])
def test_bad_file_corpus(tmp_path, damage, outcome, message):
    path = _run(tmp_path / "r0001")
    _edit(path, damage)
    run, warned = _open(path)
    names = {os.path.basename(f.filename) for f in run.files}
    if outcome == "skipped":
        assert BAD not in names
        assert any(BAD in w and re.search(message, w) for w in warned), warned
        assert len(run[OUT, KEY].ndarray()) == 6
        return
    assert BAD in names
    if outcome == "opened":
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            arr = run[OUT, KEY].ndarray()
            list(run.trains())
        warned += [str(x.message) for x in w]
        assert any(BAD in m and re.search(message, m) for m in warned), warned
        if damage in (overlapping_index, reversed_index):
            assert any(issubclass(x.category, IndexWarning) and OUT in str(x.message)
                       for x in w)
        assert arr.shape[1:] == (1000,)
        return
    kd = run[OUT, KEY]
    with pytest.raises(ed.FileStructureError, match=BAD) as exc:
        kd.ndarray()
    assert re.search(message, str(exc.value)), str(exc.value)
    reads = [kd.xarray, lambda: kd.dask_array().compute(),
             lambda: list(run.select(OUT).trains()), lambda: dict(kd.trains())]
    if damage is not corrupt_compressed_chunk:  # planning alone sees the others
        reads.append(lambda: kd.shape)
    for read in reads:
        with pytest.raises(ed.FileStructureError, match=BAD):
            read()
    # the other files are still readable by leaving the bad one out, as the message says
    good = ed.RunDirectory(path, file_filter=lambda ps: [p for p in ps if not p.endswith(BAD)])
    assert good[OUT, KEY].shape == (6, 1000)


def test_index_counts_only_checked_when_used(tmp_path):
    """data_counts is index only; a damaged count in another source does not stop reads."""
    path = _run(tmp_path / "r0001")
    _edit(path, count_past_dataset)
    run, _ = _open(path)
    assert run[OUT].data_counts(labelled=False).tolist() == [1] * 5 + [50] + [1] * 3
    np.testing.assert_array_equal(run[CTRL, "beamPosition.ixPos"].ndarray().shape, (9,))


def test_missing_index_group_is_zero_rows(tmp_path):
    """A file whose source list lacks an index group holds no rows of it (decided once)."""
    path = _run(tmp_path / "r0001")
    with h5py.File(path / BAD, "r+") as f:
        sids = f["METADATA/dataSources/dataSourceId"]
        keep = [s for s in sids[:] if s != f"INSTRUMENT/{OUT}/data".encode()]
        del f["METADATA/dataSources/dataSourceId"]
        f["METADATA/dataSources/dataSourceId"] = np.array(keep, dtype=object)
        del f[f"INDEX/{OUT}"]
    run, _ = _open(path)
    kd = run[OUT, KEY]
    assert kd.data_counts(labelled=False).tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1]
    assert run[OUT].data_counts(labelled=False).tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1]
    assert kd.shape == (6, 1000)
    got = [t for t, d in run.select(OUT).trains() if KEY in d.get(OUT, {})]
    assert got == [10000, 10001, 10002, 10006, 10007, 10008]


def test_listed_index_group_without_index_is_an_error(tmp_path):
    path = _run(tmp_path / "r0001")
    _edit(path, lambda f: f.__delitem__(f"INDEX/{OUT}/data"))
    run, _ = _open(path)
    with pytest.raises(ed.FileStructureError, match=f"{BAD}.*INDEX/{OUT}/data.*file_filter"):
        run[OUT, KEY].ndarray()
    with pytest.raises(ed.FileStructureError, match=BAD):
        run[OUT].data_counts()


@pytest.mark.parametrize("damage", [count_2_62, other_shape, corrupt_compressed_chunk,
                                    damaged_object_header], ids=lambda d: d.__name__)
def test_convert_reports_bad_file_without_traceback(tmp_path, damage):
    from click.testing import CliRunner

    from exfel_data.cli import main

    path = _run(tmp_path / "r0001")
    _edit(path, damage)
    out = tmp_path / "out.npz"
    res = CliRunner().invoke(main, ["convert", str(path), str(out), "--to", "npz"])
    assert res.exit_code == 1, res.output
    assert BAD in res.output and "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)  # a clean exit, not an exception
    assert not out.exists()


def test_index_of_corrupt_zero_rows_is_ignored(tmp_path):
    """Rows with train ID 0 are never used, so damage in their index entries is ignored."""
    path = _run(tmp_path / "r0001")

    def zero_row_with_garbage(f):
        f["INDEX/trainId"][1] = 0
        f[f"INDEX/{OUT}/data/count"][1] = 2**62

    expected = np.delete(_expected_intensity(path), 4, axis=0)  # train 10004 goes
    _edit(path, zero_row_with_garbage)
    run, warned = _open(path)
    assert any(BAD in w and "train ID 0" in w for w in warned)
    assert 10004 not in run.train_ids
    np.testing.assert_array_equal(run[OUT, KEY].ndarray(), expected)


@pytest.mark.parametrize("count", [500, 2**62])
def test_detector_reads_name_the_damaged_module_file(tmp_path, count):
    from exfel_data.testing import AGIPD1M as SimAGIPD

    path = make_run(tmp_path / "r0001", n_trains=6, trains_per_file=3, progress=False,
                    devices=list(SimAGIPD(frames_per_train=2, module_shape=(8, 4),
                                          n_modules=2, raw=False)))
    bad = "CORR-R0001-AGIPD00-S00001.h5"
    with h5py.File(path / bad, "r+") as f:
        f["INDEX/SPB_DET_AGIPD1M-1/DET/0CH0:xtdf/image/count"][1] = count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ed.RunDirectory(path)
        with pytest.raises(ed.FileStructureError, match=bad):
            det = ed.AGIPD1M(run)
            det.get_array("image.data")
        with pytest.raises(ed.FileStructureError, match=bad):
            ed.AGIPD1M(run).get_dask_array("image.data").compute()
