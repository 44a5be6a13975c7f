"""serve-run --append-detector-modules on generated DSSC and AGIPD-500K runs: the stacked
arrays against the files read with plain h5py and against the real extra-data.

EXtra-data's stacking order (``stack_detector_data``, module axis -3): corrected
(frames, modules, ss, fs), raw (frames, gain planes, modules, ss, fs) with one plane for DSSC
and two for AGIPD. Missing modules: 0 for integers, NaN for floats.
"""

import warnings
from pathlib import Path

import extra_data
import h5py
import numpy as np
import pytest

from bridge.serve_run import iter_run_trains
from exfel_data import RunDirectory
from exfel_data.testing import AGIPD500K, DSSC1M, XGM, make_run

SHAPE = (6, 5)
FIRST_TID = 10000
# the second train has 3 frames instead of 2 in every module (a pulse-pattern change)
FRAME_COUNTS = {FIRST_TID + 1: 3}

CASES = {
    # name: (preset, detector domain, modules of the detector, modules written, raw)
    "dssc_raw": (DSSC1M, "SCS_DET_DSSC1M-1", 16, [0, 2, 15], True),
    "dssc_corr": (DSSC1M, "SCS_DET_DSSC1M-1", 16, [1, 5], False),
    "agipd500k_raw": (AGIPD500K, "HED_DET_AGIPD500K2G", 8, [0, 3, 7], True),
    "agipd500k_corr": (AGIPD500K, "HED_DET_AGIPD500K2G", 8, [2, 4], False),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    preset, domain, n_modules, modules, raw = CASES[request.param]
    det = preset(raw=raw, frames_per_train=2, module_shape=SHAPE, modules=modules,
                 frame_counts=FRAME_COUNTS)
    path = make_run(tmp_path_factory.mktemp(request.param), n_trains=3,
                    first_train_id=FIRST_TID, trains_per_file=2, devices=[XGM(), *det],
                    progress=False)
    return path, domain, n_modules, modules, raw


def file_rows(run_dir: Path, source: str, key: str, train_id: int) -> np.ndarray:
    """The rows of ``source``/``key`` for one train, straight from the HDF5 INDEX."""
    group = key.split(".")[0]
    for path in sorted(run_dir.glob("*.h5")):
        with h5py.File(path, "r") as f:
            if f"INSTRUMENT/{source}" not in f:
                continue
            hits = np.flatnonzero(f["INDEX/trainId"][:] == train_id)
            if not len(hits):
                continue
            first = int(f[f"INDEX/{source}/{group}/first"][hits[0]])
            count = int(f[f"INDEX/{source}/{group}/count"][hits[0]])
            return f[f"INSTRUMENT/{source}/{key.replace('.', '/')}"][first:first + count]
    raise AssertionError(f"{source} has no train {train_id} in {run_dir}")


def expected_stack(run_dir, domain, n_modules, modules, raw, key, train_id):
    rows = {m: file_rows(run_dir, f"{domain}/DET/{m}CH0:xtdf", key, train_id) for m in modules}
    one = rows[modules[0]]
    if raw:   # (frames, planes, ss, fs) per module -> (frames, planes, modules, ss, fs)
        shape = one.shape[:2] + (n_modules,) + one.shape[2:]
    else:     # (frames, ss, fs) per module -> (frames, modules, ss, fs)
        shape = one.shape[:1] + (n_modules,) + one.shape[1:]
    fill = np.nan if one.dtype.kind == "f" else 0
    out = np.full(shape, fill, one.dtype)
    for m, data in rows.items():
        out[..., m, :, :] = data
    return out


def served_trains(run_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(iter_run_trains(RunDirectory(run_dir), append_detector_modules=True))


def test_stacked_equals_files_and_extra_data(case):
    run_dir, domain, n_modules, modules, raw = case
    served = served_trains(run_dir)
    assert sorted(served) == [FIRST_TID, FIRST_TID + 1, FIRST_TID + 2]
    keys = ["image.data"] if raw else ["image.data", "image.mask", "image.gain"]
    peer_run = extra_data.RunDirectory(run_dir)
    for tid, data in served.items():
        stacked = data[f"{domain}/DET/APPEND"]
        assert stacked["modulesPresent"] == [m in modules for m in range(n_modules)]
        assert stacked["sources"] == [f"{domain}/DET/{m}CH0:xtdf" if m in modules else ""
                                      for m in range(n_modules)]
        frames = FRAME_COUNTS.get(tid, 2)
        _, peer = peer_run.select(f"{domain}/DET/*").train_from_id(tid)
        for key in keys:
            expected = expected_stack(run_dir, domain, n_modules, modules, raw, key, tid)
            lead = (frames, 1 if domain.startswith("SCS") else 2) if raw else (frames,)
            assert expected.shape == lead + (n_modules,) + SHAPE
            # every module distinct, so a module in the wrong place fails
            assert len({expected[..., m, :, :].tobytes() for m in modules}) == len(modules)
            got = stacked[key]
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected, err_msg=f"{key} train {tid}")
            np.testing.assert_array_equal(
                got, extra_data.stack_detector_data(peer, key, modules=n_modules))
        # per-frame labels: the first module's, as in the file
        np.testing.assert_array_equal(
            stacked["image.cellId"],
            file_rows(run_dir, f"{domain}/DET/{modules[0]}CH0:xtdf", "image.cellId", tid))
