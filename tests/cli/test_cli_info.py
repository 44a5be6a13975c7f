"""exfel-data info: run summary, --detail, --counts, single files, folders of runs."""

import subprocess
import sys

from click.testing import CliRunner

from exfel_data.cli import main
from exfel_data.testing import XGM, make_run


def cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def test_summary(run_dir):
    res = cli("info", run_dir)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "# of trains:    12" in out
    assert "First train ID: 10000" in out and "Last train ID:  10011" in out
    assert "Duration:" in out
    assert "4 detector modules of SPB_DET_AGIPD1M-1" in out and "3 frames/train" in out
    assert "SA1_XTD2_XGM/XGM/DOOCS:output" in out
    assert "2 control sources" in out
    assert "beamPosition" not in out  # no keys without --detail


def test_detail_and_counts(run_dir):
    res = cli("info", run_dir, "--detail", "*XGM*", "--counts")
    assert res.exit_code == 0, res.output
    out = res.output
    # units from the keys' attributes (generator: intensity in uJ, positions in mm)
    assert "    - data.intensityTD: float32 (1000,) [μJ], data in 12/12 trains" in out
    assert "    - beamPosition.ixPos.value: float32 () [mm], data in 12/12 trains" in out
    assert "    - location.value: str (), data in" in out
    assert "  - SPB_DET_AGIPD1M-1/DET/0CH0:xtdf: " in out
    assert "image: 12/12 trains, 3 per train" in out
    res = cli("info", run_dir, "--detail", "NOPE*")
    assert res.exit_code == 1 and "matches no source" in res.output


def test_single_file(run_dir):
    f = sorted(run_dir.glob("*DA01-S00001.h5"))[0]
    res = cli("info", f)
    assert res.exit_code == 0
    assert "First train ID: 10006" in res.output


def test_folder_of_runs(tmp_path, run_dir):
    for n in (2, 3):
        make_run(tmp_path / f"r000{n}", n_trains=5 * n, devices=[XGM(n_samples=4)],
                 first_train_id=1000 * n, run_number=n)
    (tmp_path / "notes").mkdir()
    res = cli("info", tmp_path)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == 3  # header + 2 runs
    assert lines[0].split() == ["run", "trains", "train", "IDs", "duration", "sources",
                                "files", "size"]
    assert lines[1].split()[:4] == ["r0002", "10", "2000-2009", "0:00:01"]
    assert lines[2].split()[:3] == ["r0003", "15", "3000-3014"]


def test_python_m_entry_point(run_dir):
    res = subprocess.run([sys.executable, "-m", "exfel_data", "info", str(run_dir)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "# of trains:    12" in res.stdout
