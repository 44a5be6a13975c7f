"""info / validate / convert --proposal P --run R: runs found in the facility's layout."""

import re

import numpy as np
import pytest
from click.testing import CliRunner

import exfel_data as ed
from exfel_data.cli import main
from exfel_data.testing import XGM, Motor, make_run

MOTOR = "SPB_IRU_MOTORS/MOTOR/X"


def cli(*args, env=None):
    res = CliRunner(env=env).invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """<root>/SPB/202601/p001234/{raw,proc}/r0042: raw has an XGM, proc a motor."""
    root = tmp_path_factory.mktemp("exp")
    proposal = root / "SPB" / "202601" / "p001234"
    make_run(proposal / "raw" / "r0042", n_trains=6, devices=[XGM()], run_number=42,
             proposal=1234)
    make_run(proposal / "proc" / "r0042", n_trains=6, devices=[Motor(MOTOR)], run_number=42,
             proposal=1234)
    (root / "FXE" / "202601").mkdir(parents=True)  # other instruments are searched too
    return root


def test_info_from_env_root(data_root):
    res = cli("info", "--proposal", "1234", "--run", "42",
              env={"EXFEL_DATA_ROOT": str(data_root)})
    assert res.exit_code == 0, res.output
    assert "# of trains:    6" in res.output
    assert str(data_root / "SPB/202601/p001234/raw/r0042") in res.output
    assert "SA1_XTD2_XGM/XGM/DOOCS" in res.output and MOTOR not in res.output


def test_root_option_data_folder_and_name_forms(data_root, tmp_path):
    res = cli("info", "--proposal", "p001234", "--run", "r0042", "--data", "proc",
              "--root", data_root, env={"EXFEL_DATA_ROOT": str(tmp_path)})
    assert res.exit_code == 0, res.output
    assert MOTOR in res.output and "SA1_XTD2_XGM" not in res.output


def test_validate_and_convert(data_root, tmp_path):
    res = cli("validate", "-q", "--proposal", 1234, "--run", 42, "--root", data_root)
    assert res.exit_code == 0, res.output
    assert "No problems found in " + str(data_root / "SPB/202601/p001234/raw/r0042") \
        in res.output
    out = tmp_path / "x.npz"
    res = cli("convert", "--proposal", 1234, "--run", 42, "--root", data_root, out,
              "--to", "npz", "-q", "--select", "SA1_XTD2_XGM/XGM/DOOCS[beamPosition.*]")
    assert res.exit_code == 0, res.output
    with np.load(out) as z:
        np.testing.assert_array_equal(z["trainId"], np.arange(10000, 10006))
    # the same file as with the path
    res = cli("convert", data_root / "SPB/202601/p001234/raw/r0042", tmp_path / "y.npz",
              "--to", "npz", "-q", "--select", "SA1_XTD2_XGM/XGM/DOOCS[beamPosition.*]")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == (tmp_path / "y.npz").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["info", "--proposal", "1234"], "--proposal and --run go together"),
    (["info", "--run", "42"], "--proposal and --run go together"),
    (["info", ".", "--proposal", "1234", "--run", "42"],
     r"Give either RUN \(\.\) or --proposal/--run, not both"),
    (["info"], r"Give RUN \(a run folder or .h5 file\), or --proposal P --run R"),
    (["validate", "--proposal", "1234", "--run", "x1"], "'x1' is not a run number"),
    (["convert", "--proposal", "12a", "--run", "1", "o.npz", "--to", "npz"],
     "'12a' is not a proposal number"),
    (["convert", "r0001", "--to", "npz"], "Missing OUTPUT after RUN r0001"),
    (["convert", "a", "b", "c", "--to", "npz"], "Expected RUN OUTPUT, got 3 paths"),
])
def test_usage_errors(data_root, args, message):
    res = cli(*args, "--root", data_root)
    assert res.exit_code == 2, res.output
    assert re.search(message, res.output), res.output


def test_missing_proposal_and_run_name_what_exists(data_root):
    res = cli("info", "--proposal", 9999, "--run", 42, "--root", data_root)
    assert res.exit_code == 1
    assert f"Proposal p009999 not found under {data_root}" in res.output
    assert "EXFEL_DATA_ROOT" in res.output
    res = cli("convert", "--proposal", 1234, "--run", 7, "--root", data_root, "o.npz",
              "--to", "npz")
    assert res.exit_code == 1
    assert "r0007 not found (1 runs in raw: r0042)" in res.output


def test_open_run_root_argument(data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("EXFEL_DATA_ROOT", str(tmp_path))  # root= wins over the variable
    run = ed.open_run(1234, 42, root=str(data_root))
    assert "SA1_XTD2_XGM/XGM/DOOCS" in run.all_sources
    np.testing.assert_array_equal(run.train_ids, np.arange(10000, 10006))
    with pytest.raises(FileNotFoundError, match=f"p001234 not found under {tmp_path}"):
        ed.open_run(1234, 42)
