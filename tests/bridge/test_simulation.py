"""The simulator: sources, keys, shapes, dtypes, train IDs, axis orders, pacing."""

import time

import numpy as np
import pytest

from bridge.serving import paced
from bridge.simulation import FIRST_TRAIN_ID, Simulator, make_metadata

AGIPD = "SPB_DET_AGIPD1M-1/CAL/APPEND_CORRECTED"


@pytest.mark.parametrize("raw, data_like, shape, dtype", [
    (False, "online", (16, 128, 512, 3), np.float32),
    (False, "file", (3, 16, 512, 128), np.float32),
    (True, "online", (16, 128, 512, 2, 3), np.uint16),
    (True, "file", (3, 2, 16, 512, 128), np.uint16),   # as stack_detector_data
])
def test_agipd_shapes(raw, data_like, shape, dtype):
    sim = Simulator("AGIPD", raw=raw, data_like=data_like, pulses=3)
    source = "SPB_DET_AGIPD1M-1/CAL/APPEND_" + ("RAW" if raw else "CORRECTED")
    assert sim.sources == [source]
    data, meta = sim.train(0)
    d = data[source]
    assert d["image.data"].shape == shape
    assert d["image.data"].dtype == dtype
    assert d["image.data"].flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(d["image.cellId"], np.arange(3, dtype=np.uint16))
    assert d["image.pulseId"].dtype == np.uint64
    np.testing.assert_array_equal(d["image.trainId"], [FIRST_TRAIN_ID] * 3)
    assert d["modulesPresent"] == [True] * 16
    assert d["sources"][5] == "SPB_DET_AGIPD1M-1/DET/5CH0:xtdf"
    assert ("image.passport" in d) is (not raw)
    assert d["metadata"] is meta[source]


def test_online_and_file_orders_hold_the_same_picture():
    online = Simulator("AGIPD", pulses=2).train(0)[0][AGIPD]["image.data"]
    file = Simulator("AGIPD", pulses=2, data_like="file").train(0)[0][AGIPD]["image.data"]
    # online (modules, fs, ss, pulses) -> file (pulses, modules, ss, fs)
    np.testing.assert_array_equal(online.transpose(3, 0, 2, 1), file)


def test_raw_gain_axis_differs_from_data():
    d = Simulator("AGIPDModule", raw=True, data_like="file", pulses=2).train(0)[0]
    image = d["SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"]["image.data"]
    assert image.shape == (2, 2, 512, 128)
    assert image[:, 0].mean() < image[:, 1].mean()


@pytest.mark.parametrize("detector, source, key, shape, dtype", [
    ("AGIPDModule", "SPB_DET_AGIPD1M-1/CORR/0CH0:output", "image.data", (128, 512, 4),
     np.float32),
    ("LPD", "FXE_DET_LPD1M-1/CAL/APPEND_CORRECTED", "image.data", (16, 256, 256, 4),
     np.float32),
    ("JUNGFRAU", "SPB_IRDA_JF4M/DET/JNGFR01:daqOutput", "data.adc", (4, 512, 1024),
     np.float32),
    ("Camera", "SPB_IRU_CAM/CAM/SIDEMIC:daqOutput", "data.image.pixels", (768, 1024),
     np.uint16),
])
def test_other_detectors(detector, source, key, shape, dtype):
    pulses = None if detector == "Camera" else 4
    data, meta = Simulator(detector, pulses=pulses).train(2)
    assert list(data) == [source]
    assert data[source][key].shape == shape
    assert data[source][key].dtype == dtype
    assert meta[source]["timestamp.tid"] == FIRST_TRAIN_ID + 2


def test_lpd_raw_file_order():
    d = Simulator("LPD", raw=True, data_like="file", pulses=5).train(0)[0]
    assert d["FXE_DET_LPD1M-1/CAL/APPEND_RAW"]["image.data"].shape == (5, 16, 256, 256)


def test_jungfrau_modules():
    sim = Simulator("JUNGFRAU", modules=3, raw=True, pulses=2)
    assert sim.sources == [f"SPB_IRDA_JF4M/DET/JNGFR0{m}:daqOutput" for m in (1, 2, 3)]
    d = sim.train(1)[0]["SPB_IRDA_JF4M/DET/JNGFR02:daqOutput"]
    assert d["data.adc"].dtype == np.uint16
    np.testing.assert_array_equal(d["data.frameNumber"], [2, 3])
    np.testing.assert_array_equal(d["data.memoryCell"], [0, 1])


def test_xgm_is_small_with_six_arrays():
    sim = Simulator("XGM", pulses=10)
    data, _ = sim.train(0)
    fast = data["SA1_XTD2_XGM/XGM/DOOCS:output"]
    arrays = [k for k, v in fast.items() if isinstance(v, np.ndarray)]
    assert len(arrays) == 6
    assert 24_000 <= sim.nbytes <= 26_000
    intensity = fast["data.intensityTD"]
    assert intensity.shape == (1000,) and intensity.dtype == np.float32
    assert (intensity[:10] > 500).all() and (intensity[10:] == 1).all()
    slow = data["SA1_XTD2_XGM/XGM/DOOCS"]
    assert isinstance(slow["beamPosition.ixPos.value"], float)
    assert "beamPosition.ixPos.timestamp" in slow


