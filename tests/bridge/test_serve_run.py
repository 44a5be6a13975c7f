"""Serving runs: train selection parsing, module stacking, and streaming a generated run."""

import numpy as np
import pytest

from bridge.serve_run import select_run, stack_detector_modules


def _module(m, frames=3, raw=False, tid=1000):
    shape = (frames, 2, 512, 128) if raw else (frames, 512, 128)
    dtype = np.uint16 if raw else np.float32
    src = f"SPB_DET_AGIPD1M-1/DET/{m}CH0:xtdf"
    return src, {
        "image.data": np.full(shape, m + 1, dtype),
        "image.cellId": np.arange(frames, dtype=np.uint16).reshape(frames, 1),
        "image.pulseId": np.arange(frames, dtype=np.uint64).reshape(frames, 1) * 4,
        "image.trainId": np.full((frames, 1), tid, np.uint64),
        "header.pulseCount": np.uint64(frames),
        "metadata": {"source": src, "timestamp.tid": tid},
    }


def test_stack_modules_corrected_with_missing_module():
    train = dict(_module(m) for m in range(16) if m != 3)
    train["SA1_XTD2_XGM/XGM/DOOCS"] = {"x.value": 1.0, "metadata": {}}
    out = stack_detector_modules(train)
    assert set(out) == {"SPB_DET_AGIPD1M-1/DET/APPEND", "SA1_XTD2_XGM/XGM/DOOCS"}
    d = out["SPB_DET_AGIPD1M-1/DET/APPEND"]
    assert d["image.data"].shape == (3, 16, 512, 128)
    assert d["image.data"].dtype == np.float32
    np.testing.assert_array_equal(d["image.data"][:, 5], 6)
    assert np.isnan(d["image.data"][:, 3]).all()
    # per-frame labels and per-train records: the first module's, unchanged (as EXtra-data)
    np.testing.assert_array_equal(d["image.cellId"], [[0], [1], [2]])
    np.testing.assert_array_equal(d["image.pulseId"], [[0], [4], [8]])
    assert d["header.pulseCount"] == 3
    assert d["modulesPresent"] == [m != 3 for m in range(16)]
    assert d["metadata"] == {"source": "SPB_DET_AGIPD1M-1/DET/APPEND", "timestamp.tid": 1000}


def test_stack_modules_raw_as_extra_data_and_fills_zero():
    # regression: raw AGIPD was stacked (pulses, modules, 2, ss, fs), unlike serve-files and
    # stack_detector_data: one order for files and streams now
    from exfel_data.detectors import stack_detector_data

    train = dict(_module(m, raw=True) for m in (0, 1))
    d = stack_detector_modules(train)["SPB_DET_AGIPD1M-1/DET/APPEND"]
    assert d["image.data"].shape == (3, 2, 16, 512, 128)
    assert d["image.data"].dtype == np.uint16
    assert (d["image.data"][:, :, 2:] == 0).all()
    np.testing.assert_array_equal(d["image.data"], stack_detector_data(train, "image.data"))


def test_stack_modules_online_layout():
    train = dict(_module(m, raw=True) for m in (0, 1))
    out = stack_detector_modules(train, layout="online")
    d = out["SPB_DET_AGIPD1M-1/CAL/APPEND_RAW"]
    assert d["image.data"].shape == (16, 128, 512, 2, 3)
    assert d["image.data"].flags.c_contiguous
    full = stack_detector_modules(train)["SPB_DET_AGIPD1M-1/DET/APPEND"]["image.data"]
    np.testing.assert_array_equal(d["image.data"], full.transpose(2, 4, 3, 1, 0))
    np.testing.assert_array_equal(d["image.cellId"], [0, 1, 2])
    corr = dict(_module(m) for m in range(16))
    d = stack_detector_modules(corr, layout="online")["SPB_DET_AGIPD1M-1/CAL/APPEND_CORRECTED"]
    assert d["image.data"].shape == (16, 128, 512, 3)
    np.testing.assert_array_equal(d["image.data"][:, 0, 0, 0], np.arange(1, 17))
    with pytest.raises(ValueError, match="layout must be one of"):
        stack_detector_modules(corr, layout="columns")


