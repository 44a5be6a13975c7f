"""recipes/live_mean_image.py: one processing function for files and live streams."""

import importlib.util
import os
import threading

import numpy as np
import pytest

from bridge.simulation import Simulator, serve_simulation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location(
        "live_mean_image", os.path.join(ROOT, "recipes", "live_mean_image.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("detector", ["AGIPD", "AGIPDModule", "LPD"])
@pytest.mark.parametrize("raw", [False, True])
def test_axis_orders_give_the_same_mean(recipe, detector, raw):
    means = {}
    for data_like in ("online", "file"):
        data, _ = Simulator(detector, raw=raw, data_like=data_like, pulses=3).train(0)
        means[data_like] = recipe.process_train(data)
    assert means["online"][0] == means["file"][0]
    np.testing.assert_allclose(means["online"][1], means["file"][1], rtol=1e-6)
    ss_fs = (256, 256) if detector == "LPD" else (512, 128)
    modules = () if detector == "AGIPDModule" else (16,)
    assert means["file"][1].shape == modules + ss_fs


def test_mean_is_the_mean_over_frames(recipe):
    data, _ = Simulator("AGIPD", data_like="file", pulses=4).train(1)
    src = "SPB_DET_AGIPD1M-1/CAL/APPEND_CORRECTED"
    tid, image = recipe.process_train(data, src)
    assert tid == 10000000001
    np.testing.assert_allclose(image, data[src]["image.data"].mean(axis=0), rtol=1e-5)


def test_running_mean(recipe):
    mean = recipe.RunningMean()
    for value in (1.0, 2.0, 6.0):
        mean.add(np.full((2, 2), value, np.float32))
    np.testing.assert_allclose(mean.mean, 3.0)


def test_live_against_simulator_with_png(recipe, tmp_path, capsys):
    import matplotlib  # noqa: F401
    stop, ready, servers = threading.Event(), threading.Event(), []

    def on_ready(server):
        servers.append(server)
        ready.set()

    thread = threading.Thread(target=serve_simulation, args=("tcp://127.0.0.1:0", "AGIPD"),
                              kwargs=dict(pulses=2, stop=stop, on_ready=on_ready), daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        png = tmp_path / "mean.png"
        assert recipe.main([str(servers[0].port), "--count", "3", "--png", str(png)]) == 0
    finally:
        stop.set()
        thread.join(20)
    out = capsys.readouterr().out
    assert "Mean image (16, 512, 128) of 3 trains" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "mean.png.tmp.png").exists()


def test_needs_endpoint_or_run(recipe, capsys):
    for argv in ([], ["tcp://127.0.0.1:1", "--run", "r0001"]):
        with pytest.raises(SystemExit) as exc:
            recipe.main(argv)
        assert exc.value.code == 2
        assert "give either ENDPOINT (live) or --run RUN_DIR (files)" in capsys.readouterr().err


def test_offline_and_live_give_the_same_mean(recipe, tmp_path, capsys):
    from bridge.serve_run import serve_run
    from exfel_data.testing import AGIPD1M, make_run

    path = make_run(tmp_path / "r0002", n_trains=3,
                    devices=[*AGIPD1M(frames_per_train=2, module_shape=(32, 16),
                                      modules=[0, 5])])
    assert recipe.main(["--run", str(path), "--png", str(tmp_path / "off.png")]) == 0
    offline = capsys.readouterr().out

    stop, ready, servers = threading.Event(), threading.Event(), []

    def on_ready(server):
        servers.append(server)
        ready.set()

    thread = threading.Thread(
        target=serve_run, args=(path, "tcp://127.0.0.1:0"),
        kwargs=dict(append_detector_modules=True, stop=stop, on_ready=on_ready), daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        assert recipe.main([servers[0].endpoint, "--count", "3"]) == 0
    finally:
        stop.set()
        thread.join(20)
    live = capsys.readouterr().out

    def per_train(out):
        return [line for line in out.splitlines() if line.startswith("train ")]

    assert len(per_train(offline)) == 3
    assert per_train(offline) == per_train(live)   # same train IDs, same means
    assert "Mean image (16, 32, 16) of 3 trains" in live
