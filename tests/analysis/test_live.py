"""The live runner: same result as offline, publishing, faults, the command line."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import psutil
import pytest
from analysis_helpers import (
    N_TRAINS,
    ROOT_TRAIN,
    SETUP_ANALYSIS,
    SUM_ANALYSIS,
    free_port,
    served_run,
    xgm_flux,
)

from bridge.client import Client
from bridge.process import LiveRunner, client_trains
from exfel_data.analysis import AnalysisError, ReducerError, read_result, run_offline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEAN_IMAGE = os.path.join(ROOT, "recipes", "analysis_mean_image.py")
SCAN = os.path.join(ROOT, "recipes", "analysis_scan.py")
ALL_TIDS = np.arange(ROOT_TRAIN, ROOT_TRAIN + N_TRAINS, dtype=np.uint64)
EXFEL_BRIDGE = [sys.executable, "-m", "bridge"]


def live(run_dir, analysis, params=None, **kwargs):
    with served_run(run_dir) as endpoint:
        kwargs.setdefault("max_trains", N_TRAINS)
        runner = LiveRunner(client_trains([endpoint], timeout=30), analysis, params,
                            policy="wait", **kwargs)
        return runner, runner.run()


@pytest.mark.parametrize("analysis, params", [
    (MEAN_IMAGE, {"roi": [1, 5, 2, 4]}),
    (SCAN, {"bins": [1.0, 1.3, 6]}),
])
def test_live_equals_offline(run_dir, analysis, params, tmp_path):
    _, res = live(run_dir, analysis, params, workers=2, ordered=True,
                  out=tmp_path / "live.h5")
    offline = run_offline(run_dir, analysis, params, workers=2, progress=False)
    assert res.stats.reduced == offline.stats.reduced == N_TRAINS
    np.testing.assert_array_equal(np.sort(res.train_ids), ALL_TIDS)
    assert res.data.keys() == offline.data.keys()
    for key, value in offline.data.items():
        np.testing.assert_allclose(res.data[key], value, rtol=1e-12, err_msg=key)
    stored = read_result(tmp_path / "live.h5")
    assert stored.mode == "live" and stored.params == params | stored.params
    assert stored.complete and stored.analysis_sha256 == offline.analysis_sha256


def test_process_failures_and_none_are_counted(run_dir, write_analysis):
    messages = []
    runner, res = live(run_dir, write_analysis(SUM_ANALYSIS),
                       {"fail_on": [10004, 10011], "none_on": [10006]}, workers=2,
                       report=messages.append)
    assert res.stats.failed == 2 and res.stats.empty == 1
    assert res.stats.reduced == N_TRAINS - 3
    kept = np.setdiff1d(ALL_TIDS, [10004, 10011, 10006])
    np.testing.assert_array_equal(res.data["tids"], kept)
    assert res.data["total"] == pytest.approx(xgm_flux(kept).astype(float).sum())
    failures = [m for m in messages if "process() failed" in m]
    assert len(failures) == 1
    assert "process() failed for train 10004" in failures[0]
    assert "ValueError: bad train 10004" in failures[0]
    assert "Traceback" in failures[0] and "ana.py" in failures[0]


def test_dead_worker_is_replaced_and_its_train_lost(run_dir, write_analysis):
    ana = write_analysis(SUM_ANALYSIS.replace(
        "    if train_id in params[\"none_on\"]:",
        "    if train_id == 10009:\n        import os\n        os.kill(os.getpid(), 9)\n"
        "    if train_id in params[\"none_on\"]:"), name="dies.py")
    messages = []
    _, res = live(run_dir, ana, workers=2, report=messages.append)
    assert res.stats.lost == 1 and res.stats.reduced == N_TRAINS - 1
    assert 10009 not in res.data["tids"]
    died = [m for m in messages if "died" in m]
    assert len(died) == 1
    assert "died (killed by SIGKILL); train 10009 lost; starting a replacement" in died[0]


def test_reducer_error_stops_and_writes(run_dir, write_analysis, tmp_path):
    out = tmp_path / "r.h5"
    with pytest.raises(ReducerError, match="(?s)failed at train 10012.*reducer broke.*"
                                           "written to .*r.h5 \\(complete=False\\)"):
        live(run_dir, write_analysis(SUM_ANALYSIS), {"reducer_fail_on": 10012},
             workers=1, ordered=True, out=out)
    res = read_result(out)
    assert not res.complete and "10012" in res.stopped
    np.testing.assert_array_equal(res.data["tids"], ALL_TIDS[:12])


def test_setup_failure_is_reported(run_dir, write_analysis):
    ana = write_analysis(SUM_ANALYSIS + "\ndef setup(params):\n    raise OSError('no mask')\n",
                         name="badsetup.py")
    with pytest.raises(AnalysisError, match="(?s)setup\\(params\\) of .*badsetup.py failed "
                                            "in a worker.*OSError: no mask"):
        live(run_dir, ana, workers=1)


def test_drop_policy_counts_drops(run_dir, write_analysis):
    slow = write_analysis(SUM_ANALYSIS.replace(
        "def process(train_id, data, params):",
        "def process(train_id, data, params):\n    import time\n    time.sleep(0.05)"),
        name="slow.py")
    with served_run(run_dir) as endpoint:
        runner = LiveRunner(client_trains([endpoint], timeout=30), slow, workers=1,
                            policy="drop", max_trains=N_TRAINS)
        res = runner.run()
    assert res.stats.dropped > 0
    assert res.stats.dropped + res.stats.reduced == N_TRAINS


def test_cli_publishes_partials_and_view_writes_png(run_dir, tmp_path):
    import matplotlib  # noqa: F401  (test extra)
    port = free_port()
    png, out = tmp_path / "scan.png", tmp_path / "scan.h5"
    viewer = subprocess.Popen(EXFEL_BRIDGE + ["view", f"tcp://127.0.0.1:{port}", "--png",
                                              str(png), "--every", "0.2", "--timeout", "60"],
                              stderr=subprocess.PIPE, text=True)
    try:
        with served_run(run_dir, rate=20) as endpoint, \
                Client(f"tcp://127.0.0.1:{port}", sock="SUB", timeout=60) as sub:
            proc = subprocess.run(
                EXFEL_BRIDGE + ["process", endpoint, SCAN, "--workers", "2", "--policy",
                                "wait", "--count", str(N_TRAINS), "--publish", str(port),
                                "--every", "0.2", "-o", str(out), "-p", "bins=[1.0, 1.3, 6]"],
                capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            assert f"Done: {N_TRAINS} trains received; {N_TRAINS} trains reduced" in proc.stderr
            data, _ = sub.next()  # a partial (or the final) result
        assert viewer.wait(60) == 0, viewer.stderr.read()
    finally:
        viewer.kill()
    source = "analysis/analysis_scan"
    assert {"scan.x", "scan.y", "counts", "outside"} <= set(data[source])
    assert data[source + ":info"]["analysis"] == SCAN
    assert read_result(out).data["counts"].sum() + read_result(out).data["outside"] == N_TRAINS
    import matplotlib.image

    assert matplotlib.image.imread(png).ndim == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_signal_stops_every_process(run_dir, tmp_path, sig):
    """SIGTERM / Ctrl-C: a clean stop with the result written; SIGKILL of the runner: its
    workers notice and exit by themselves. No process is left either way."""
    out = tmp_path / "m.h5"
    with served_run(run_dir, loop=True, rate=50) as endpoint:
        proc = subprocess.Popen(EXFEL_BRIDGE + ["process", endpoint, MEAN_IMAGE, "--workers",
                                                "2", "--every", "0.2", "-o", str(out)],
                                stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stderr:  # status lines: wait until trains are reduced
                if re.search(r"[1-9]\d* reduced \(", line):
                    break
            children = psutil.Process(proc.pid).children(recursive=True)
            assert len(children) >= 2
            proc.send_signal(sig)
            code = proc.wait(30)
        finally:
            proc.kill()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL and not out.exists()
        return
    assert code == 0, proc.stderr.read()
    res = read_result(out)
    assert res.stats.reduced > 0 and res.mode == "live"


def test_two_endpoints_joined_by_the_matcher(run_dir):
    params = {"roi": [0, 3, 0, 3]}
    with served_run(run_dir, sources=["SPB_XTD9_CAM/*"]) as camera, \
            served_run(run_dir, sources=["SA1_XTD2_XGM/*"]) as xgm:
        runner = LiveRunner(client_trains([camera, xgm], timeout=30), MEAN_IMAGE, params,
                            workers=1, policy="wait", max_trains=N_TRAINS)
        res = runner.run()
    offline = run_offline(run_dir, MEAN_IMAGE, params, progress=False)
    np.testing.assert_array_equal(res.data["roi_norm.x"], ALL_TIDS)
    np.testing.assert_allclose(res.data["mean_image"], offline.data["mean_image"])
    np.testing.assert_allclose(res.data["roi_norm.y"], offline.data["roi_norm.y"])


def test_setup_runs_once_per_worker_process(run_dir, write_analysis):
    runner, res = live(run_dir, write_analysis(SETUP_ANALYSIS, name="setup_live.py"),
                       workers=2)
    assert set(res.data["setups"]) == {1}
    assert set(res.data["pids"]) <= set(runner.worker_pids)


def test_karabo_bridge_client_reads_published_partials(run_dir, write_analysis):
    import threading

    import karabo_bridge

    port = free_port()
    got = {}

    def read():  # until the final result (the last message before the server stops)
        with karabo_bridge.Client(f"tcp://127.0.0.1:{port}", sock="SUB", timeout=60) as c:
            while True:
                data, meta = c.next()
                got.setdefault("partials", []).append(data)
                if data["analysis/slow_pub:info"]["final"]:
                    got["data"], got["meta"] = data, meta
                    return

    reader = threading.Thread(target=read)
    reader.start()
    slow = write_analysis(SUM_ANALYSIS.replace(
        "def process(train_id, data, params):",
        "def process(train_id, data, params):\n    import time\n    time.sleep(0.05)"),
        name="slow_pub.py")
    live(run_dir, slow, workers=1, publish=f"tcp://127.0.0.1:{port}", every=0.1)
    reader.join(60)
    source = "analysis/slow_pub"
    assert {"total", "n", "tids"} <= set(got["data"][source])
    info = got["data"][source + ":info"]
    assert info["reduced"] == got["data"][source]["n"] == N_TRAINS
    assert got["meta"][source]["timestamp.tid"] == ROOT_TRAIN + N_TRAINS - 1
    assert len(got["partials"]) > 1  # partial results came before the final one
    assert all(0 < p[source]["n"] for p in got["partials"])


def test_analysis_as_importable_module(run_dir, tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "xgm_sum.py").write_text(SUM_ANALYSIS)
    monkeypatch.syspath_prepend(str(tmp_path))
    _, res = live(run_dir, "mypkg.xgm_sum", workers=1)
    offline = run_offline(run_dir, "mypkg.xgm_sum", workers=2, progress=False)
    np.testing.assert_array_equal(res.data["tids"], ALL_TIDS)
    assert res.data["total"] == pytest.approx(offline.data["total"])
    assert res.analysis == "mypkg.xgm_sum"


def test_cli_idle_timeout_ordered_and_matcher_options(run_dir, tmp_path):
    """--idle-timeout ends the run once the streams go quiet; --ordered/--reorder-buffer
    reduce in train order with 2 workers; --require/--optional/--match-timeout reach the
    matcher (a required source that never comes: every train is dropped)."""
    out = tmp_path / "m.h5"
    common = ["-q", "--policy", "wait", "--idle-timeout", "1", "--match-timeout", "0.3",
              "-p", "roi=[0, 3, 0, 3]"]
    with served_run(run_dir, sources=["SPB_XTD9_CAM/*"]) as camera, \
            served_run(run_dir, sources=["SA1_XTD2_XGM/*"]) as xgm:
        proc = subprocess.run(
            EXFEL_BRIDGE + ["process", camera, xgm, MEAN_IMAGE, *common, "--workers", "2",
                            "--ordered", "--reorder-buffer", "5", "--require",
                            "SPB_XTD9_CAM/*", "--optional", "SA1_XTD2_XGM/*", "-o", str(out)],
            capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"Done: {N_TRAINS} trains received; {N_TRAINS} trains reduced" in proc.stderr
    np.testing.assert_array_equal(read_result(out).data["roi_norm.x"], ALL_TIDS)
    with served_run(run_dir, sources=["SPB_XTD9_CAM/*"]) as camera, \
            served_run(run_dir, sources=["SA1_XTD2_XGM/*"]) as xgm:
        proc = subprocess.run(
            EXFEL_BRIDGE + ["process", camera, xgm, MEAN_IMAGE, *common, "--require",
                            "SPB_NOSUCH/*"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Done: 0 trains received" in proc.stderr


def test_publish_socket_rep_answers_req_clients(run_dir, write_analysis):
    """--publish-socket REP (publish_sock='REP'): each REQ request gets the latest result."""
    import threading

    import karabo_bridge

    port = free_port()
    got = []

    def read():
        with karabo_bridge.Client(f"tcp://127.0.0.1:{port}", sock="REQ", timeout=60) as c:
            for _ in range(2):
                got.append(c.next()[0])

    reader = threading.Thread(target=read)
    reader.start()
    slow = write_analysis(SUM_ANALYSIS.replace(
        "def process(train_id, data, params):",
        "def process(train_id, data, params):\n    import time\n    time.sleep(0.05)"),
        name="slow_rep.py")
    live(run_dir, slow, workers=1, publish=f"tcp://127.0.0.1:{port}", publish_sock="REP",
         every=0.1)
    reader.join(60)
    assert len(got) == 2
    counts = [data["analysis/slow_rep"]["n"] for data in got]
    assert 0 < counts[0] <= counts[1] <= N_TRAINS   # partial results, in order
    tids = got[1]["analysis/slow_rep"]["tids"]
    np.testing.assert_array_equal(tids, ALL_TIDS[:len(tids)])