def test_stack_modules_online_matches_simulator():
    from bridge.simulation import Simulator

    sim, _ = Simulator("LPD", raw=True, pulses=2).train(0)
    expected = sim["FXE_DET_LPD1M-1/CAL/APPEND_RAW"]["image.data"]
    lpd = {f"FXE_DET_LPD1M-1/DET/{m}CH0:xtdf": {
        "image.data": np.zeros((2, 1, 256, 256), np.uint16), "metadata": {}} for m in range(16)}
    d = stack_detector_modules(lpd, layout="online")["FXE_DET_LPD1M-1/CAL/APPEND_RAW"]
    assert d["image.data"].shape == expected.shape
    assert d["image.data"].dtype == expected.dtype


def test_stack_modules_without_frames():
    train = dict(_module(m) for m in range(3))
    src, empty = _module(3, frames=0)
    train[src] = empty
    d = stack_detector_modules(train)["SPB_DET_AGIPD1M-1/DET/APPEND"]   # no warning
    assert d["modulesPresent"][:4] == [True, True, True, False]
    no_frames = dict(_module(m, frames=0) for m in range(2))
    assert stack_detector_modules(no_frames) == {}


def test_stack_modules_prefers_corr_names_and_keeps_lpd_raw_axis():
    train = {}
    for m in (0, 1):
        corr = f"FXE_DET_LPD1M-1/CORR/{m}CH0:output"
        old = f"FXE_DET_LPD1M-1/DET/{m}CH0:xtdf"
        train[old] = {"image.data": np.zeros((2, 1, 8, 8), np.uint16), "metadata": {}}
        train[corr] = {"image.data": np.full((2, 1, 8, 8), m + 1, np.uint16),
                       "image.cellId": np.arange(2, dtype=np.uint16), "metadata": {}}
    out = stack_detector_modules(train)
    # the raw-named modules are not stacked: they pass through unchanged
    assert sorted(out) == ["FXE_DET_LPD1M-1/DET/0CH0:xtdf", "FXE_DET_LPD1M-1/DET/1CH0:xtdf",
                           "FXE_DET_LPD1M-1/DET/APPEND"]
    d = out["FXE_DET_LPD1M-1/DET/APPEND"]
    assert d["image.data"].shape == (2, 1, 16, 8, 8)
    np.testing.assert_array_equal(d["image.data"][:, 0, 1], 2)
    assert d["sources"][:2] == ["FXE_DET_LPD1M-1/CORR/0CH0:output",
                                "FXE_DET_LPD1M-1/CORR/1CH0:output"]


def test_stack_modules_jungfrau_numbered_from_one():
    train = {f"FXE_XAD_JF1M/DET/MODULE_{m}:daqOutput": {
        "data.adc": np.full((2, 8, 8), m, np.float32),
        "data.memoryCell": np.arange(2, dtype=np.uint8), "metadata": {}} for m in (1, 2)}
    d = stack_detector_modules(train)["FXE_XAD_JF1M/DET/APPEND"]
    assert d["data.adc"].shape == (2, 2, 8, 8)
    np.testing.assert_array_equal(d["data.adc"][0, :, 0, 0], [1, 2])
    assert d["modulesPresent"] == [True, True]
    # online, JUNGFRAU modules stay separate sources (as the simulator sends them)
    assert set(stack_detector_modules(train, layout="online")) == set(train)


def test_stack_modules_odd_frame_count_is_treated_as_missing():
    train = dict(_module(m) for m in range(4))
    src, odd = _module(4, frames=5)
    train[src] = odd
    with pytest.warns(UserWarning, match=r"module\(s\) \[4\] have a different number of frames"):
        d = stack_detector_modules(train)["SPB_DET_AGIPD1M-1/DET/APPEND"]
    assert d["image.data"].shape == (3, 16, 512, 128)
    assert not d["modulesPresent"][4]


