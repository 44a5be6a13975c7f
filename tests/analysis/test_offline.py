"""The offline runner: in-process, local pool, dask, parts; faults; the command line."""

import glob
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import psutil
import pytest
from analysis_helpers import (
    CAMERA,
    N_TRAINS,
    ROOT_TRAIN,
    SETUP_ANALYSIS,
    SUM_ANALYSIS,
    motor_position,
    xgm_flux,
)
from click.testing import CliRunner

from exfel_data.analysis import (
    AnalysisError,
    ReducerError,
    merge_parts,
    read_result,
    run_offline,
)
from exfel_data.cli import main as cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEAN_IMAGE = os.path.join(ROOT, "recipes", "analysis_mean_image.py")
SCAN = os.path.join(ROOT, "recipes", "analysis_scan.py")
ALL_TIDS = np.arange(ROOT_TRAIN, ROOT_TRAIN + N_TRAINS, dtype=np.uint64)


def camera_images(run_dir):
    """(train IDs, images) of the camera, read with plain h5py."""
    tids, images = [], []
    for path in sorted(glob.glob(os.path.join(run_dir, "*DA02*.h5"))):
        with h5py.File(path, "r") as f:
            base = f"INSTRUMENT/{CAMERA}/data"
            tids.append(f[f"{base}/trainId"][()])
            images.append(f[f"{base}/image/pixels"][()])
    tids, images = np.concatenate(tids), np.concatenate(images).astype(np.float64)
    written = tids != 0  # datasets are preallocated beyond the rows written
    return tids[written], images[written]


@pytest.mark.parametrize("workers", [None, 2])
def test_sum_against_generator(run_dir, write_analysis, workers):
    res = run_offline(run_dir, write_analysis(SUM_ANALYSIS), workers=workers,
                      progress=False)
    assert res.data["total"] == pytest.approx(xgm_flux(ALL_TIDS).astype(float).sum())
    np.testing.assert_array_equal(res.data["tids"], ALL_TIDS)
    np.testing.assert_array_equal(res.train_ids, ALL_TIDS)
    assert res.stats.reduced == N_TRAINS and res.complete


def test_recipe_mean_image_offline(run_dir):
    tids, images = camera_images(run_dir)
    roi = [1, 5, 2, 4]
    for workers in (None, 2):
        res = run_offline(run_dir, MEAN_IMAGE, {"roi": roi}, workers=workers,
                          progress=False)
        np.testing.assert_allclose(res["mean_image"], images.mean(axis=0), rtol=1e-12)
        np.testing.assert_array_equal(res["roi_norm.x"], tids)
        expect = images[:, 1:5, 2:4].sum(axis=(1, 2)) / xgm_flux(tids)
        np.testing.assert_allclose(res["roi_norm.y"], expect, rtol=1e-6)
        assert res["n_trains"] == N_TRAINS


def test_recipe_scan_offline_with_trains_and_select(run_dir):
    res = run_offline(run_dir, SCAN, ["bins=[1.0, 1.2, 4]"], trains="5:25",
                      select=["SA1_XTD2_XGM/XGM/DOOCS", "SPB_IRU_MOTORS/*"],
                      progress=False)
    tids = ALL_TIDS[5:25]
    pos, flux = motor_position(tids), xgm_flux(tids).astype(float)
    edges = np.linspace(1.0, 1.2, 5)
    idx = np.searchsorted(edges, pos, side="right") - 1
    for i in range(4):
        sel = idx == i
        assert res["counts"][i] == sel.sum()
        if sel.any():
            assert res["scan.y"][i] == pytest.approx(flux[sel].mean())
        else:
            assert np.isnan(res["scan.y"][i])
    assert res["outside"] == ((idx < 0) | (idx >= 4)).sum()
    np.testing.assert_allclose(res["scan.x"], (edges[:-1] + edges[1:]) / 2)


def test_dask_local_cluster(run_dir, write_analysis):
    import distributed
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = run_offline(run_dir, write_analysis(SUM_ANALYSIS), scheduler=client,
                          workers=2, progress=False)
    np.testing.assert_array_equal(res.data["tids"], ALL_TIDS)


