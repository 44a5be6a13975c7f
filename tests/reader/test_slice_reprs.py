"""by_id / by_index reprs read as the expression that made them, as EXtra-data's do."""

from __future__ import annotations

import extra_data
import numpy as np
import pytest

import exfel_data

EXPRS = ['by_id[:]', 'by_id[:2]', 'by_id[0:10:2]', 'by_id[4::2, 7]', 'by_index[:5, 3:12]',
         'by_index[-4:, ...]', 'by_index[...]', 'by_index[..., ::-1]', 'by_id[[1, 7, 22]]',
         'by_index[3]', 'by_id[::3]']


@pytest.mark.parametrize('expr', EXPRS)
def test_repr_matches_extra_data(expr):
    ours = eval(expr, {'by_id': exfel_data.by_id, 'by_index': exfel_data.by_index})
    theirs = eval(expr, {'by_id': extra_data.by_id, 'by_index': extra_data.by_index})
    assert repr(ours) == repr(theirs)


def test_repr_of_array_selection():
    assert repr(exfel_data.by_id[np.array([10001, 10003])]) == 'by_id[[10001, 10003]]'
