"""Recorder: train dicts -> EXDF run folders that RunDirectory, extra-data and validate accept."""
import os
import signal
import subprocess
import sys
import threading
import time

import extra_data
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import exfel_data
from bridge import Client, Server
from bridge.cli import main as bridge_cli
from bridge.record import Recorder, RecordError
from bridge.serve_run import serve_run
from bridge.simulation import Simulator, serve_simulation
from exfel_data.validation import validate_run

XGM = 'SA1_XTD2_XGM/XGM/DOOCS'
XGM_OUT = 'SA1_XTD2_XGM/XGM/DOOCS:output'
MODULE = 'SPB_DET_AGIPD1M-1/CORR/0CH0:output'
CAMERA = 'SPB_IRU_CAM/CAM/SIDEMIC:daqOutput'
FIRST = 10_000_000_000


def sim_trains(n, pulses=3):
    """n merged simulator trains: XGM slow + fast data, one AGIPD module, a camera."""
    sims = [Simulator('XGM'), Simulator('AGIPDModule', pulses=pulses), Simulator('Camera')]
    for i in range(n):
        data, meta = {}, {}
        for sim in sims:
            d, m = sim.train(i)
            data.update(d)
            meta.update(m)
        yield data, meta


def assert_same_train(got, sent,
                      extra_ok=('data.trainId', 'image.trainId', 'position.timestamp')):
    """Every key sent comes back with equal values; arrays with their dtype and shape.

    A source without data in this train may come back holding only its metadata (as
    exfel_data gives control sources with no row in a train).
    """
    assert set(got) >= set(sent)
    assert all(set(got[s]) == {'metadata'} for s in set(got) - set(sent))
    for source, props in sent.items():
        extra = set(got[source]) - set(props) - {'metadata'}
        assert extra <= set(extra_ok), (source, extra)
        for key, value in props.items():
            if key == 'metadata':
                continue
            back = got[source][key]
            if isinstance(value, np.ndarray):
                assert isinstance(back, np.ndarray), (source, key, back)
                assert back.dtype == value.dtype and back.shape == value.shape, (source, key)
                np.testing.assert_array_equal(back, value)
            else:
                assert np.asarray(back).tolist() == np.asarray(value).tolist(), (source, key)


def problems(path):
    return [str(p) for p in validate_run(path)]


def test_recorded_run_reads_back_everywhere(tmp_path):
    out = tmp_path / 'r0001'
    sent = {}
    with Recorder(out, sequence_size=7, buffer_trains=3) as rec:
        for data, meta in sim_trains(20):
            sent[meta[XGM]['timestamp.tid']] = (data, meta)
            assert rec.add(data, meta)
    assert [p.name for p in rec.files] == [f'RAW-R0001-DA01-S0000{i}.h5' for i in range(3)]
    assert rec.notes == [] and rec.stats['trains'] == 20
    assert not [p for p in out.iterdir() if p.suffix != '.h5']
    assert problems(out) == []

    run = exfel_data.RunDirectory(out)
    assert run.train_ids == sorted(sent)
    assert run.instrument_sources == {XGM_OUT, MODULE, CAMERA}
    assert run.control_sources == {XGM}
    for tid, data in run.trains():
        assert_same_train(data, sent[tid][0])
    # INDEX/timestamp holds the stream's timestamps
    with h5py.File(out / 'RAW-R0001-DA01-S00000.h5') as f:
        stamps = f['INDEX/timestamp'][:7]
    expected = [int(sent[FIRST + i][1][XGM]['timestamp'] * 1e9) for i in range(7)]
    np.testing.assert_allclose(stamps.astype(float), expected, atol=1e3)

    # the real extra-data opens it too, with the same values
    xrun = extra_data.RunDirectory(str(out))
    assert xrun.train_ids == sorted(sent)
    frames = xrun[MODULE, 'image.data'].ndarray()
    assert frames.shape == (20, 128, 512, 3) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames[5], sent[FIRST + 5][0][MODULE]['image.data'])
    flux = xrun[XGM, 'pulseEnergy.photonFlux'].ndarray()
    np.testing.assert_array_equal(
        flux, [sent[t][0][XGM]['pulseEnergy.photonFlux.value'] for t in sorted(sent)])


def _src(source, tid, **keys):
    return {source: {**keys, 'metadata': {'source': source, 'timestamp.tid': tid}}}