@pytest.mark.parametrize("workers", [None, 2])
def test_process_failures_are_counted(run_dir, write_analysis, workers):
    messages = []
    res = run_offline(run_dir, write_analysis(SUM_ANALYSIS),
                      {"fail_on": [10003, 10020, 10021], "none_on": [10005]},
                      workers=workers, progress=False, report=messages.append)
    assert res.stats.failed == 3 and res.stats.empty == 1
    assert res.stats.failures == {"ValueError": 3}
    assert res.stats.reduced == N_TRAINS - 4
    assert len(messages) == 1
    assert "process() failed for train 10003" in messages[0]
    assert "ValueError: bad train 10003" in messages[0] and "Traceback" in messages[0]
    assert "3 failed in process() (ValueError 3; first: train 10003)" in res.stats.summary()


@pytest.mark.parametrize("workers", [None, 2])
def test_reducer_error_stops_and_keeps_what_was_reduced(run_dir, write_analysis, tmp_path,
                                                        workers):
    out = tmp_path / "res.h5"
    with pytest.raises(ReducerError, match="(?s)failed at train 10017.*reducer broke"
                                           ".*written to .*res.h5 \\(complete=False\\)"):
        run_offline(run_dir, write_analysis(SUM_ANALYSIS), {"reducer_fail_on": 10017},
                    workers=workers, out=out, progress=False, chunk_trains=4)
    res = read_result(out)
    assert not res.complete and "10017" in res.stopped
    # What was reduced before the failing share is kept (whole shares with workers).
    kept = res.data["tids"]
    assert 0 < len(kept) <= 17 and kept[0] == ROOT_TRAIN and kept.max() < 10017
    assert res.stats.reduced == len(kept)
    np.testing.assert_array_equal(res.train_ids, kept)
    assert res.data["total"] == pytest.approx(xgm_flux(kept).astype(float).sum())


def test_parts_then_merge_equal_one_run(run_dir, write_analysis, tmp_path):
    ana = write_analysis(SUM_ANALYSIS)
    parts = []
    for i in (3, 1, 2):
        parts.append(tmp_path / f"part-{i}.h5")
        run_offline(run_dir, ana, part=(i, 3), out=parts[-1], progress=False)
    assert read_result(parts[0]).train_ids.tolist() == ALL_TIDS[20:].tolist()
    with pytest.raises(AnalysisError, match=r"need each of 1..3 once \(missing: \[2\]\)"):
        merge_parts(parts[:2], tmp_path / "bad.h5")
    merged = merge_parts(parts, tmp_path / "all.h5")
    whole = run_offline(run_dir, ana, progress=False)
    assert merged.data["total"] == pytest.approx(whole.data["total"])
    np.testing.assert_array_equal(read_result(tmp_path / "all.h5").data["tids"], ALL_TIDS)
    assert not (tmp_path / "bad.h5").exists()


def test_part_needs_merge(run_dir, write_analysis, tmp_path):
    ana = write_analysis(SUM_ANALYSIS.replace("def merge", "def _no_merge"))
    with pytest.raises(AnalysisError, match=r"--part needs Reducer.merge\(other\)"):
        run_offline(run_dir, ana, part=(1, 2), out=tmp_path / "p.h5", progress=False)


def test_no_trains_selected(run_dir, write_analysis):
    with pytest.raises(AnalysisError, match="No trains selected"):
        run_offline(run_dir, write_analysis(SUM_ANALYSIS), trains="100:200",
                    progress=False)


def test_cli_writes_result_with_params_and_hash(run_dir, tmp_path):
    out = tmp_path / "scan.h5"
    res = CliRunner().invoke(cli, ["process", str(run_dir), SCAN, "-p", "bins=[1.0, 1.3, 3]",
                                   "--workers", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"{N_TRAINS} trains reduced; written to {out}" in res.output
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["params"])["bins"] == [1.0, 1.3, 3]
        assert f["params"].attrs["motor"] == "SPB_IRU_MOTORS/MOTOR/X"
        with open(SCAN, "rb") as src:
            assert f.attrs["analysis_sha256"] == hashlib.sha256(src.read()).hexdigest()
        assert f["result/counts"][()].sum() + f["result/outside"][()] == N_TRAINS
        assert f.attrs["complete"]
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_cli_errors(run_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["process", str(run_dir), SCAN, "-p", "bin=3"])
    assert res.exit_code == 1 and "Unknown parameter 'bin'" in res.output
    res = runner.invoke(cli, ["process", str(run_dir), str(tmp_path / "x.py")])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = runner.invoke(cli, ["process", str(run_dir), SCAN, "--part", "1/2"])
    assert res.exit_code == 2 and "--part needs --out" in res.output


def test_cli_parts_and_merge(run_dir, tmp_path):
    runner = CliRunner()
    for i in (1, 2):
        res = runner.invoke(cli, ["process", str(run_dir), SCAN, "--part", f"{i}/2", "-q",
                                  "-o", str(tmp_path / f"p{i}.h5")])
        assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["process-merge", str(tmp_path / "p1.h5"),
                              str(tmp_path / "p2.h5"), str(tmp_path / "all.h5")])
    assert res.exit_code == 0, res.output
    assert f"{N_TRAINS} trains reduced" in res.output
    assert read_result(tmp_path / "all.h5").mode == "merged"


