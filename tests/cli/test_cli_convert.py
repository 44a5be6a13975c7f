"""exfel-data convert: every format's content checked against the reader."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from exfel_data import RunDirectory
from exfel_data.cli import main
from exfel_data.write.convert import convert

XGM = "SA1_XTD2_XGM/XGM/DOOCS"
XGM_OUT = "SA1_XTD2_XGM/XGM/DOOCS:output"
CAM = "SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput"
AGIPD = "SPB_DET_AGIPD1M-1/DET/{}CH0:xtdf"


def cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


@pytest.fixture(scope="module")
def run(run_dir):
    return RunDirectory(str(run_dir))


def test_npz_all_keys(run_dir, run, tmp_path):
    out = tmp_path / "all.npz"
    res = cli("convert", run_dir, out, "--to", "npz", "-q")
    assert res.exit_code == 0, res.output
    with np.load(out) as z:
        np.testing.assert_array_equal(z["trainId"], run.train_ids)
        assert len(z["timestamp"]) == len(run.train_ids)
        n = 0
        for src in run.all_sources:
            for key in run.keys_for_source(src):
                kd = run[src, key]
                expected = kd.ndarray()
                got = z[f"{src}/{key}"]
                if expected.dtype.kind == "O":
                    assert got.tolist() == [str(v) for v in expected]
                else:
                    assert got.dtype == kd.dtype
                    np.testing.assert_array_equal(got, expected)
                np.testing.assert_array_equal(z[f"{src}/{key}.trainId"],
                                              kd.train_id_coordinates())
                n += 1
    assert n > 20


def test_npz_selection_trains_and_small_blocks(run_dir, run, tmp_path):
    # Blocks of a few hundred bytes: many blocks per key, same result (streaming).
    out = tmp_path / "sel.npz"
    convert(run_dir, out, "npz", select=[f"{AGIPD.format('*')}[image.data]", f"{XGM}[*.value]"],
            trains="2:9:2", block_bytes=300)
    sel = run.select_trains(slice(2, 9, 2))
    with np.load(out) as z:
        np.testing.assert_array_equal(z["trainId"], sel.train_ids)
        names = {n for n in z.files if not n.endswith(".trainId")} - {"trainId", "timestamp"}
        assert f"{AGIPD.format(3)}/image.data" in names
        assert not any(n.endswith(".timestamp") for n in names)
        np.testing.assert_array_equal(z[f"{AGIPD.format(2)}/image.data"],
                                      sel[AGIPD.format(2), "image.data"].ndarray())


def test_plan_blocks_bounded(run_dir):
    from exfel_data.write.convert import build_plan, open_input

    plan = build_plan(open_input(run_dir), [f"{AGIPD.format(0)}[image.data]"],
                      block_bytes=4000)
    (kp,) = plan.keys
    blocks = list(plan.key_blocks(kp))
    per_train = 3 * kp.row_nbytes
    assert len(blocks) > 3
    assert all(b.nbytes <= max(4000, per_train) for b in blocks)
    assert sum(len(b.data) for b in blocks) == kp.n_rows


def test_csv(run_dir, run, tmp_path):
    out = tmp_path / "xgm.csv"
    res = cli("convert", run_dir, out, "--to", "csv", "-q", "--select", f"{XGM}[*.value]",
              "--select", f"{XGM_OUT}[data.intensityTD]", "--trains", ":5")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    sel = run.select_trains(slice(0, 5))
    np.testing.assert_array_equal(df["trainId"], sel.train_ids)
    assert pd.to_datetime(df["timestamp"]).notna().all()
    np.testing.assert_allclose(df[f"{XGM}/beamPosition.ixPos.value"],
                               sel[XGM, "beamPosition.ixPos.value"].ndarray())
    td = sel[XGM_OUT, "data.intensityTD"].ndarray()
    np.testing.assert_allclose(df[f"{XGM_OUT}/data.intensityTD[999]"], td[:, 999])
    assert df[f"{XGM}/location.value"].tolist() == list(sel[XGM, "location.value"].ndarray())


def test_csv_refuses_per_pulse_and_images(run_dir, tmp_path):
    res = cli("convert", run_dir, tmp_path / "x.csv", "--to", "csv",
              "--select", f"{AGIPD.format(0)}[image.cellId]")
    assert res.exit_code == 1
    assert "image.cellId" in res.output and "entries per train" in res.output
    res = cli("convert", run_dir, tmp_path / "x.csv", "--to", "csv", "--select", CAM)
    assert res.exit_code == 1 and "data.image.pixels" in res.output
    assert not (tmp_path / "x.csv").exists()


def test_json(run_dir, run, tmp_path):
    out = tmp_path / "xgm.json"
    convert(run_dir, out, "json", select=[f"{XGM}[*.value]"])
    doc = json.loads(out.read_text())
    assert doc["format"] == "exfel-data table 1"
    recs = doc["trains"]
    assert [r["trainId"] for r in recs] == run.train_ids
    vals = run[XGM, "pulseEnergy.photonFlux.value"].ndarray()
    assert [r[f"{XGM}/pulseEnergy.photonFlux.value"] for r in recs] == \
        [float(str(v)) for v in vals]
    assert set(doc["columns"]) == {"trainId", "timestamp", *recs[0]}


def first_entry_in_files(run_dir, source, key, train_id):
    """The first entry of ``source``/``key`` in ``train_id``, read with plain h5py."""
    for path in sorted(run_dir.glob("*.h5")):
        with h5py.File(path, "r") as f:
            if f"INSTRUMENT/{source}" not in f:
                continue
            hit = np.flatnonzero(f["INDEX/trainId"][:] == train_id)
            if len(hit):
                group = key.split(".")[0]
                first = f[f"INDEX/{source}/{group}/first"][hit[0]]
                return f[f"INSTRUMENT/{source}/{key.replace('.', '/')}"][first]
    raise AssertionError(f"no {source} {key} in train {train_id}")


def test_png(run_dir, run, tmp_path):
    from PIL import Image as PIL

    out = tmp_path / "png"
    res = cli("convert", run_dir, out, "--to", "png", "-q", "--select",
              f"{CAM}[data.image.pixels]", "--select", f"{AGIPD.format(1)}[image.data]",
              "--png-scale", "fixed 0 1000")
    assert res.exit_code == 0, res.output
    cam = sorted((out / "SPB_XTD9_CAM_CAM_SIDEMIC_daqOutput" / "data.image.pixels").iterdir())
    assert [p.name for p in cam] == [f"{t}_0000.png" for t in run.train_ids]
    img = first_entry_in_files(run_dir, CAM, "data.image.pixels", run.train_ids[0])
    # fixed 0 1000: 0 -> black, 1000 and above -> white, linear and rounded between
    expected = np.clip(np.rint(img.astype(float) * 255 / 1000), 0, 255).astype(np.uint8)
    assert len(np.unique(expected)) > 10  # a real grey ramp, not a blank image
    np.testing.assert_array_equal(np.asarray(PIL.open(cam[0])), expected)
    # raw AGIPD entries (2, ss, fs): 3 frames/train x 2 planes
    agipd = list((out / "SPB_DET_AGIPD1M-1_DET_1CH0_xtdf" / "image.data").iterdir())
    assert len(agipd) == len(run.train_ids) * 3 * 2
    assert (out / "SPB_DET_AGIPD1M-1_DET_1CH0_xtdf/image.data/10000_0002_1.png").exists()
    res = cli("convert", run_dir, tmp_path / "bad", "--to", "png", "--select", XGM)
    assert res.exit_code == 1 and "2-D images" in res.output
    res = cli("convert", run_dir, tmp_path / "bad", "--to", "png", "--select", CAM,
              "--png-scale", "fixed 3")
    assert res.exit_code == 2 and "png-scale" in res.output


def test_cxi(run_dir, run, tmp_path):
    out = tmp_path / "agipd.cxi"
    res = cli("convert", run_dir, out, "--to", "cxi", "-q", "--select", "*/DET/*")
    assert res.exit_code == 0, res.output
    with h5py.File(out, "r") as f:
        assert f["cxi_version"][0] == 150
        data = f["entry_1/instrument_1/detector_1/data"]
        assert data.shape == (len(run.train_ids) * 3, 4, 2, 16, 8)
        assert f["entry_1/data_1/data"].shape == data.shape  # the link
        np.testing.assert_array_equal(f["entry_1/instrument_1/detector_1/module_identifier"],
                                      [0, 1, 2, 3])
        for m in range(4):
            np.testing.assert_array_equal(data[:, m], run[AGIPD.format(m), "image.data"].ndarray())
        tids = run[AGIPD.format(0), "image.trainId"].ndarray().ravel()
        np.testing.assert_array_equal(f["entry_1/trainId"], tids)
        pulses = run[AGIPD.format(0), "image.pulseId"].ndarray().ravel()
        np.testing.assert_array_equal(f["entry_1/pulseId"], pulses)
        cells = run[AGIPD.format(2), "image.cellId"].ndarray().ravel()
        np.testing.assert_array_equal(f["entry_1/cellId"][:, 2], cells)
        assert f["entry_1/experiment_identifier"][0].decode() == f"{tids[0]}:{pulses[0]}"
        assert "module_identifier" in f["entry_1/instrument_1/detector_1/data"].attrs["axes"]
    res = cli("convert", run_dir, tmp_path / "x.cxi", "--to", "cxi", "--select", XGM)
    assert res.exit_code == 1 and "no detector module source" in res.output


def test_zarr(run_dir, run, tmp_path):
    import zarr
    out = tmp_path / "x.zarr"
    convert(run_dir, out, "zarr", select=[XGM_OUT, f"{XGM}[location.*]"])
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(g["trainId"][:], run.train_ids)
    np.testing.assert_array_equal(g[f"{XGM_OUT}/data.intensityTD"][:],
                                  run[XGM_OUT, "data.intensityTD"].ndarray())
    assert list(g[f"{XGM}/location.value"][:]) == list(run[XGM, "location.value"].ndarray())
    np.testing.assert_array_equal(g[f"{XGM_OUT}/data.intensityTD.trainId"][:], run.train_ids)


def test_mat(run_dir, run, tmp_path):
    from scipy import io as sio
    out = tmp_path / "x.mat"
    convert(run_dir, out, "mat", select=[f"{XGM}[*.value]", XGM_OUT])
    m = sio.loadmat(str(out))
    np.testing.assert_array_equal(m["trainId"].ravel(), run.train_ids)
    var = {str(s.ravel()[0]): str(v.ravel()[0]) for v, s in m["source_names"]}
    key = m[var[XGM_OUT]]["data_intensityTD"][0, 0]
    np.testing.assert_array_equal(key["data"][0, 0], run[XGM_OUT, "data.intensityTD"].ndarray())
    np.testing.assert_array_equal(key["trainId"][0, 0].ravel(), run.train_ids)


def test_selection_errors_name_what_exists(run_dir, tmp_path):
    res = cli("convert", run_dir, tmp_path / "x.npz", "--to", "npz", "--select", "NOPE*")
    assert res.exit_code == 1
    assert "NOPE*" in res.output and XGM in res.output and str(run_dir) in res.output
    res = cli("convert", run_dir, tmp_path / "x.npz", "--to", "npz", "--select", f"{XGM}[nokey]")
    assert res.exit_code == 1 and "nokey" in res.output and "12 keys" in res.output
    res = cli("convert", run_dir, tmp_path / "x.npz", "--to", "npz", "--trains", "id:1:5")
    assert res.exit_code == 1 and "No trains selected" in res.output
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(run_dir, tmp_path):
    out = tmp_path / "x.csv"
    out.write_text("precious")
    res = cli("convert", run_dir, out, "--to", "csv", "--select", f"{XGM}[*.value]")
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert out.read_text() == "precious"
    res = cli("convert", run_dir, out, "--to", "csv", "--select", f"{XGM}[*.value]",
              "--overwrite", "-q")
    assert res.exit_code == 0 and out.read_text().startswith("trainId,")


@pytest.mark.parametrize("fmt, name", [("npz", "x.npz"), ("exdf", "x"), ("cxi", "x.cxi")])
def test_interrupted_conversion_leaves_nothing(run_dir, tmp_path, monkeypatch, fmt, name):
    from exfel_data.write import plan as plan_mod

    real_read = plan_mod._read
    calls = []

    def read_then_interrupt(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_read(*args, **kw)

    monkeypatch.setattr(plan_mod, "_read", read_then_interrupt)
    import exfel_data.keydata as kd_mod

    real_ndarray = kd_mod.KeyData.ndarray

    def ndarray_then_interrupt(self, *a, **kw):  # the cxi writer reads via ndarray
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_ndarray(self, *a, **kw)

    monkeypatch.setattr(kd_mod.KeyData, "ndarray", ndarray_then_interrupt)
    res = CliRunner().invoke(main, ["convert", str(run_dir), str(tmp_path / name), "--to", fmt,
                                    "--select", "*/DET/*[image.*]", "--block-mb", "1"])
    assert len(calls) >= 3
    assert res.exit_code == 130 and "Interrupted" in res.output
    assert list(tmp_path.iterdir()) == []  # neither the output nor a partial file


def test_missing_optional_dependency(run_dir, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_zarr(name, *a, **kw):
        if name == "zarr" or name.startswith("zarr."):
            raise ImportError("No module named 'zarr'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_zarr)
    monkeypatch.delitem(__import__("sys").modules, "zarr", raising=False)
    res = cli("convert", run_dir, tmp_path / "x.zarr", "--to", "zarr")
    assert res.exit_code == 1
    assert "pip install 'exfel-data[formats]'" in res.output and "zarr" in res.output


@pytest.mark.parametrize("cmd", [[], ["info"], ["validate"], ["convert"], ["merge"]])
def test_help_complete(cmd):
    res = cli(*cmd, "--help")
    assert res.exit_code == 0
    text = res.output
    if cmd == ["convert"]:
        for opt in ("--to", "--select", "--trains", "--append-detector-modules", "--overwrite",
                    "--quiet", "--workers", "--scheduler", "--part", "--png-scale"):
            assert opt in text
        for fmt in ("exdf", "cxi", "npz", "mat", "zarr", "csv", "json", "png"):
            assert f"  {fmt}" in text
    if cmd == []:
        for sub in ("info", "validate", "convert", "merge"):
            assert sub in text


def test_append_detector_modules(run_dir, tmp_path):
    out = tmp_path / "x.npz"
    convert(run_dir, out, "npz", select=[f"{AGIPD.format(2)}[image.cellId]"],
            append_detector_modules=True)
    with np.load(out) as z:
        assert {n for n in z.files if n.endswith("image.cellId")} == \
            {f"{AGIPD.format(m)}/image.cellId" for m in range(4)}


def test_cxi_jungfrau(tmp_path):
    from exfel_data.testing import JUNGFRAU, make_run

    run_dir = make_run(tmp_path / "r0002", n_trains=5, trains_per_file=5,
                       devices=list(JUNGFRAU(cells=3, n_modules=2, module_shape=(8, 16))))
    run = RunDirectory(str(run_dir))
    out = tmp_path / "jf.cxi"
    res = cli("convert", run_dir, out, "--to", "cxi", "-q", "--select", "*JF4M*")
    assert res.exit_code == 0, res.output
    src = "SPB_IRDA_JF4M/DET/JNGFR{:02d}:daqOutput"
    with h5py.File(out, "r") as f:
        data = f["entry_1/instrument_1/detector_1/data"]
        assert data.shape == (5 * 3, 2, 8, 16)
        np.testing.assert_array_equal(f["entry_1/instrument_1/detector_1/module_identifier"],
                                      [1, 2])
        adc = run[src.format(2), "data.adc"].ndarray()  # (trains, cells, ss, fs)
        np.testing.assert_array_equal(data[:, 1], adc.reshape(15, 8, 16))
        np.testing.assert_array_equal(f["entry_1/trainId"], np.repeat(run.train_ids, 3))
        np.testing.assert_array_equal(f["entry_1/pulseId"], np.tile([0, 1, 2], 5))
        cells = run[src.format(1), "data.memoryCell"].ndarray().ravel()
        np.testing.assert_array_equal(f["entry_1/cellId"][:, 0], cells)


@pytest.mark.parametrize("fmt, name", [("mat", "x.mat"), ("zarr", "x.zarr")])
def test_structured_dtype_refused_as_documented(tmp_path, fmt, name):
    # docs/formats.md: mat and zarr take "all but structured dtypes"; mat wrote them before.
    from exfel_data.write import ExdfWriter
    from exfel_data.write.plan import ConversionError

    run_dir = tmp_path / "r0009"
    pair = np.dtype([("x", "f4"), ("y", "i2")])
    with ExdfWriter(run_dir / "RAW-R0009-DA01-S00000.h5", np.arange(10000, 10004)) as w:
        w.add_instrument_source("SPB_PAIRS/DEV/A:output", {"data": 1})
        w.add_instrument_key("SPB_PAIRS/DEV/A:output", "data.pair", pair)
        w.write("SPB_PAIRS/DEV/A:output", "data.pair", np.zeros(4, pair))
    with pytest.raises(ConversionError, match=rf"^{fmt}: SPB_PAIRS/DEV/A:output data.pair "
                                              r"has a structured dtype .*use --to npz"):
        convert(run_dir, tmp_path / name, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r0009"]


def test_cxi_finds_the_modules_once(run_dir, tmp_path, monkeypatch):
    # Review note: the module lookup ran in check() and again in write().
    from exfel_data.write import cxi

    calls = []
    real = cxi._find_modules
    monkeypatch.setattr(cxi, "_find_modules", lambda plan: calls.append(1) or real(plan))
    convert(run_dir, tmp_path / "x.cxi", "cxi", select=["*/DET/*"])
    assert len(calls) == 1


@pytest.mark.parametrize("kind, source, shape", [
    ("LPD", "FXE_DET_LPD1M-1/DET/{}CH0:xtdf", (1, 16, 8)),   # raw LPD: one gain plane
    ("DSSC", "SCS_DET_DSSC1M-1/DET/{}CH0:xtdf", (16, 8)),    # corrected DSSC
])
def test_cxi_lpd_and_dssc(tmp_path, kind, source, shape):
    from exfel_data import testing

    devices = {"LPD": lambda: testing.LPD1M(raw=True, frames_per_train=3, module_shape=(16, 8),
                                            n_modules=3),
               "DSSC": lambda: testing.DSSC1M(raw=False, frames_per_train=3,
                                              module_shape=(16, 8), n_modules=3)}[kind]()
    run_dir = testing.make_run(tmp_path / "r0003", n_trains=4, trains_per_file=2,
                               devices=list(devices), progress=False)
    out = tmp_path / "det.cxi"
    res = cli("convert", run_dir, out, "--to", "cxi", "-q", "--select", "*/DET/*")
    assert res.exit_code == 0, res.output
    with h5py.File(out, "r") as f:
        data = f["entry_1/instrument_1/detector_1/data"]
        assert data.shape == (4 * 3, 3, *shape)
        np.testing.assert_array_equal(f["entry_1/instrument_1/detector_1/module_identifier"],
                                      [0, 1, 2])
        for m in range(3):
            # each module's frames, read with plain h5py from its sequence files
            frames = []
            for path in sorted(run_dir.glob(f"*-{kind}{m:02d}-S*.h5")):
                with h5py.File(path, "r") as mod:  # rows in use: INDEX count (preallocated)
                    n = int(mod[f"INDEX/{source.format(m)}/image/count"][()].sum())
                    frames.append(mod[f"INSTRUMENT/{source.format(m)}/image/data"][:n])
            np.testing.assert_array_equal(data[:, m], np.concatenate(frames))
        tids = np.repeat(np.arange(10000, 10004), 3)
        np.testing.assert_array_equal(f["entry_1/trainId"], tids)
