"""Fixtures: runs written by extra-data's mock writer (another tool), with real values."""


import h5py
import numpy as np
import pytest
from reader_runs import make_small_run


def fill_random(path, seed=0):
    """Write deterministic non-zero values into every numeric dataset of a file."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "r+") as f:
        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset) or name.startswith(("INDEX", "METADATA")):
                return
            if name.endswith("trainId") or obj.dtype.kind not in "iuf" or obj.size == 0:
                return
            if obj.size > 50_000:
                return
            obj[...] = rng.integers(0, 100, size=obj.shape).astype(obj.dtype)
        f.visititems(visit)


@pytest.fixture(scope="session", params=["0.5", "1.2"])
def fxe_run(request, tmp_path_factory):
    """Like extra-data's make_fxe_run, with 2 of the 16 LPD modules (to keep tests fast)."""
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.detectors import LPDModule
    from extra_data.tests.mockdata.gec_camera import GECCamera
    from extra_data.tests.mockdata.xgm import XGM

    version = request.param
    d = tmp_path_factory.mktemp(f"fxe{version}")
    for modno in (0, 3):
        write_file(str(d / f"RAW-R0450-LPD{modno:02}-S00000.h5"), [
            LPDModule(f"FXE_DET_LPD1M-1/DET/{modno}CH0", frames_per_train=128)
        ], ntrains=480, chunksize=32, format_version=version)
    for seq, (ntrains, first) in enumerate([(400, 10000), (80, 10400)]):
        path = str(d / f"RAW-R0450-DA01-S{seq:05}.h5")
        write_file(path, [
            XGM("SA1_XTD2_XGM/DOOCS/MAIN"), XGM("SPB_XTD9_XGM/DOOCS/MAIN"),
            GECCamera("FXE_XAD_GEC/CAM/CAMERA"),
            GECCamera("FXE_XAD_GEC/CAM/CAMERA_NODATA", nsamples=0),
        ], ntrains=ntrains, firsttrain=first, chunksize=200, format_version=version)
        fill_random(path, seed=seq)
    return str(d)


@pytest.fixture(scope="session")
def spb_run(tmp_path_factory):
    """Like extra-data's make_spb_run (format 1.0) with 2 AGIPD modules, small camera."""
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.basler_camera import BaslerCamera
    from extra_data.tests.mockdata.detectors import AGIPDModule
    from extra_data.tests.mockdata.xgm import XGM

    d = tmp_path_factory.mktemp("spb")
    for modno in (0, 4):
        path = str(d / f"RAW-R0238-AGIPD{modno:02}-S00000.h5")
        write_file(path, [AGIPDModule(f"SPB_DET_AGIPD1M-1/DET/{modno}CH0",
                                      frames_per_train=64)],
                   ntrains=64, chunksize=32, format_version="1.0")
        fill_random(path, seed=modno)
    for seq in range(2):
        path = str(d / f"RAW-R0238-DA01-S{seq:05}.h5")
        write_file(path, [XGM("SA1_XTD2_XGM/DOOCS/MAIN"), XGM("SPB_XTD9_XGM/DOOCS/MAIN"),
                          BaslerCamera("SPB_IRU_CAM/CAM/SIDEMIC", sensor_size=(32, 24))],
                   ntrains=32, firsttrain=10000 + 32 * seq, chunksize=32,
                   format_version="1.0")
        fill_random(path, seed=10 + seq)
    return str(d)


@pytest.fixture(scope="session")
def sa3_file(tmp_path_factory):
    """A DA file like SASE3's: nested channel names, fewer/more samples than trains,
    a source without control data and a RUN-only source."""
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.adc import ADC
    from extra_data.tests.mockdata.gauge import Gauge
    from extra_data.tests.mockdata.imgfel import IMGFELCamera
    from extra_data.tests.mockdata.motor import Motor
    from extra_data.tests.mockdata.proc import ReconstructedDLD6

    d = tmp_path_factory.mktemp("sa3")
    path = str(d / "RAW-R0001-DA01-S00000.h5")
    write_file(path, [
        ADC("SA3_XTD10_MCP/ADC/1", nsamples=0, channels=("channel_3.output/data",
                                                        "channel_5.output/data")),
        Motor("SA3_XTD10_MCP/MOTOR/X2"),
        Gauge("SA3_XTD10_VAC/GAUGE/G30520C", no_ctrl_data=True),
        IMGFELCamera("SA3_XTD10_IMGFEL/CAM/BEAMVIEW", nsamples=0),
        IMGFELCamera("SA3_XTD10_IMGFEL/CAM/BEAMVIEW2", nsamples=250),
        IMGFELCamera("SA3_XTD10_IMGFEL/CAM/BEAMVIEW3", nsamples=20),
        ReconstructedDLD6("SA3_REMI_DLD6/DET/TOP"),
    ], ntrains=50, chunksize=50, format_version="1.0")
    with h5py.File(path, "r+") as f:
        pix = f["INSTRUMENT/SA3_XTD10_IMGFEL/CAM/BEAMVIEW2:daqOutput/data/image/pixels"]
        pix[:, :4, :5] = np.arange(pix.shape[0] * 20).reshape(-1, 4, 5) % 60000
        f["RUN/SA3_XTD10_MCP/MOTOR/X2/actualPosition/value"][0] = 3.25
    return path

@pytest.fixture(scope="session")
def small_run_dir(tmp_path_factory):
    return str(make_small_run(tmp_path_factory.mktemp("small")))


@pytest.fixture()
def small_run(small_run_dir):
    import exfel_data as ed

    return ed.RunDirectory(small_run_dir)