def test_dead_worker_is_replaced_and_its_share_lost(run_dir, write_analysis, tmp_path):
    ana = write_analysis(SUM_ANALYSIS, name="dies_offline.py")
    messages = []
    res = run_offline(run_dir, ana, {"die_on": [10009]}, workers=2, chunk_trains=4,
                      progress=False, report=messages.append, out=tmp_path / "d.h5")
    # The share 10008-10011 was held by the worker that died: lost; the rest reduced.
    lost = [10008, 10009, 10010, 10011]
    kept = np.setdiff1d(ALL_TIDS, lost)
    assert res.stats.lost == 4 and res.stats.lost_ranges == [[10008, 10011]]
    assert res.stats.reduced == N_TRAINS - 4
    np.testing.assert_array_equal(res.data["tids"], kept)
    assert res.data["total"] == pytest.approx(xgm_flux(kept).astype(float).sum())
    assert "4 lost (trains 10008-10011)" in res.stats.summary()
    died = [m for m in messages if "died" in m]
    assert len(died) == 1 and "(killed by SIGKILL) on trains 10008-10011" in died[0]
    stored = read_result(tmp_path / "d.h5")
    assert stored.stats.lost == 4 and stored.stats.lost_ranges == [[10008, 10011]]


def test_dead_worker_summary_on_the_command_line(run_dir, write_analysis):
    ana = write_analysis(SUM_ANALYSIS, name="dies_cli.py")
    res = CliRunner().invoke(cli, ["process", str(run_dir), str(ana), "--workers", "2",
                                   "-p", "die_on=[10020]"])
    assert res.exit_code == 0, res.output
    assert re.search(r"\d+ trains reduced, \d+ lost \(trains 100(1[6-9]|20)-100(2[0-4])\)",
                     res.output), res.output


def test_dask_worker_deaths_lose_the_share_only(run_dir, write_analysis):
    """On a dask cluster a share whose workers died (dask's retries spent: KilledWorker)
    is counted lost by train ID, as with local workers, instead of stopping the run; the
    rest is reduced."""
    import dask
    import distributed

    ana = write_analysis(SUM_ANALYSIS, name="dies_dask.py")
    messages = []
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        res = run_offline(run_dir, ana, {"die_on": [10009]}, scheduler=client,
                          chunk_trains=4, progress=False, report=messages.append)
    # With no retries allowed, dask also gives up on shares that were only queued on the
    # worker that died: those are lost too, and said so.
    ranges = res.stats.lost_ranges
    assert [10008, 10011] in ranges
    lost = np.concatenate([np.arange(a, b + 1) for a, b in ranges])
    assert res.stats.lost == len(lost) and res.stats.reduced == N_TRAINS - len(lost)
    np.testing.assert_array_equal(res.data["tids"], np.setdiff1d(ALL_TIDS, lost))
    died = [m for m in messages if "died" in m]
    assert len(died) == len(ranges)
    assert all(m.startswith("The dask workers running it died (KilledWorker") for m in died)
    assert any("on trains 10008-10011; its 4 trains are counted lost" in m for m in died)


def test_workers_that_keep_dying_stop_the_run(run_dir, write_analysis):
    ana = write_analysis(SUM_ANALYSIS, name="always_dies.py")
    with pytest.raises(AnalysisError, match="5 worker processes died within 10 s"):
        run_offline(run_dir, ana, {"die_on": ALL_TIDS.tolist()}, workers=2, chunk_trains=3,
                    progress=False, report=None)


