"""recipes/assemble_and_integrate.py: extra-geom assembly and pyFAI integration, offline + live.

Expected images come from the generator's module values put in place by extra-geom itself, and
from extra-data's detector classes; expected I(q) from a plain numpy histogram of pixel q.
"""

import importlib.util
import os
import threading

import extra_data
import extra_data.components as ed_components
import numpy as np
import pytest

from bridge.client import Client
from bridge.serve_run import serve_run
from exfel_data import RunDirectory
from exfel_data.testing import AGIPD1M, DSSC1M, JUNGFRAU, LPD1M, make_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = {'AGIPD1M': [0, 7, 13], 'LPD1M': [2], 'DSSC1M': [5], 'JUNGFRAU': [1, 2]}
N_MODULES = {'AGIPD1M': 16, 'LPD1M': 16, 'DSSC1M': 16, 'JUNGFRAU': 2}
PRESETS = {'AGIPD1M': AGIPD1M, 'LPD1M': LPD1M, 'DSSC1M': DSSC1M, 'JUNGFRAU': JUNGFRAU}
FRAME = 1


@pytest.fixture(scope='module')
def recipe():
    spec = importlib.util.spec_from_file_location(
        'assemble_and_integrate', os.path.join(ROOT, 'recipes', 'assemble_and_integrate.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def detectors():
    """Corrected XTDF detectors and a JUNGFRAU, a few full-size modules each."""
    made = {kind: PRESETS[kind](raw=False, frames_per_train=2, modules=MODULES[kind])
            for kind in ('AGIPD1M', 'LPD1M', 'DSSC1M')}
    made['JUNGFRAU'] = JUNGFRAU(raw=False, cells=2, modules=MODULES['JUNGFRAU'])
    return made


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory, detectors):
    devices = [m for det in detectors.values() for m in det]
    return make_run(tmp_path_factory.mktemp('geom') / 'r0001', n_trains=2, devices=devices)


def generated_frame(detectors, kind, recipe, train_id, frame=FRAME):
    """Independent truth: the generator's values stacked (modules, ss, fs), NaN if absent."""
    key = recipe.KINDS[kind][1]
    modules = list(detectors[kind])
    first = 1 if kind == 'JUNGFRAU' else 0
    shape = modules[0].module_shape
    out = np.full((N_MODULES[kind],) + shape, np.nan, np.float32)
    for dev in modules:
        rows = dev.values(key, [train_id])
        out[dev.module - first] = rows[0][frame] if kind == 'JUNGFRAU' else rows[frame]
    return out


@pytest.mark.parametrize('kind', sorted(MODULES))
def test_assembled_from_get_array_and_train_dict(recipe, detectors, run_dir, kind):
    run = RunDirectory(run_dir)
    tid = run.train_ids[1]
    geom = recipe.geometry_for(kind, n_modules=N_MODULES[kind])
    expected, expected_centre = geom.position_modules(
        generated_frame(detectors, kind, recipe, tid))
    assert np.isfinite(expected).any() and np.isnan(expected).any()   # modules and gaps

    image, centre = recipe.assemble(geom, recipe.frame_from_get_array(run, kind, tid, FRAME))
    np.testing.assert_array_equal(image, expected)
    np.testing.assert_array_equal(centre, expected_centre)

    name = recipe.KINDS[kind][0]
    det_name = {'AGIPD1M': 'SPB_DET_AGIPD1M-1', 'LPD1M': 'FXE_DET_LPD1M-1',
                'DSSC1M': 'SCS_DET_DSSC1M-1', 'JUNGFRAU': 'SPB_IRDA_JF4M'}[kind]
    _, data = run.select([f'{det_name}/*']).train_from_id(tid)
    image, _ = recipe.assemble(geom, recipe.frame_from_train(data, kind, FRAME, det_name))
    np.testing.assert_array_equal(image, expected)

    # and what extra-geom makes of extra-data's own get_array
    peer_run = extra_data.RunDirectory(str(run_dir)).select_trains(extra_data.by_id[[tid]])
    peer = getattr(ed_components, name)(peer_run).get_array(recipe.KINDS[kind][1])
    frame_dim = 'cell' if kind == 'JUNGFRAU' else 'pulse'
    peer_image, _ = geom.position_modules(peer.isel({'train': 0, frame_dim: FRAME}))
    np.testing.assert_array_equal(image, peer_image)


def test_integration_is_a_radial_histogram(recipe, detectors, run_dir):
    run = RunDirectory(run_dir)
    geom = recipe.geometry_for('AGIPD1M')
    image, centre = recipe.assemble(
        geom, recipe.frame_from_get_array(run, 'AGIPD1M', run.train_ids[0], FRAME))
    q, intensity = recipe.integrate(image, centre, geom.pixel_size, distance=0.3,
                                    energy_kev=12.0, npt=150)
    # numpy: q of each pixel centre, mean of the valid pixels in pyFAI's bins
    iy, ix = np.indices(image.shape)
    radius = np.hypot(iy + 0.5 - centre[0], ix + 0.5 - centre[1]) * geom.pixel_size
    wavelength_nm = 12.398419843320026 / 12.0 / 10
    pixel_q = 4 * np.pi / wavelength_nm * np.sin(np.arctan2(radius, 0.3) / 2)
    valid = np.isfinite(image)
    step = q[1] - q[0]
    edges = np.append(q - step / 2, q[-1] + step / 2)
    sums, _ = np.histogram(pixel_q[valid], edges, weights=image[valid].astype(np.float64))
    counts, _ = np.histogram(pixel_q[valid], edges)
    assert len(q) == 150 and (counts > 0).sum() > 30
    filled = counts > 0
    np.testing.assert_allclose(intensity[filled], sums[filled] / counts[filled], rtol=1e-5)
    assert np.all(intensity[~filled] == 0)


@pytest.mark.parametrize('kind', sorted(MODULES))
def test_module_integration_uses_the_pixel_positions(recipe, detectors, run_dir, kind):
    """--integrate modules: q from extra-geom's own pixel positions, binned with numpy."""
    run = RunDirectory(run_dir)
    tid = run.train_ids[0]
    geom = recipe.geometry_for(kind, n_modules=N_MODULES[kind])
    frame = recipe.frame_from_get_array(run, kind, tid, FRAME)
    q, intensity = recipe.integrate_modules(geom, frame, distance=0.4, energy_kev=9.0, npt=120)
    values = generated_frame(detectors, kind, recipe, tid)
    positions = geom.get_pixel_positions()                       # pixel centres, metres
    radius = np.hypot(positions[..., 0], positions[..., 1])
    wavelength_nm = 12.398419843320026 / 9.0 / 10
    pixel_q = 4 * np.pi / wavelength_nm * np.sin(np.arctan2(radius, 0.4) / 2)
    valid = np.isfinite(values)
    step = q[1] - q[0]
    edges = np.append(q - step / 2, q[-1] + step / 2)
    sums, _ = np.histogram(pixel_q[valid], edges, weights=values[valid].astype(np.float64))
    counts, _ = np.histogram(pixel_q[valid], edges)
    filled = counts > 0
    assert filled.sum() > 20
    # pyFAI computes pixel centres from their corners in float32, so a pixel on a bin edge
    # may land in the next bin (JUNGFRAU: 5e-5); more so for DSSC's hexagonal pixels.
    rtol = 5e-3 if kind == 'DSSC1M' else 2e-4
    np.testing.assert_allclose(intensity[filled], sums[filled] / counts[filled], rtol=rtol)
    assert np.all(intensity[~filled] == 0)


def test_live_equals_offline(recipe, detectors, run_dir, capsys):
    stop, ready, servers = threading.Event(), threading.Event(), []

    def on_ready(server):
        servers.append(server)
        ready.set()

    thread = threading.Thread(
        target=serve_run, args=(run_dir, 'tcp://127.0.0.1:0'),
        kwargs=dict(append_detector_modules=True, loop=True, stop=stop, on_ready=on_ready),
        daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        endpoint = servers[0].endpoint
        geom = recipe.geometry_for('AGIPD1M')
        with Client(endpoint, timeout=20) as client:
            data, meta = client.next()
        tid = int(meta['SPB_DET_AGIPD1M-1/DET/APPEND']['timestamp.tid'])
        image, _ = recipe.assemble(geom, recipe.frame_from_stream(
            data, 'AGIPD1M', FRAME, 'SPB_DET_AGIPD1M-1'))
        expected, _ = geom.position_modules(generated_frame(detectors, 'AGIPD1M', recipe, tid))
        np.testing.assert_array_equal(image, expected)
        with pytest.raises(KeyError, match=r"Need one '<detector>/DET/APPEND' source with "
                                           r"'image.data'.*found \['FXE_DET_LPD1M-1/DET/APP"):
            recipe.frame_from_stream(data, 'AGIPD1M')   # three detectors have image.data

        for kind, name in (('AGIPD1M', 'SPB_DET_AGIPD1M-1'), ('JUNGFRAU', None)):
            capsys.readouterr()
            assert recipe.main([endpoint, '--detector', kind, '--count', '2',
                                '--frame', str(FRAME)]
                               + (['--detector-name', name] if name else [])) == 0
            live = capsys.readouterr().out.splitlines()
            assert recipe.main(['--run', str(run_dir), '--detector', kind,
                                '--frame', str(FRAME), '--via', 'train']) == 0
            offline = capsys.readouterr().out.splitlines()
            assert len(live) == 2 and sorted(live) == sorted(offline)
            assert 'I(q) max' in live[0]
    finally:
        stop.set()
        thread.join(20)


def test_geometry_file_and_png(recipe, run_dir, tmp_path, capsys):
    geom_file = tmp_path / 'agipd.geom'
    recipe.geometry_for('AGIPD1M').write_crystfel_geom(str(geom_file))
    png = tmp_path / 'out.png'
    args = ['--run', str(run_dir), '--count', '1']
    assert recipe.main(args) == 0
    default = capsys.readouterr().out
    assert recipe.main(args + ['--geometry', str(geom_file), '--png', str(png)]) == 0
    from_file = capsys.readouterr().out
    assert from_file.splitlines()[0] == default.splitlines()[0]
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert not (tmp_path / 'out.png.tmp.png').exists()


def test_refusals(recipe, run_dir, capsys):
    with pytest.raises(SystemExit):
        recipe.main([])
    with pytest.raises(SystemExit):
        recipe.main(['--run', str(run_dir), '--detector', 'DSSC1M'])
    assert "DSSC's pixels are hexagonal" in capsys.readouterr().err
    assert recipe.main(['--run', str(run_dir), '--detector', 'DSSC1M', '--integrate',
                        'none']) == 0
    out = capsys.readouterr().out
    assert 'image (' in out and 'I(q)' not in out
    assert recipe.main(['--run', str(run_dir), '--detector', 'DSSC1M', '--integrate',
                        'modules', '--via', 'train']) == 0
    assert 'I(q) max' in capsys.readouterr().out
    with pytest.raises(KeyError, match="No module source with 'data.adc'"):
        recipe.frame_from_train({'X/DET/0CH0:xtdf': {'image.data': None}}, 'JUNGFRAU')


def test_raw_agipd_uses_the_data_plane(recipe, tmp_path):
    """Raw AGIPD stacks (frames, 2, modules, ss, fs): the data plane (not gain) is assembled."""
    raw = AGIPD1M(raw=True, frames_per_train=2, modules=[3])
    run = RunDirectory(make_run(tmp_path / 'r0003', n_trains=1, devices=list(raw)))
    tid, data = run.train_from_index(0)
    frame = recipe.frame_from_train(data, 'AGIPD1M', 1)
    assert frame.shape == (16, 512, 128)
    np.testing.assert_array_equal(frame[3], raw[0].values('image.data', [tid])[1, 0])
    assert (frame[0] == 0).all()   # integer data: missing modules are 0, as extra-data fills
