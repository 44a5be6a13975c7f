"""`exfel-bridge process` and `view` options not covered elsewhere: -z, --overwrite, --source."""

import os
import subprocess
import sys

import numpy as np
from analysis_helpers import N_TRAINS, ROOT_TRAIN, served_run

from exfel_data.analysis import read_result

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCAN = os.path.join(ROOT, "recipes", "analysis_scan.py")
EXFEL_BRIDGE = [sys.executable, "-m", "bridge"]


def test_process_server_socket_and_overwrite(run_dir, tmp_path):
    """-z PUSH reads a PUSH server (a PULL client); --out refuses an existing file unless
    --overwrite, and leaves it untouched when refusing."""
    out = tmp_path / "scan.h5"
    out.write_bytes(b"an earlier result")
    args = ["--count", str(N_TRAINS), "--policy", "wait", "-q", "-o", str(out),
            "-p", "bins=[1.0, 1.3, 6]"]
    with served_run(run_dir, sock="PUSH") as endpoint:
        refused = subprocess.run(EXFEL_BRIDGE + ["process", endpoint, SCAN, "-z", "PUSH",
                                                 *args], capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode == 1
        assert f"Output {out} already exists; pass --overwrite" in refused.stderr
        assert out.read_bytes() == b"an earlier result"
        done = subprocess.run(EXFEL_BRIDGE + ["process", endpoint, SCAN, "-z", "PUSH",
                                              "--overwrite", *args],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Done: {N_TRAINS} trains received; {N_TRAINS} trains reduced" in done.stderr
    result = read_result(out)
    np.testing.assert_array_equal(result.train_ids,
                                  np.arange(ROOT_TRAIN, ROOT_TRAIN + N_TRAINS))
    assert result.data["counts"].sum() + result.data["outside"] == N_TRAINS


def test_view_server_socket_and_source(run_dir, tmp_path):
    """view -z REP requests from a REP server (a SUB client would time out instead);
    --source picks the source to draw and names the available ones when absent."""
    png = tmp_path / "camera.png"
    common = ["-z", "REP", "--png", str(png), "--count", "1", "--every", "0.1",
              "--timeout", "30"]
    with served_run(run_dir, sock="REP", loop=True) as endpoint:
        missing = subprocess.run(EXFEL_BRIDGE + ["view", endpoint, *common, "--source",
                                                 "SPB_NOSUCH/CAM"],
                                 capture_output=True, text=True, timeout=120)
        assert missing.returncode == 1
        assert "No source 'SPB_NOSUCH/CAM' in the stream; sources:" in missing.stderr
        assert "SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput" in missing.stderr
        assert not png.exists()
        shown = subprocess.run(EXFEL_BRIDGE + ["view", endpoint, *common, "--source",
                                               "SPB_XTD9_CAM/CAM/SIDEMIC:daqOutput"],
                               capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    import matplotlib.image

    assert matplotlib.image.imread(png).ndim == 3