def test_late_source_and_changing_shape_keep_every_train(tmp_path):
    out = tmp_path / 'run'
    det, motor = 'DET/CAM/X:output', 'MOTOR/MDL/Y'
    trains = []
    for tid in range(100, 112):
        train = _src(det, tid, **{'data.image': np.full((4, 4) if tid < 106 else (2, 8), tid,
                                                       np.uint16)})
        if tid >= 103:   # appears late
            train.update(_src(motor, tid, **{'position.value': float(tid)}))
        if tid >= 109:   # dtype change
            train[det]['data.image'] = train[det]['data.image'].astype(np.float32)
        trains.append(train)
    with Recorder(out, sequence_size=100) as rec:
        for train in trains:
            rec.add(train)
    notes = '\n'.join(rec.notes)
    assert f'{motor} first appears at train 103' in notes
    assert ('data.image changed from uint16 (4, 4) to uint16 (2, 8) at train 106; the '
            f'following trains go to a new run folder {tmp_path}/run_part2') in notes
    assert f'changed from uint16 (2, 8) to float32 (2, 8) at train 109; the following trains ' \
        f'go to a new run folder {tmp_path}/run_part3' in notes
    assert rec.run_dirs == [out, tmp_path / 'run_part2', tmp_path / 'run_part3']
    assert len(rec.files) == 3
    parts = [(out, range(100, 106)), (tmp_path / 'run_part2', range(106, 109)),
             (tmp_path / 'run_part3', range(109, 112))]
    for folder, tids in parts:
        assert problems(folder) == []
        run = exfel_data.RunDirectory(folder)
        assert run.train_ids == list(tids)
        for (_, data), sent in zip(run.trains(), trains[tids[0] - 100:tids[-1] - 99],
                                   strict=True):
            assert_same_train(data, sent)
    xrun = extra_data.RunDirectory(str(out))
    assert xrun[motor, 'position'].ndarray().tolist() == [float(t) for t in range(103, 106)]


def test_layout_change_at_a_sequence_boundary_is_noticed(tmp_path):
    with Recorder(tmp_path / 'run', sequence_size=2) as rec:
        for tid in range(1, 5):
            rec.add(_src('A/B/C:out', tid, **{'data.x': np.zeros(2 if tid < 3 else 3)}))
    assert [p.parent.name for p in rec.files] == ['run', 'run_part2']
    assert 'data.x changed from float64 (2,) to float64 (3,) at train 3' in rec.notes[0]


def test_unstorable_keys_are_left_out_with_a_note(tmp_path):
    out = tmp_path / 'run'
    with Recorder(out) as rec:
        for tid in (1, 2):
            rec.add(_src('A/B/C:out', tid, **{'data.x': np.arange(3), 'data.none': None,
                                              'data.mixed': [1, 'a', [2]], 'flat': 5}))
        assert not rec.add(_src('A/B/C:out', 1, **{'data.x': np.arange(3)}))  # went back
    notes = '\n'.join(rec.notes)
    assert 'A/B/C:out data.none: not recorded; None has no HDF5 representation' in notes
    assert 'A/B/C:out data.mixed: not recorded' in notes
    assert "A/B/C:out flat: not recorded; instrument keys need an index group" in notes
    assert 'Train 1 came after train 2: not recorded' in notes
    assert rec.stats['skipped'] == 1
    run = exfel_data.RunDirectory(out)
    assert run['A/B/C:out'].keys() == {'data.x', 'data.trainId'}


def test_control_keys_strings_and_own_timestamps(tmp_path):
    out = tmp_path / 'run'
    src = 'SPB_XTD9_XGM/DOOCS/MAIN'
    with Recorder(out) as rec:
        for tid in (5, 6):
            rec.add(_src(src, tid, **{'classId': 'DoocsXGM', 'x.value': tid * 1.5,
                                      'x.timestamp': 1700000000 + tid, 'names': ['a', 'bc']}))
    assert "control keys are stored as 'KEY.value'" in rec.notes[0]
    run = exfel_data.RunDirectory(out)
    data = run.train_from_id(6)[1][src]
    assert data['x.value'] == 9.0 and data['x.timestamp'] == 1700000006
    assert data['classId.value'] in ('DoocsXGM', b'DoocsXGM')
    assert [v if isinstance(v, str) else v.decode() for v in data['names.value']] == ['a', 'bc']


def test_folder_in_use_is_refused(tmp_path):
    (tmp_path / 'RAW-R0001-DA01-S00000.h5').write_bytes(b'')
    with pytest.raises(RecordError, match='already holds a run .*new or empty folder'):
        Recorder(tmp_path)


def test_crash_leaves_finished_files_valid(tmp_path):
    out = tmp_path / 'run'
    rec = Recorder(out, sequence_size=5, buffer_trains=2)
    for data, meta in sim_trains(12, pulses=1):
        rec.add(data, meta)
    # No close(): as if the process died. Two files are finished, the third is a temp file.
    h5 = sorted(p.name for p in out.iterdir() if p.suffix == '.h5')
    assert h5 == ['RAW-R0001-DA01-S00000.h5', 'RAW-R0001-DA01-S00001.h5']
    assert problems(out) == []
    assert exfel_data.RunDirectory(out).train_ids == list(range(FIRST, FIRST + 10))
    assert len(list(out.glob('.*.tmp'))) == 1
    rec.abort()
    assert sorted(p.name for p in out.iterdir() if p.suffix == '.h5') == h5
    assert not list(out.glob('.*.tmp'))


