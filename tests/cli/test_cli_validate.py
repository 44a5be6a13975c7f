"""exfel-data validate and exfel_data.validation on generated runs with defects."""

import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from exfel_data.cli import main
from exfel_data.testing import (
    AGIPD1M,
    XGM,
    OverlappingSequences,
    RepeatedTrainId,
    RogueTrainId,
    TrailingZeros,
    TruncatedFile,
    make_run,
)
from exfel_data.validation import CHECKS, UnknownCheckError, validate_file, validate_run


def devices():
    return [XGM(n_samples=4), *AGIPD1M(frames_per_train=2, module_shape=(8, 4), n_modules=2)]


def gen(tmp_path, name, **kw):
    return make_run(tmp_path / name, n_trains=8, trains_per_file=4, devices=devices(), **kw)


def checks(problems):
    return sorted({p.check for p in problems})


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return gen(tmp_path_factory.mktemp("v"), "clean", defects=[TrailingZeros()])


def test_clean_run_exit_0(clean):
    assert validate_run(clean) == []
    res = CliRunner().invoke(main, ["validate", "-q", str(clean)])
    assert res.exit_code == 0, res.output
    assert "No problems found" in res.output


@pytest.mark.parametrize("defect, check, file_part", [
    (RogueTrainId(), "train-id-order", "DA01-S00000"),
    (RepeatedTrainId(), "train-id-order", "DA01-S00000"),
    (TruncatedFile("AGIPD00", 0), "unreadable", "AGIPD00-S00000"),
    (OverlappingSequences(), "duplicate-trains", "DA01-S00001"),
])
def test_generator_defects(tmp_path, defect, check, file_part):
    run = gen(tmp_path, "r", defects=[defect])
    problems = validate_run(run)
    assert checks(problems) == [check]
    assert all(file_part in p.file for p in problems)
    res = CliRunner().invoke(main, ["validate", "-q", str(run)])
    assert res.exit_code == 1
    assert f"[{check}]" in res.output and file_part in res.output
    assert "->" in res.output  # advice printed


def test_rogue_train_message(tmp_path):
    run = gen(tmp_path, "r", defects=[RogueTrainId(position=2)])
    (p,) = validate_run(run)
    assert p.dataset == "INDEX/trainId"
    assert "rows 2 and 3" in p.message and "INDEX/flag marks the suspect" in p.message
    # the suspect train's control timestamps are not reported a second time
    assert "control-timestamps" not in checks(validate_run(run))


def _broken_copy(clean, tmp_path):
    run = tmp_path / "broken"
    shutil.copytree(clean, run)
    return run, run / "RAW-R0001-DA01-S00000.h5"


def test_zero_train_id_in_middle(clean, tmp_path):
    run, fname = _broken_copy(clean, tmp_path)
    with h5py.File(fname, "r+") as f:
        f["INDEX/trainId"][1] = 0
    (p,) = validate_file(fname).problems
    assert (p.check, p.dataset) == ("zero-train-ids", "INDEX/trainId")
    assert "row 1" in p.message


def test_index_problems(clean, tmp_path):
    run, fname = _broken_copy(clean, tmp_path)
    src = "SA1_XTD2_XGM/XGM/DOOCS:output/data"
    with h5py.File(fname, "r+") as f:
        first = f[f"INDEX/{src}/first"]
        first[:] = first[()] + 1                    # index-first
        first[2] = first[2] + 1                     # a gap before train 2, overlap after
        count = f["INDEX/SA1_XTD2_XGM/XGM/DOOCS/count"]
        count[3] = 50                               # beyond the data
    found = {p.check: p for p in validate_file(fname).problems}
    assert set(found) >= {"index-first", "index-gaps", "index-overlaps", "index-bounds"}
    assert found["index-first"].dataset == f"INDEX/{src}"
    assert found["index-bounds"].dataset.startswith("CONTROL/SA1_XTD2_XGM/XGM/DOOCS/")
    # skipping checks
    skipped = validate_file(fname, skip=["index-gaps", "index-overlaps"]).problems
    assert "index-gaps" not in checks(skipped) and "index-first" in checks(skipped)


def test_index_shape(clean, tmp_path):
    run, fname = _broken_copy(clean, tmp_path)
    with h5py.File(fname, "r+") as f:
        grp = f["INDEX/SA1_XTD2_XGM/XGM/DOOCS"]
        count = grp["count"][()]
        del grp["count"]
        grp["count"] = count[:-1]
    assert "index-shape" in checks(validate_file(fname).problems)


