"""recipes/match_and_record.py: two simulated streams matched, normalised and recorded."""

import importlib.util
import os

import extra_data
import numpy as np
import pytest

from bridge.simulation import FIRST_TRAIN_ID, Simulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DET = "SPB_DET_AGIPD1M-1/CORR/0CH0:output"
XGM = "SA1_XTD2_XGM/XGM/DOOCS:output"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location(
        "match_and_record", os.path.join(ROOT, "recipes", "match_and_record.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_value(train_id, pulses):
    """Independent truth: the simulators' arrays for that train, normalised with numpy."""
    index = train_id - FIRST_TRAIN_ID
    det = Simulator("AGIPDModule", pulses=pulses).train(index)[0][DET]["image.data"]
    xgm = Simulator("XGM").train(index)[0][XGM]["data.intensityTD"]
    sums = [det[..., i].astype(np.float64).sum() for i in range(pulses)]   # online order
    return np.mean(np.array(sums) / xgm[:pulses].astype(np.float64))


def test_both_axis_orders(recipe):
    xgm = Simulator("XGM").train(3)[0]
    energy = xgm[XGM]["data.intensityTD"][:4].astype(np.float64)
    online = Simulator("AGIPDModule", pulses=4).train(3)[0]
    files = Simulator("AGIPDModule", pulses=4, data_like="file").train(3)[0]
    for train, frame in [(online, lambda a, i: a[..., i]), (files, lambda a, i: a[i])]:
        image = train[DET]["image.data"]
        sums = np.array([frame(image, i).astype(np.float64).sum() for i in range(4)])
        tid, value = recipe.normalised_intensity({**train, **xgm})
        assert tid == FIRST_TRAIN_ID + 3
        assert value == pytest.approx(np.mean(sums / energy), rel=1e-9)


def test_simulated_streams_matched_and_recorded(recipe, tmp_path, capsys):
    out = tmp_path / "matched"
    results = recipe.main(["--simulate", "--count", "6", "--pulses", "5", "--rate", "20",
                           "--record", str(out)])
    assert len(results) == 6
    tids = [t for t, _ in results]
    assert tids == sorted(tids) and len(set(tids)) == 6
    for train_id, value in results:
        assert value == pytest.approx(expected_value(train_id, 5), rel=1e-9)
    printed = capsys.readouterr().out
    assert f"train {tids[0]}: detector / XGM = {results[0][1]:.4f}" in printed
    assert "Recorded 6 trains" in printed

    run = extra_data.RunDirectory(str(out))
    assert run.train_ids == tids
    assert {DET, XGM, "SA1_XTD2_XGM/XGM/DOOCS"} == set(run.all_sources)
    image = run[DET, "image.data"].ndarray()
    assert image.shape == (6, 128, 512, 5) and image.dtype == np.float32


def test_needs_inputs(recipe):
    with pytest.raises(SystemExit):
        recipe.main(["--det", "4545"])
