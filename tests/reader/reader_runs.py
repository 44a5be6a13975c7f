"""Names and the small hand-written run shared by the reader tests (a module of its own:
``from conftest import`` would pick whichever folder's conftest.py was imported first)."""

import numpy as np
from reader_exdf import write_exdf

XGM = "SA1_XTD2_XGM/DOOCS/MAIN"
XGM_OUT = "SA1_XTD2_XGM/DOOCS/MAIN:output"
CAM = "SPB_IRU_CAM/CAM/SIDEMIC:daqOutput"
DET = "SPB_DET_AGIPD1M-1/DET/{}CH0:xtdf"
STRUCT = np.dtype([("a", "<i4"), ("b", "<f8")])


def make_small_run(d):
    """A 1.3 run of 30 trains (10000-10029) in 4 files with values derived from train IDs.

    DA01 S00000: trains 10000-10014, S00001: 10015-10029 (XGM control + output + camera);
    DET00 / DET01: two detector modules, frames per train = tid % 3 (0, 1 or 2 frames).
    """
    for seq, tids in enumerate([np.arange(10000, 10015), np.arange(10015, 10030)]):
        n = len(tids)
        write_exdf(
            d / f"RAW-R0042-DA01-S{seq:05d}.h5", tids,
            control={XGM: {"beamPosition/ixPos": tids * 0.5,
                           "state": np.array(["ON" if t % 2 else "OFF" for t in tids]),
                           "pulses": np.stack([tids, tids + 1], axis=1).astype(np.int32)},
                     "MOTOR/X": {"actualPosition": np.full(n, 2.5)}},
            instrument={
                XGM_OUT: {"data": (np.ones(n, int), {
                    "intensityTD": (tids[:, None] + np.arange(5)).astype(np.float32),
                    "record": np.array([(int(t), t / 2) for t in tids], dtype=STRUCT)})},
                CAM: {"data": (np.ones(n, int), {
                    "image.pixels": (tids[:, None, None] % 7 + np.zeros((1, 4, 6))
                                     ).astype(np.uint16)})},
            },
            attrs={(XGM, "beamPosition/ixPos"): {"unitSymbol": "m", "metricPrefixSymbol": "u",
                                                  "unitName": "meter",
                                                  "metricPrefixName": "micro"}},
            run_values={("MOTOR/X", "actualPosition"): np.array([2.5])},
        )
    tids = np.arange(10000, 10030)
    counts = tids % 3
    frames = np.repeat(tids, counts)
    for m in range(2):
        write_exdf(
            d / f"RAW-R0042-DET{m:02d}-S00000.h5", tids,
            instrument={DET.format(m): {
                "image": (counts, {"data": ((frames[:, None, None] - 10000) * 10 + m
                                            + np.zeros((1, 3, 4))).astype(np.uint16),
                                   "cellId": np.concatenate([np.arange(c) for c in counts]
                                                            ).astype(np.uint16)}),
                "header": (np.ones(30, int), {"pulseCount": counts.astype(np.uint64)}),
            }},
        )
    return d
