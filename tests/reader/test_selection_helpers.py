"""The small train-ID lookups shared by collection, keydata, trains and detectors."""

import numpy as np
import pytest

from exfel_data.exceptions import TrainIDError
from exfel_data.selection import find_train_ids, train_position


def test_find_train_ids_positions_and_found():
    tids = np.array([10, 12, 13, 20], np.uint64)
    pos, found = find_train_ids(tids, np.array([9, 12, 20, 21, 13], np.uint64))
    assert found.tolist() == [False, True, True, False, True]
    assert pos[found].tolist() == [1, 3, 2]
    pos, found = find_train_ids(tids[:0], np.array([5], np.uint64))
    assert not found.any()


def test_train_position_and_error_message():
    tids = np.array([10, 12, 13], np.uint64)
    assert train_position(tids, 13) == 2
    with pytest.raises(TrainIDError, match=r"Train ID 11 not found .*3 trains from 10 to 13"):
        train_position(tids, 11)
    with pytest.raises(TrainIDError, match="no trains are selected"):
        train_position(tids[:0], 11)