# -- generated runs ------------------------------------------------------------------------------

AGIPD_MODULES = [0, 1, 3]
FRAMES = 3


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A tiny run: XGM, camera and 3 raw AGIPD modules of 64 x 32 px, 6 trains, 2 sequences."""
    from exfel_data.testing import AGIPD1M, XGM, Camera, RunPlan

    plan = RunPlan(n_trains=6, first_train_id=10000, trains_per_file=4,
                   devices=[XGM(), Camera(shape=(16, 8)),
                            *AGIPD1M(frames_per_train=FRAMES, module_shape=(64, 32),
                                     modules=AGIPD_MODULES)])
    path = plan.write(tmp_path_factory.mktemp("runs") / "r0001")
    return path, plan


def _start_process(args, pattern):
    import os
    import re
    import subprocess
    import sys

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    match = re.search(pattern, line)
    if not match:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"server did not start: {line}{out}{err}")
    return proc, match.group(1)


def test_our_client_reads_extra_data_serve_files(small_run):
    """extra-data's karabo-bridge-serve-files (karabo_bridge server) read by bridge.Client."""
    import extra_data  # noqa: F401
    import karabo_bridge  # noqa: F401

    from bridge.client import Client

    path, plan = small_run
    proc, endpoint = _start_process(
        ["-m", "extra_data.cli.serve_files", str(path), "tcp://127.0.0.1:0",
         "--source", "SA1_XTD2_XGM/*", "--dummy-timestamps"],
        r"Streamer started on: (\S+)")
    xgm = plan.device("SA1_XTD2_XGM/XGM/DOOCS:output")
    try:
        with Client(endpoint, timeout=20) as client:
            for tid in plan.train_ids:
                data, meta = client.next()
                src = "SA1_XTD2_XGM/XGM/DOOCS:output"
                assert meta[src]["timestamp.tid"] == tid
                assert "timestamp.sec" in meta[src]
                np.testing.assert_array_equal(
                    data[src]["data.intensityTD"],
                    xgm.values("data.intensityTD", [tid], source=src)[0])
                ctrl = data["SA1_XTD2_XGM/XGM/DOOCS"]
                assert ctrl["beamPosition.ixPos.value"] == pytest.approx(
                    xgm.values("beamPosition.ixPos", [tid],
                               source="SA1_XTD2_XGM/XGM/DOOCS")[0])
    finally:
        proc.kill()
        proc.communicate()


@pytest.fixture
def serve(small_run):
    """Start serve_run in a thread: ``serve(**kwargs) -> endpoint``; stopped at the end."""
    import threading

    from bridge.serve_run import serve_run

    stop, threads = threading.Event(), []

    def start(**kwargs):
        ready, servers = threading.Event(), []

        def on_ready(server):
            servers.append(server)
            ready.set()

        kwargs.setdefault("drain_timeout", 20)
        thread = threading.Thread(target=serve_run, args=(small_run[0], "tcp://127.0.0.1:0"),
                                  kwargs=dict(stop=stop, on_ready=on_ready, **kwargs),
                                  daemon=True)
        thread.start()
        threads.append(thread)
        assert ready.wait(30), "serve_run did not start"
        return servers[0].endpoint

    yield start
    stop.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_karabo_bridge_client_reads_serve_run(small_run, serve):
    import karabo_bridge
    _, plan = small_run
    endpoint = serve(sources=["SA1_XTD2_XGM/*", "SPB_XTD9_CAM/*"], trains=slice(1, 5))
    xgm, cam = "SA1_XTD2_XGM/XGM/DOOCS", "SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput"
    with karabo_bridge.Client(endpoint, timeout=20) as client:
        for tid in plan.train_ids[1:5]:
            data, meta = client.next()
            assert set(data) == {xgm, f"{xgm}:output", "SPB_XTD9_CAM/CAM/SIDEMIC", cam}
            assert all(m["timestamp.tid"] == tid for m in meta.values())
            assert "timestamp" not in meta[xgm]          # files have no wall-clock time
            device = plan.device(f"{xgm}:output")
            np.testing.assert_array_equal(
                data[f"{xgm}:output"]["data.intensityTD"],
                device.values("data.intensityTD", [tid], source=f"{xgm}:output")[0])
            assert data[xgm]["pulseEnergy.photonFlux.value"] == pytest.approx(
                device.values("pulseEnergy.photonFlux", [tid], source=xgm)[0])
            np.testing.assert_array_equal(
                data[cam]["data.image.pixels"],
                plan.device(cam).values("data.image.pixels", [tid], source=cam)[0])
        with pytest.raises(TimeoutError):   # each train is sent once
            karabo_bridge.Client(endpoint, timeout=1).next()