def test_round_trip_simulator_record_serve_run(tmp_path):
    """simulator -> record (over the bridge) -> serve-run: the same train dicts come back."""
    out = tmp_path / 'run'
    n = 15
    with Server(sock='REP', max_queue=100) as server:
        for data, meta in sim_trains(n):
            server.feed(data, meta)
        received = []
        with Client(server.endpoint, timeout=5) as client, \
                Recorder(out, sequence_size=6) as rec:
            for _ in range(n):
                data, meta = client.next()
                received.append((data, meta))
                rec.add(data, meta)
    assert problems(out) == []

    ready = threading.Event()
    servers = []

    def on_ready(srv):
        servers.append(srv)
        ready.set()

    thread = threading.Thread(target=serve_run, args=(str(out), 'tcp://127.0.0.1:0'),
                              kwargs=dict(on_ready=on_ready, drain_timeout=10), daemon=True)
    thread.start()
    assert ready.wait(20)
    with Client(servers[0].endpoint, timeout=10) as client:
        replayed = [client.next() for _ in range(n)]
    thread.join(20)
    for (data, meta), (sent, sent_meta) in zip(replayed, received, strict=True):
        assert {m['timestamp.tid'] for m in meta.values()} == {
            m['timestamp.tid'] for m in sent_meta.values()}
        assert_same_train(data, sent)


def test_cli_record_and_validate(tmp_path):
    stop, ready, servers = threading.Event(), threading.Event(), []

    def on_ready(server):
        servers.append(server)
        ready.set()

    thread = threading.Thread(target=serve_simulation, args=('tcp://127.0.0.1:0', 'XGM'),
                              kwargs=dict(stop=stop, on_ready=on_ready), daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        out = tmp_path / 'rec'
        result = CliRunner().invoke(bridge_cli, [
            'record', str(servers[0].port), str(out), '--trains', '25', '--sequence-size', '10',
            '--source', 'SA1_XTD2_XGM/XGM/DOOCS:*'])
    finally:
        stop.set()
        thread.join(20)
    assert result.exit_code == 0, result.output
    assert 'Recorded 25 trains' in result.output
    assert 'RAW-R0001-DA01-S00002.h5' in result.output
    run = exfel_data.RunDirectory(out)
    assert len(run.train_ids) == 25 and run.all_sources == {XGM_OUT}
    assert problems(out) == []
    again = CliRunner().invoke(bridge_cli, ['record', '4545', str(out)])
    assert again.exit_code != 0 and 'already holds a run' in again.output


def test_sigterm_finishes_the_current_file(tmp_path):
    """A recording stopped by SIGTERM leaves every train it received readable."""
    sim = subprocess.Popen([sys.executable, '-m', 'bridge', 'serve-sim', '0', '-d', 'XGM',
                            '--rate', '50'], stdout=subprocess.PIPE, text=True)
    try:
        port = sim.stdout.readline().strip().rsplit(':', 1)[1]
        out = tmp_path / 'rec'
        rec = subprocess.Popen([sys.executable, '-m', 'bridge', 'record', port, str(out),
                                '--sequence-size', '1000'], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        deadline = time.monotonic() + 20
        while not list(out.glob('.*.tmp')) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        rec.send_signal(signal.SIGTERM)
        output, _ = rec.communicate(timeout=20)
    finally:
        sim.terminate()
        sim.wait(10)
    assert rec.returncode == 0, output
    recorded = int(output.rsplit('Recorded ', 1)[1].split()[0])
    assert recorded > 0
    run = exfel_data.RunDirectory(out)
    assert len(run.train_ids) == recorded
    assert not list(out.glob('.*.tmp'))     # no temporary file left
    assert problems(out) == []


def test_cli_record_duration(tmp_path):
    """--duration S stops the recording after S seconds; with --trains it is refused."""
    stop, ready, servers = threading.Event(), threading.Event(), []

    def on_ready(server):
        servers.append(server)
        ready.set()

    thread = threading.Thread(target=serve_simulation, args=('tcp://127.0.0.1:0', 'XGM'),
                              kwargs=dict(stop=stop, on_ready=on_ready, rate=20), daemon=True)
    thread.start()
    try:
        assert ready.wait(20)
        out = tmp_path / 'rec'
        start = time.monotonic()
        result = CliRunner().invoke(bridge_cli, ['record', str(servers[0].port), str(out),
                                                 '--duration', '1.5'])
        took = time.monotonic() - start
    finally:
        stop.set()
        thread.join(20)
    assert result.exit_code == 0, result.output
    assert 1.5 <= took < 10
    n = len(exfel_data.RunDirectory(out).train_ids)
    assert 5 <= n <= 31   # 20 trains/s for 1.5 s, minus start-up under load
    assert f'Recorded {n} trains' in result.output
    both = CliRunner().invoke(bridge_cli, ['record', '4545', str(tmp_path / 'x'), '--trains',
                                           '3', '--duration', '1'])
    assert both.exit_code == 2 and 'Give --trains or --duration, not both.' in both.output
    assert not (tmp_path / 'x').exists()
