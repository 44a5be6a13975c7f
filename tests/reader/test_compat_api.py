"""EXtra-data's public API on exfel_data objects (issue 11): what its users' code relies on.

Expected values come from the generator (reader_runs.make_small_run), plain h5py, or the
real extra-data opening the same files.
"""

import pickle

import numpy as np
import pytest
from reader_runs import XGM

from exfel_data.train_id_list import TrainIdList

TIDS = list(range(10000, 10030))


# -- train_ids is a list, as in EXtra-data ------------------------------------------------
def test_train_ids_are_lists_at_every_level(small_run):
    for obj in (small_run, small_run[XGM], small_run[XGM, "beamPosition.ixPos"]):
        assert isinstance(obj.train_ids, list)
        assert obj.train_ids == TIDS
        assert all(type(t) is int for t in obj.train_ids)
    sel = small_run.select_trains(np.s_[5:7])
    assert sel.train_ids + sel.train_ids == [10005, 10006, 10005, 10006]
    assert not small_run.select_trains(np.s_[40:]).train_ids  # empty list is falsy


def test_train_id_list_as_array_is_free_and_readonly(small_run):
    tids = small_run.train_ids
    arr = np.asarray(tids)
    assert arr.dtype == np.uint64 and arr.tolist() == TIDS
    assert np.asarray(tids) is arr  # the same array every time: no conversion
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 1
    assert np.asarray(tids, dtype=np.int64).dtype == np.int64


def test_train_id_list_mutation_rebuilds_array():
    tids = TrainIdList(np.arange(3, dtype=np.uint64))
    tids.append(7)
    tids[0] = 5
    np.testing.assert_array_equal(np.asarray(tids), [5, 1, 2, 7])
    assert pickle.loads(pickle.dumps(tids)) == [5, 1, 2, 7]
