"""The incomplete-data warning text, from hand-made (trains, modules) count tables."""

import numpy as np

from exfel_data.detectors.completeness import incomplete_data_message

TIDS = np.arange(10000, 10010, dtype=np.uint64)


def test_complete_data_gives_no_message():
    counts = np.full((10, 3), 64, dtype=np.uint64)
    ref = np.full(10, 64, dtype=np.uint64)
    assert incomplete_data_message('DET', [0, 1, 2], TIDS, counts, ref, 'fill') is None


def test_missing_and_mismatched_modules_are_named_with_their_trains():
    counts = np.full((10, 3), 64, dtype=np.uint64)
    counts[[2, 7], 1] = 0          # module 5 missing in 2 trains
    counts[4, 2] = 60              # module 9 short in one train
    ref = np.full(10, 64, dtype=np.uint64)
    msg = incomplete_data_message('SPB_DET', [0, 5, 9], TIDS, counts, ref, 'exclude')
    assert msg == (
        "SPB_DET: incomplete detector data:\n"
        "  - module 5 has no data in 2 of 10 trains (10002, 10007)\n"
        "  - module 9 recorded a different number of frames than the other modules in 1 "
        "trains (10004; e.g. 60 instead of 64 in train 10004): its data in those trains "
        "is excluded (filled)\n"
        "See .data_counts() for the full table.")


def test_long_train_lists_are_shortened():
    counts = np.full((10, 2), 64, dtype=np.uint64)
    counts[:, 1] = 0
    ref = np.full(10, 64, dtype=np.uint64)
    msg = incomplete_data_message('DET', [0, 1], TIDS, counts, ref, 'fill')
    assert "module 1 has no data in 10 of 10 trains " \
           "(10000, 10001, 10002, 10003, 10004, 10005, ... (10 trains))" in msg