def test_train_ids_increase_and_data_varies():
    sim = Simulator("AGIPD", pulses=2)
    trains = [sim.train(i) for i in range(5)]
    tids = [meta[AGIPD]["timestamp.tid"] for _, meta in trains]
    assert tids == list(range(FIRST_TRAIN_ID, FIRST_TRAIN_ID + 5))
    first, second = (t[0][AGIPD]["image.data"] for t in trains[:2])
    assert not np.array_equal(first, second)
    # Arrays handed out are never modified later: they are read-only views.
    assert not first.flags.writeable


def test_trains_reuse_precomputed_buffers():
    # No per-train generation: every train is a view on data made at start-up.
    sim = Simulator("AGIPD", pulses=2)
    images = [sim.train(i)[0][AGIPD]["image.data"] for i in range(8)]
    assert all(np.shares_memory(images[0], im) for im in images)


def test_metadata_timestamp_fields():
    meta = make_metadata("SRC", 10000000001, 1700000000.5)
    assert meta == {"source": "SRC", "timestamp": 1700000000.5, "timestamp.sec": "1700000000",
                    "timestamp.frac": "500000000000000000", "timestamp.tid": 10000000001}


@pytest.mark.parametrize("kwargs, message", [
    ({"detector": "DSSC"}, "Unknown detector 'DSSC'"),
    ({"data_like": "disk"}, "data_like"),
    ({"pulses": 0}, "pulses"),
    ({"detector": "AGIPD", "modules": 2}, "JUNGFRAU only"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Simulator(**kwargs)


def test_paced_rate():
    t0 = time.monotonic()
    assert list(paced(range(6), rate=50)) == list(range(6))
    assert time.monotonic() - t0 >= 0.09  # 5 periods of 20 ms


# -- served: the real karabo_bridge client reads what serve_simulation sends -------------------

@pytest.fixture
def serve_sim():
    """Start serve_simulation in a thread: ``serve_sim(detector, **kw) -> endpoint``."""
    import threading

    from bridge.simulation import serve_simulation

    stop, threads = threading.Event(), []

    def start(detector, **kwargs):
        ready, endpoints = threading.Event(), []

        def on_ready(server):
            endpoints.append(server.endpoint)
            ready.set()

        thread = threading.Thread(
            target=serve_simulation, args=("tcp://127.0.0.1:0", detector),
            kwargs=dict(stop=stop, on_ready=on_ready, **kwargs), daemon=True)
        thread.start()
        threads.append(thread)
        assert ready.wait(20), "simulation server did not start"
        return endpoints[0]

    yield start
    stop.set()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive()


@pytest.mark.parametrize("sock, client_sock", [("REP", "REQ"), ("PUSH", "PULL")])
def test_karabo_bridge_client_reads_serve_simulation(serve_sim, sock, client_sock):
    import karabo_bridge
    endpoint = serve_sim("AGIPD", pulses=2, sock=sock)
    expected = Simulator("AGIPD", pulses=2)
    with karabo_bridge.Client(endpoint, sock=client_sock, timeout=20) as client:
        for i in range(3):
            data, meta = client.next()
            ref = expected.train(i)[0][AGIPD]
            assert meta[AGIPD]["timestamp.tid"] == FIRST_TRAIN_ID + i
            assert {"timestamp", "timestamp.sec", "timestamp.frac"} <= set(meta[AGIPD])
            np.testing.assert_array_equal(data[AGIPD]["image.data"], ref["image.data"])
            np.testing.assert_array_equal(data[AGIPD]["image.cellId"], ref["image.cellId"])
            np.testing.assert_array_equal(data[AGIPD]["image.trainId"], ref["image.trainId"])
            assert data[AGIPD]["image.passport"] == ref["image.passport"]


def test_karabo_bridge_client_reads_xgm_slow_and_fast_data(serve_sim):
    import karabo_bridge
    endpoint = serve_sim("XGM")
    ref = Simulator("XGM").train(0)[0]
    with karabo_bridge.Client(endpoint, timeout=20) as client:
        data, meta = client.next()
    assert set(data) == set(ref)
    fast = data["SA1_XTD2_XGM/XGM/DOOCS:output"]
    np.testing.assert_array_equal(fast["data.intensityTD"],
                                  ref["SA1_XTD2_XGM/XGM/DOOCS:output"]["data.intensityTD"])
    slow = data["SA1_XTD2_XGM/XGM/DOOCS"]
    assert slow["pulseEnergy.wavelengthUsed.value"] == pytest.approx(0.1378)
