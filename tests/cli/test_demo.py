"""`exfel-data demo`: the README's first command."""

from click.testing import CliRunner

from exfel_data.cli import main


def test_demo_writes_run_and_shows_operations(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--trains", "12"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r0001").is_dir()
    out = result.output
    assert "# of trains:    12" in out
    assert "train 10000  SA1_XTD2_XGM/XGM/DOOCS:output" in out
    assert "trainId: 12" in out
    assert "shape (16, 12, 2, 2, 64, 32), dtype uint16" in out

    again = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert "Reusing the sample run" in again.output