def test_control_timestamps_backwards(clean, tmp_path):
    run, fname = _broken_copy(clean, tmp_path)
    ds_path = "CONTROL/SA1_XTD2_XGM/XGM/DOOCS/beamPosition/ixPos/timestamp"
    with h5py.File(fname, "r+") as f:
        ts = f[ds_path][()]
        ts[2] = ts[0] - 5
        f[ds_path][:] = ts
    (p,) = validate_file(fname).problems
    assert (p.check, p.dataset) == ("control-timestamps", ds_path)
    assert "row 2" in p.message


def test_not_a_run_file(tmp_path):
    fname = tmp_path / "other.h5"
    with h5py.File(fname, "w") as f:
        f["x"] = np.arange(3)
    (p,) = validate_file(fname).problems
    assert p.check == "unreadable" and "INDEX/trainId" in p.message


def test_skip_and_unknown_check(tmp_path):
    run = gen(tmp_path, "r", defects=[RogueTrainId()])
    assert validate_run(run, skip=["train-id-order"]) == []
    res = CliRunner().invoke(main, ["validate", "-q", "--skip", "train-id-order", str(run)])
    assert res.exit_code == 0
    with pytest.raises(UnknownCheckError, match="Available checks"):
        validate_run(run, skip=["nonsense"])
    res = CliRunner().invoke(main, ["validate", "--skip", "nonsense", str(run)])
    assert res.exit_code == 2 and "nonsense" in res.output


def test_progress_bar_on_stderr(clean):
    res = CliRunner(mix_stderr=False).invoke(main, ["validate", str(clean)]) \
        if "mix_stderr" in CliRunner.__init__.__code__.co_varnames \
        else CliRunner().invoke(main, ["validate", str(clean)])
    assert res.exit_code == 0
    assert "validating" in res.stderr and "validating" not in res.stdout


def test_help_lists_checks():
    res = CliRunner().invoke(main, ["validate", "--help"])
    assert res.exit_code == 0
    for name in CHECKS:
        assert name in res.output
    assert "--skip" in res.output and "--quiet" in res.output


def _set_version(f, version):
    del f["METADATA/dataFormatVersion"]
    f["METADATA/dataFormatVersion"] = np.array([version.encode()], dtype=object)


def _short_flag(f):
    flag = f["INDEX/flag"][:2]
    del f["INDEX/flag"]
    f["INDEX/flag"] = flag


def _other_dtype(f):
    path = "INSTRUMENT/SA1_XTD2_XGM/XGM/DOOCS:output/data/intensityTD"
    data = f[path][:]
    del f[path]
    f[path] = data.astype(np.float64)


def _reversed_index(f):
    first = f["INDEX/SA1_XTD2_XGM/XGM/DOOCS:output/data/first"]
    first[:3] = first[:3][::-1]


def _huge_count(f):
    f["INDEX/SA1_XTD2_XGM/XGM/DOOCS:output/data/count"][1] = 2**62


def _zero_count(f):  # e.g. a lost chunk of the index read back as zeros
    f["INDEX/SA1_XTD2_XGM/XGM/DOOCS:output/data/count"][1] = 0


@pytest.mark.parametrize("damage, check, text", [
    (lambda f: _set_version(f, "banana"), "format-version", "'banana'"),
    (_short_flag, "index-flag", "2 flag(s) for 4 trains"),
    (lambda f: f["INDEX/trainId"].__setitem__(slice(None), 0), "no-train-ids", "rows are 0"),
    (_other_dtype, "dataset-mismatch", "float64 entries of shape (4,) here, float32"),
    (_reversed_index, "index-overlaps", "overlap"),
    (_zero_count, "index-gaps", "gap"),
    (_huge_count, "index-bounds", f"rows up to {2**62 + 1}"),
])
def test_reports_what_the_reader_refuses_or_skips(clean, tmp_path, damage, check, text):
    """Each case is one the reader skips, refuses or warns about (tests/reader/test_bad_files)."""
    run = tmp_path / "broken"
    shutil.copytree(clean, run)
    bad = run / "RAW-R0001-DA01-S00001.h5"
    with h5py.File(bad, "r+") as f:
        damage(f)
    problems = [p for p in validate_run(run) if p.check == check]
    assert problems, checks(validate_run(run))
    assert all(p.file == str(bad) for p in problems)
    assert any(text in p.message for p in problems), [p.message for p in problems]
