"""One rule decides which sources are detector modules: every consumer agrees on it.

For each kind of detector the generator writes, ``run.detector_modules()``, ``info()``,
the detector classes, ``convert --to cxi`` and ``serve-run --append-detector-modules``
find the same module sources and numbers, which the test takes from the generator.
"""

import io
import warnings

import h5py
import numpy as np
import pytest

from bridge.serve_run import stack_detector_modules
from exfel_data import RunDirectory
from exfel_data.detectors import open_detector
from exfel_data.testing import AGIPD1M, AGIPD500K, DSSC1M, JUNGFRAU, LPD1M, XGM, make_run
from exfel_data.write.convert import convert

SHAPE = (16, 8)

PRESETS = {
    'agipd_raw': lambda: AGIPD1M(raw=True, frames_per_train=2, module_shape=SHAPE,
                                 modules=[0, 1, 5, 15]),
    'agipd_corr_output': lambda: AGIPD1M(raw=False, frames_per_train=2, module_shape=SHAPE,
                                         modules=[0, 3], corrected_naming='output+links'),
    'agipd500k_raw': lambda: AGIPD500K(raw=True, frames_per_train=2, module_shape=SHAPE),
    'lpd_raw': lambda: LPD1M(raw=True, frames_per_train=2, module_shape=SHAPE, modules=[2, 9]),
    'dssc_corr': lambda: DSSC1M(raw=False, frames_per_train=2, module_shape=SHAPE,
                                modules=range(4)),
    'jungfrau': lambda: JUNGFRAU(raw=False, cells=2, n_modules=3, module_shape=SHAPE),
}


@pytest.fixture(scope='module', params=sorted(PRESETS))
def generated(request, tmp_path_factory):
    preset = PRESETS[request.param]()
    path = make_run(tmp_path_factory.mktemp(request.param), n_trains=3, trains_per_file=2,
                    devices=[XGM(), *preset], progress=False)
    expected = {preset.name: {d.module: d.name for d in preset.modules}}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return RunDirectory(path), expected


def test_detector_modules_sorted(generated):
    run, expected = generated
    found = run.detector_modules()
    assert found == expected
    for mods in found.values():
        assert list(mods) == sorted(mods)


def test_info_lists_the_modules_once(generated):
    run, expected = generated
    (det, mods), = expected.items()
    out = io.StringIO()
    run.info(file=out)
    text = out.getvalue()
    assert f"{len(mods)} detector modules of {det}" in text
    others = text.split('instrument sources (excluding detectors):')[1].split('control')[0]
    for src in mods.values():
        assert src not in others


def test_detector_class(generated):
    run, expected = generated
    (det_name, mods), = expected.items()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        det = open_detector(run)
    assert det.detector_name == det_name
    assert det.modno_to_source == mods
    assert det.modules == sorted(mods)


def test_cxi_module_identifier(generated, tmp_path):
    run, expected = generated
    (det, mods), = expected.items()
    out = tmp_path / 'x.cxi'
    convert(run.files[0].filename.rsplit('/', 1)[0], out, 'cxi', select=[f'{det}/*'])
    with h5py.File(out) as f:
        ids = f['entry_1/instrument_1/detector_1/module_identifier'][()]
    assert ids.tolist() == sorted(mods)


def test_stacked_stream(generated):
    run, expected = generated
    (det_name, mods), = expected.items()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        det = open_detector(run)
        arr = det.get_array()
    _tid, data = run.train_from_index(0)
    out = stack_detector_modules(data)
    name = f'{det_name}/DET/APPEND'
    assert set(out) == (set(data) - set(mods.values())) | {name}
    d = out[name]
    start = min(mods) if det_name.endswith('JF4M') else 0
    assert [s for s in d['sources'] if s] == [mods[m] for m in sorted(mods)]
    assert len(d['sources']) == det.n_modules
    assert d['modulesPresent'] == [m + start in mods for m in range(det.n_modules)]
    stacked = d[det.kind.main_key]
    for i, m in enumerate(det.modules):
        # module axis at -3 (EXtra-data's layout): (frames, [1 or 2,] modules, ss, fs);
        # get_array drops raw LPD/DSSC's singleton axis
        module = np.take(stacked, m - start, axis=-3)
        np.testing.assert_array_equal(module.reshape(arr.values[i, 0].shape), arr.values[i, 0])