def test_serve_run_append_detector_modules(small_run, serve):
    import karabo_bridge
    _, plan = small_run
    endpoint = serve(sources=["SPB_DET_AGIPD1M-1/*"], key="image.*", trains=slice(0, 2),
                     append_detector_modules=True, dummy_timestamps=True, sock="PUSH")
    det = "SPB_DET_AGIPD1M-1/DET/APPEND"
    with karabo_bridge.Client(endpoint, sock="PULL", timeout=20) as client:
        for tid in plan.train_ids[:2]:
            data, meta = client.next()
            assert list(data) == [det]
            assert meta[det]["timestamp.tid"] == tid
            assert {"timestamp", "timestamp.sec", "timestamp.frac"} <= set(meta[det])
            d = data[det]
            assert d["image.data"].shape == (FRAMES, 2, 16, 64, 32)
            assert d["modulesPresent"] == [m in AGIPD_MODULES for m in range(16)]
            for m in AGIPD_MODULES:
                src = f"SPB_DET_AGIPD1M-1/DET/{m}CH0:xtdf"
                np.testing.assert_array_equal(
                    d["image.data"][:, :, m], plan.device(src).values("image.data", [tid]))
            assert (d["image.data"][:, :, 2] == 0).all()
            cell = plan.device("SPB_DET_AGIPD1M-1/DET/0CH0:xtdf").values("image.cellId", [tid])
            np.testing.assert_array_equal(d["image.cellId"], cell)
            assert d["image.pulseId"].shape == (FRAMES, 1)


def test_append_detector_modules_as_extra_data_serve_files(small_run):
    """Differential: the stacked source equals what extra-data's serve-files builds."""
    import warnings

    import extra_data
    from extra_data.export import _iter_trains

    import exfel_data
    from bridge.serve_run import iter_run_trains

    path, _ = small_run
    det = "SPB_DET_AGIPD1M-1/DET/APPEND"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = list(_iter_trains(extra_data.RunDirectory(path), merge_detector=True))
        ours = list(iter_run_trains(exfel_data.RunDirectory(path), append_detector_modules=True))
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    for (_, a), (_, b) in zip(ours, theirs, strict=True):
        assert set(a) == set(b)
        assert set(b[det]) <= set(a[det])      # we add modulesPresent and sources
        for key, value in b[det].items():
            if key == "metadata":
                assert a[det][key]["source"] == value["source"]
            elif key == "header.linkId":
                pass  # a per-module record: extra-data keeps an arbitrary module's, we module 0's
            else:
                np.testing.assert_array_equal(a[det][key], value, err_msg=key)
                assert np.asarray(a[det][key]).dtype == np.asarray(value).dtype, key