def test_setup_runs_once_per_worker_process(run_dir, write_analysis):
    res = run_offline(run_dir, write_analysis(SETUP_ANALYSIS, name="setup_off.py"), workers=2,
                      progress=False, chunk_trains=3)
    assert set(res.data["setups"]) == {1}
    assert 1 <= len(set(res.data["pids"])) <= 2 and os.getpid() not in res.data["pids"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_stops_every_offline_process(run_dir, write_analysis, tmp_path, sig):
    """Ctrl-C / SIGTERM: workers stopped, nothing written, exit 128 + signal; SIGKILL of
    the parent: its workers notice and exit by themselves. No process is left."""
    marker = tmp_path / "started"
    ana = write_analysis(SUM_ANALYSIS.replace(
        "def process(train_id, data, params):",
        f"def process(train_id, data, params):\n    import time\n"
        f"    open({str(marker)!r}, 'a').close()\n    time.sleep(0.2)"), name="slow_off.py")
    out = tmp_path / "never.h5"
    proc = subprocess.Popen([sys.executable, "-m", "exfel_data", "process", str(run_dir),
                             str(ana), "--workers", "2", "-q", "-o", str(out)],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 2
        proc.send_signal(sig)
        code = proc.wait(30)
    finally:
        proc.kill()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive
    assert code == (-sig if sig == signal.SIGKILL else 128 + sig)
    if sig != signal.SIGKILL:
        assert "no output was written" in proc.stderr.read()
    assert not out.exists() and not list(tmp_path.glob(".never.h5*"))


# Sums the XGM pulse energy and notes how many sources each train dict held.
SOURCES_ANALYSIS = """
import numpy as np

def process(train_id, data, params):
    return {"flux": float(data["SA1_XTD2_XGM/XGM/DOOCS"]["pulseEnergy.photonFlux.value"]),
            "n_sources": len(data)}

class Reducer:
    def __init__(self, params):
        self.total, self.tids, self.n_sources = 0.0, [], set()

    def add(self, train_id, result):
        self.total += result["flux"]
        self.tids.append(train_id)
        self.n_sources.add(result["n_sources"])

    def merge(self, other):
        self.total += other.total
        self.tids += other.tids
        self.n_sources |= other.n_sources

    def partial(self):
        return {"total": self.total, "tids": np.asarray(sorted(self.tids), dtype=np.uint64),
                "n_sources": np.asarray(sorted(self.n_sources))}
"""


def test_cli_select_trains_scheduler_overwrite(run_dir, write_analysis, tmp_path):
    import distributed

    out = tmp_path / "sum.h5"
    out.write_bytes(b"an older file")
    args = ["process", str(run_dir), str(write_analysis(SOURCES_ANALYSIS)), "-q", "-o",
            str(out), "--select", "SA1_XTD2_XGM/XGM/DOOCS", "--trains", "id:10005:10025"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "already exists" in res.output and "--overwrite" in res.output
    assert out.read_bytes() == b"an older file"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        res = CliRunner().invoke(cli, [*args, "--overwrite", "--scheduler",
                                       cluster.scheduler_address, "--workers", "2"])
        # the shares ran on this cluster (an ignored --scheduler would leave it idle)
        ran = sum(p.state_counts["memory"] for p in cluster.scheduler.task_prefixes.values())
    assert res.exit_code == 0, res.output
    assert ran >= 2
    result = read_result(out)
    tids = np.arange(10005, 10025, dtype=np.uint64)
    np.testing.assert_array_equal(result.data["tids"], tids)
    assert result.data["total"] == pytest.approx(xgm_flux(tids).astype(float).sum())
    np.testing.assert_array_equal(result.data["n_sources"], [1])  # --select: the XGM only
    full = run_offline(run_dir, write_analysis(SOURCES_ANALYSIS), trains="0:1",
                       progress=False)
    assert full.data["n_sources"].tolist() == [5]   # XGM, motor, camera (+ their outputs)


def test_cli_process_merge_overwrite(run_dir, tmp_path):
    runner = CliRunner()
    for i in (1, 2):
        res = runner.invoke(cli, ["process", str(run_dir), SCAN, "--part", f"{i}/2", "-q",
                                  "-o", str(tmp_path / f"p{i}.h5")])
        assert res.exit_code == 0, res.output
    parts = [str(tmp_path / "p1.h5"), str(tmp_path / "p2.h5")]
    out = tmp_path / "all.h5"
    out.write_bytes(b"an older file")
    res = runner.invoke(cli, ["process-merge", *parts, str(out)])
    assert res.exit_code == 1 and "already exists" in res.output and "--overwrite" in res.output
    assert out.read_bytes() == b"an older file"
    res = runner.invoke(cli, ["process-merge", "--overwrite", *parts, str(out)])
    assert res.exit_code == 0, res.output
    merged = read_result(out)
    assert merged.mode == "merged" and merged.stats.reduced == N_TRAINS
