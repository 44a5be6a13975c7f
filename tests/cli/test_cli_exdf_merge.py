"""exdf output read back by our reader and extra-data; --part i/N + merge; --workers."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from exfel_data import RunDirectory
from exfel_data.cli import main
from exfel_data.write.convert import convert

XGM = "SA1_XTD2_XGM/XGM/DOOCS"
SELECT = ["SA1_XTD2_XGM/*", "*/DET/[02]CH0:xtdf[image.*]", "SPB_XTD9_CAM*"]


def cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def _same(a, b):
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        dec = [v.decode() if isinstance(v, bytes) else v for v in b.ravel()]
        return list(a.ravel()) == dec
    return a.dtype == b.dtype and np.array_equal(a, b)


def assert_same_data(src_run, out_path, sources_keys, extra_data_too=True):
    ours = RunDirectory(str(out_path))
    readers = [ours]
    if extra_data_too:
        import extra_data
        readers.append(extra_data.RunDirectory(str(out_path)))
    for r in readers:
        np.testing.assert_array_equal(r.train_ids, src_run.train_ids)
        assert set(r.all_sources) == {s for s, _ in sources_keys}
        for src, key in sources_keys:
            a = src_run[src, key].ndarray()
            b = r[src, key].ndarray()
            assert _same(a, b), (type(r), src, key)
            assert r[src, key].data_counts(labelled=False).tolist() == \
                src_run[src, key].data_counts(labelled=False).tolist()


def _selected(run, select):
    from exfel_data.write.convert import select_keys

    return select_keys(run, select)


def test_exdf_selection_readable_by_both(run_dir, tmp_path):
    out = tmp_path / "sel"
    res = cli("convert", run_dir, out, "--to", "exdf", "-q", "--trains", "1:11",
              *[a for s in SELECT for a in ("--select", s)])
    assert res.exit_code == 0, res.output
    src = RunDirectory(str(run_dir)).select_trains(slice(1, 11))
    pairs = _selected(src, SELECT)
    assert_same_data(src, out, pairs)
    names = sorted(p.name for p in out.glob("*.h5"))
    assert names == ["RAW-R0001-AGIPD00-S00000.h5", "RAW-R0001-AGIPD02-S00000.h5",
                     "RAW-R0001-DA01-S00000.h5", "RAW-R0001-DA02-S00000.h5"]
    with h5py.File(out / "RAW-R0001-DA01-S00000.h5", "r") as f:
        assert f["METADATA/dataFormatVersion"][0] == b"1.3"
        assert f["METADATA/runNumber"][0] == 1
    # RUN values and units survive
    ours = RunDirectory(str(out))
    orig = RunDirectory(str(run_dir))
    assert ours.get_run_values(XGM).keys() == orig.get_run_values(XGM).keys()
    assert ours[XGM, "pulseEnergy.photonFlux.value"].units == \
        orig[XGM, "pulseEnergy.photonFlux.value"].units


def test_exdf_control_value_without_timestamp_selected(run_dir, tmp_path):
    out = tmp_path / "v"
    convert(run_dir, out, "exdf", select=[f"{XGM}[beamPosition.ixPos.value]"])
    ours = RunDirectory(str(out))
    assert ours.keys_for_source(XGM) == {"beamPosition.ixPos.value",
                                         "beamPosition.ixPos.timestamp"}
    np.testing.assert_array_equal(
        ours[XGM, "beamPosition.ixPos.timestamp"].ndarray(),
        RunDirectory(str(run_dir))[XGM, "beamPosition.ixPos.timestamp"].ndarray())


FORMAT_CASES = [
    ("exdf", "out", [f"{XGM}[beamPosition.*]", "*/DET/0CH0:xtdf[image.*]"]),
    ("npz", "out.npz", SELECT),
    ("csv", "out.csv", [f"{XGM}[*.value]", "SA1_XTD2_XGM/*:output[data.intensityTD]"]),
    ("json", "out.json", [f"{XGM}[*.value]"]),
    ("cxi", "out.cxi", ["*/DET/*"]),
    ("png", "out", ["SPB_XTD9_CAM*[data.image.pixels]"]),
    ("zarr", "out.zarr", ["SA1_XTD2_XGM/*:output", f"{XGM}[location.*]"]),
    ("mat", "out.mat", [f"{XGM}[*.value]", "*/DET/0CH0:xtdf[image.data]"]),
]


@pytest.mark.parametrize("fmt, name, select", FORMAT_CASES)
def test_parts_merge_equal_whole(run_dir, tmp_path, fmt, name, select):
    whole = tmp_path / "whole" / name
    whole.parent.mkdir()
    convert(run_dir, whole, fmt, select=select, trains=":11")
    parts = []
    for i in (3, 1, 2):  # any order
        p = tmp_path / f"p{i}" / name
        p.parent.mkdir()
        res = cli("convert", run_dir, p, "--to", fmt, "-q", "--trains", ":11",
                  "--part", f"{i}/3", *[a for s in select for a in ("--select", s)])
        assert res.exit_code == 0, res.output
        parts.append(p)
    merged = tmp_path / "merged" / name
    merged.parent.mkdir()
    res = cli("merge", "-q", *parts, merged)
    assert res.exit_code == 0, res.output
    assert_equal_outputs(fmt, whole, merged, run_dir)
    for p in parts:  # parts are left intact
        assert p.exists()


def assert_equal_outputs(fmt, a, b, run_dir):
    if fmt == "exdf":
        ra = RunDirectory(str(a))
        assert len(list(b.glob("*.h5"))) == 3 * len(list(a.glob("*.h5")))
        assert_same_data(ra, b, [(s, k) for s in ra.all_sources for k in ra.keys_for_source(s)])
    elif fmt == "npz":
        with np.load(a) as za, np.load(b) as zb:
            assert sorted(za.files) == sorted(zb.files)
            for n in za.files:
                np.testing.assert_array_equal(za[n], zb[n])
    elif fmt in ("csv",):
        assert a.read_text() == b.read_text()
    elif fmt == "json":
        da, db = json.loads(a.read_text()), json.loads(b.read_text())
        assert da == db
    elif fmt == "cxi":
        with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
            for n in ("entry_1/instrument_1/detector_1/data", "entry_1/trainId",
                      "entry_1/pulseId", "entry_1/cellId", "entry_1/experiment_identifier",
                      "entry_1/instrument_1/detector_1/module_identifier", "cxi_version"):
                np.testing.assert_array_equal(fa[n][()], fb[n][()])
            # the NXdata link points at the merged detector data
            assert fb["entry_1/data_1/data"] == fb["entry_1/instrument_1/detector_1/data"]
            assert "exfel_data_part" not in fb.attrs
    elif fmt == "png":
        la = sorted(p.relative_to(a) for p in a.rglob("*.png"))
        assert la == sorted(p.relative_to(b) for p in b.rglob("*.png"))
        assert all((a / p).read_bytes() == (b / p).read_bytes() for p in la)
    elif fmt == "zarr":
        import zarr

        ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
        for n in ("trainId", "SA1_XTD2_XGM/XGM/DOOCS:output/data.intensityTD",
                  "SA1_XTD2_XGM/XGM/DOOCS/location.value",
                  "SA1_XTD2_XGM/XGM/DOOCS/location.value.trainId"):
            np.testing.assert_array_equal(ga[n][:], gb[n][:])
    elif fmt == "mat":
        import scipy.io as sio

        ma, mb = sio.loadmat(str(a)), sio.loadmat(str(b))
        np.testing.assert_array_equal(ma["trainId"], mb["trainId"])
        for var in ("SA1_XTD2_XGM_XGM_DOOCS", "SPB_DET_AGIPD1M_1_DET_0CH0_xtdf"):
            for field in ma[var].dtype.names:
                for sub in ("data", "trainId"):
                    np.testing.assert_array_equal(ma[var][field][0, 0][sub][0, 0],
                                                  mb[var][field][0, 0][sub][0, 0])


def test_merge_checks_parts(run_dir, tmp_path):
    def part(i, n, trains=":11", name="p"):
        p = tmp_path / f"{name}{i}of{n}{trains.replace(':', '_')}.npz"
        convert(run_dir, p, "npz", select=[f"{XGM}[*.value]"], trains=trains, part=(i, n))
        return p

    p1, p2, p3 = part(1, 3), part(2, 3), part(3, 3)
    res = cli("merge", p1, p3, tmp_path / "m.npz")
    assert res.exit_code == 1 and "Missing part(s) 2/3" in res.output
    res = cli("merge", p1, p2, p2, p3, tmp_path / "m.npz")
    assert res.exit_code == 1 and "more than once" in res.output
    other = part(2, 3, trains=":10", name="o")
    res = cli("merge", p1, other, p3, tmp_path / "m.npz")
    assert res.exit_code == 1 and "different conversions" in res.output
    whole = tmp_path / "whole.npz"
    convert(run_dir, whole, "npz", select=[f"{XGM}[*.value]"])
    res = cli("merge", whole, tmp_path / "m.npz")
    assert res.exit_code == 1 and "not a part output" in res.output
    assert not (tmp_path / "m.npz").exists()


def test_part_too_many(run_dir, tmp_path):
    res = cli("convert", run_dir, tmp_path / "x.npz", "--to", "npz", "--trains", ":2",
              "--part", "2/3")
    assert res.exit_code == 1 and "has no trains" in res.output


def test_workers(run_dir, tmp_path):
    whole, par = tmp_path / "w.npz", tmp_path / "p.npz"
    convert(run_dir, whole, "npz", select=SELECT)
    res = cli("convert", run_dir, par, "--to", "npz", "-q", "--workers", "2",
              *[a for s in SELECT for a in ("--select", s)])
    assert res.exit_code == 0, res.output
    assert_equal_outputs("npz", whole, par, run_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz", "w.npz"]


@pytest.mark.parametrize("fmt, name, select", [c for c in FORMAT_CASES if c[0] != "npz"])
def test_workers_every_format_equal_whole(run_dir, tmp_path, fmt, name, select):
    """--workers 3: three processes write parts that are merged into what one writes."""
    whole, par = tmp_path / "whole" / name, tmp_path / "par" / name
    whole.parent.mkdir()
    par.parent.mkdir()
    convert(run_dir, whole, fmt, select=select, trains=":11")
    res = cli("convert", run_dir, par, "--to", fmt, "-q", "--trains", ":11", "--workers", "3",
              *[a for s in select for a in ("--select", s)])
    assert res.exit_code == 0, res.output
    assert_equal_outputs(fmt, whole, par, run_dir)
    assert [p.name for p in par.parent.iterdir()] == [name]  # no part folder left


def test_merge_overwrite(run_dir, tmp_path):
    parts = []
    for i in (1, 2):
        parts.append(tmp_path / f"p{i}.npz")
        convert(run_dir, parts[-1], "npz", select=[f"{XGM}[*.value]"], part=(i, 2))
    out = tmp_path / "m.npz"
    out.write_bytes(b"an older file")
    res = cli("merge", "-q", *parts, out)
    assert res.exit_code == 1 and "already exists" in res.output and "--overwrite" in res.output
    assert out.read_bytes() == b"an older file"  # untouched without --overwrite
    res = cli("merge", "-q", "--overwrite", *parts, out)
    assert res.exit_code == 0, res.output
    whole = tmp_path / "whole.npz"
    convert(run_dir, whole, "npz", select=[f"{XGM}[*.value]"])
    assert_equal_outputs("npz", whole, out, run_dir)


def test_workers_with_part_outputs(run_dir, tmp_path):
    # csv has no direct parallel writer: workers write part outputs which are merged
    whole, par = tmp_path / "w.csv", tmp_path / "p.csv"
    sel = [f"{XGM}[*.value]"]
    convert(run_dir, whole, "csv", select=sel)
    res = cli("convert", run_dir, par, "--to", "csv", "-q", "--select", sel[0],
              "--workers", "3")
    assert res.exit_code == 0, res.output
    assert par.read_text() == whole.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "w.csv"]


def test_scheduler_address(run_dir, tmp_path):
    import distributed
    whole, par = tmp_path / "w.csv", tmp_path / "p.csv"
    sel = [f"{XGM}[*.value]"]
    convert(run_dir, whole, "csv", select=sel)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        res = cli("convert", run_dir, par, "--to", "csv", "-q", "--select", sel[0],
                  "--scheduler", cluster.scheduler_address, "--workers", "3")
        # the parts ran on this cluster (an ignored --scheduler would leave it idle)
        # (state_counts: how many tasks ever reached a state)
        ran = sum(p.state_counts["memory"] for p in cluster.scheduler.task_prefixes.values())
    assert res.exit_code == 0, res.output
    assert ran == 3, "the parts did not run on the cluster"
    assert par.read_text() == whole.read_text()


def test_exdf_keeps_input_chunks_and_compression(tmp_path):
    # docs/formats.md: "datasets keep the input's chunking and compression".
    import h5py
    import numpy as np

    from exfel_data.write import ExdfWriter
    from exfel_data.write.convert import convert

    src = "SPB_CAM/DEV/A:output"
    run_dir = tmp_path / "r0010"
    with ExdfWriter(run_dir / "RAW-R0010-DA01-S00000.h5", np.arange(10000, 10006),
                    run_number=10) as w:
        w.add_instrument_source(src, {"data": 2})
        w.add_instrument_key(src, "data.image", np.uint16, (4, 6), chunks=(3, 4, 6),
                             compression="gzip", compression_opts=3)
        w.add_instrument_key(src, "data.plain", np.float32, (5,))
        w.write(src, "data.image", np.arange(12 * 24, dtype=np.uint16).reshape(12, 4, 6))
        w.write(src, "data.plain", np.ones((12, 5), np.float32))
    convert(run_dir, tmp_path / "out", "exdf", trains="1:4")
    with h5py.File(tmp_path / "out" / "RAW-R0010-DA01-S00000.h5") as f:
        image, plain = f[f"INSTRUMENT/{src}/data/image"], f[f"INSTRUMENT/{src}/data/plain"]
        assert image.chunks == (3, 4, 6) and image.compression == "gzip"
        assert image.compression_opts == 3
        np.testing.assert_array_equal(image[()], np.arange(2 * 24, 8 * 24).reshape(6, 4, 6))
        assert plain.chunks is None and plain.compression is None