def test_serve_run_online_layout(small_run, serve):
    from bridge.client import Client

    _, plan = small_run
    endpoint = serve(sources=["SPB_DET_AGIPD1M-1/*"], key="image.*", trains=slice(0, 1),
                     append_detector_modules=True, layout="online")
    name = "SPB_DET_AGIPD1M-1/CAL/APPEND_RAW"
    with Client(endpoint, timeout=20) as client:
        data, meta = client.next()
    assert list(data) == [name]
    assert {"timestamp", "timestamp.sec", "timestamp.frac"} <= set(meta[name])  # live-like
    image = data[name]["image.data"]
    assert image.shape == (16, 32, 64, 2, FRAMES)
    src = "SPB_DET_AGIPD1M-1/DET/3CH0:xtdf"
    np.testing.assert_array_equal(image[3], plan.device(src).values(
        "image.data", [plan.train_ids[0]]).transpose(3, 2, 1, 0))
    assert data[name]["image.cellId"].shape == (FRAMES,)


def test_serve_run_loop_repeats_the_trains(small_run, serve):
    from bridge.client import Client

    _, plan = small_run
    endpoint = serve(sources=["SA1_XTD2_XGM/XGM/DOOCS"], trains=slice(0, 2), loop=True)
    with Client(endpoint, timeout=20) as client:
        tids = [client.next()[1]["SA1_XTD2_XGM/XGM/DOOCS"]["timestamp.tid"] for _ in range(5)]
    first, second = plan.train_ids[:2]
    assert tids == [first, second, first, second, first]


def test_serve_run_cli(small_run):
    import karabo_bridge
    path, plan = small_run
    proc, endpoint = _start_process(
        ["-m", "bridge", "serve-run", str(path), "tcp://127.0.0.1:0", "--source",
         "SPB_DET_AGIPD1M-1/*", "--key", "image.*", "--trains", "-2:",
         "--append-detector-modules", "--layout", "online"], r"Serving on (\S+)")
    name = "SPB_DET_AGIPD1M-1/CAL/APPEND_RAW"
    try:
        with karabo_bridge.Client(endpoint, timeout=20) as client:
            for tid in plan.train_ids[-2:]:
                data, meta = client.next()
                assert meta[name]["timestamp.tid"] == tid
                assert "timestamp.sec" in meta[name]      # on by default in the online layout
                assert data[name]["image.data"].shape == (16, 32, 64, 2, FRAMES)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Done: Sent 2/2 trains" in out


def test_serve_run_cli_layout_needs_append(small_run):
    from click.testing import CliRunner

    from bridge.cli import main

    result = CliRunner().invoke(main, ["serve-run", str(small_run[0]), "0", "--layout",
                                       "online"])
    assert result.exit_code == 2
    assert "--layout" in result.output and "--append-detector-modules" in result.output


def test_serve_run_cli_bad_trains(small_run):
    from click.testing import CliRunner

    from bridge.cli import main

    result = CliRunner().invoke(main, ["serve-run", str(small_run[0]), "0", "--trains", "x"])
    assert result.exit_code == 2
    assert "'x' is not a train range; use START:STOP[:STEP]" in result.output


def test_select_run_trains_as_convert_takes_them(small_run):
    # One syntax for --trains in exfel-data convert and exfel-bridge serve-run.
    path, plan = small_run
    tids = list(plan.train_ids)
    assert list(select_run(path, trains="-2:").train_ids) == tids[-2:]
    assert list(select_run(path, trains=f"id:{tids[1]}:{tids[4]}").train_ids) == tids[1:4]
    assert list(select_run(path, trains="::2").train_ids) == tids[::2]
    assert list(select_run(path, trains=3).train_ids) == [tids[3]]


def test_serve_run_cli_unknown_source(small_run):
    from click.testing import CliRunner

    from bridge.cli import main

    result = CliRunner().invoke(main, ["serve-run", str(small_run[0]), "tcp://127.0.0.1:0",
                                       "--source", "NO_SUCH/*"])
    assert result.exit_code == 1
    assert "NO_SUCH" in result.output
