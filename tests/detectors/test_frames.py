"""Unit tests of the frame planning (no files)."""

import numpy as np
import pytest

from exfel_data import by_id, by_index
from exfel_data.detectors.frames import (
    LabelPatterns,
    expand_blocks,
    merge_runs,
    normalise_pulses,
    plan_slots,
)


def _patterns(per_module):
    """per_module: list (modules) of lists (trains) of label lists (or None)."""
    pat = LabelPatterns(len(per_module), len(per_module[0]))
    for i, trains in enumerate(per_module):
        counts = [0 if t is None else len(t) for t in trains]
        labels = np.concatenate([np.asarray(t or [], np.int64) for t in trains])
        pat.add_module(i, counts, labels)
    return pat


def test_normalise_pulses():
    assert normalise_pulses(None).is_all
    assert normalise_pulses(np.s_[:]).is_all
    assert normalise_pulses(by_index[:]).is_all
    sel = normalise_pulses([3, 1, 3])
    assert sel.kind == 'index' and sel.value.tolist() == [1, 3]
    assert normalise_pulses(by_id[100:200]).kind == 'id'
    with pytest.raises(ValueError, match='positive step'):
        normalise_pulses(np.s_[::-1])
    with pytest.raises(ValueError, match='negative'):
        normalise_pulses([-1])
    with pytest.raises(TypeError, match="Select pulses with a slice.* not 'all'"):
        normalise_pulses('all')


def test_patterns_are_shared():
    same = [10, 20, 30]
    pat = _patterns([[same, same, same], [same, None, same]])
    assert len(pat.patterns) == 1
    assert pat.ids.tolist() == [[0, 0, 0], [0, -1, 0]]


def test_slots_union_of_labels_and_fill():
    # module 1 recorded only 2 of 3 pulses in train 1
    pat = _patterns([[[10, 20, 30], [10, 20, 30]], [[10, 20, 30], [10, 30]]])
    plan = plan_slots(pat, normalise_pulses(None), reference=np.array([0, 0]))
    assert plan.labels.tolist() == [10, 20, 30] and not plan.positional
    assert plan.covered().tolist() == [[3, 3], [3, 2]]
    vstart = np.array([0, 3])
    runs = expand_blocks(plan, 1, vstart, slice(0, 2), slice(0, 3))
    # frames 0-2 -> slots 0-2 of train 0; frame 3 (10) -> slot 3, frame 4 (30) -> slot 5
    assert runs.tolist() == [[0, 0, 4], [4, 5, 1]]


def test_by_index_uses_reference_sequence():
    pat = _patterns([[[10, 20, 30, 40]], [[20, 40]], [[10, 20, 30, 40]]])
    ref = np.array([0])
    plan = plan_slots(pat, normalise_pulses(by_index[1:3]), ref)
    assert plan.labels.tolist() == [20, 30]
    # module 1 has pulse 20 only among the selected ones
    assert plan.covered().tolist() == [[2], [1], [2]]


def test_by_id_selection():
    pat = _patterns([[[10, 20, 30, 40], [12, 22]]])
    plan = plan_slots(pat, normalise_pulses(by_id[20:35]), np.array([0, 1]))
    assert plan.labels.tolist() == [20, 22, 30]
    plan = plan_slots(pat, normalise_pulses(by_id[[99]]), np.array([0, 1]))
    assert plan.n_slots == 0 and (plan.pair_ids == -1).all()


def test_repeated_labels_fall_back_to_positions():
    pat = _patterns([[[0, 0, 0]], [[0, 0, 0]]])
    plan = plan_slots(pat, normalise_pulses(None), np.array([0]))
    assert plan.positional and plan.labels.tolist() == [0, 1, 2]


def test_exclude_matrix():
    pat = _patterns([[[1, 2]], [[1]]])
    plan = plan_slots(pat, normalise_pulses(None), np.array([0]),
                      exclude=np.array([[False], [True]]))
    assert plan.covered().tolist() == [[2], [0]]


def test_expand_blocks_pulse_box():
    pat = _patterns([[[1, 2, 3, 4], [1, 2, 3, 4]]])
    plan = plan_slots(pat, normalise_pulses(None), np.array([0, 0]))
    runs = expand_blocks(plan, 0, np.array([0, 4]), slice(0, 2), slice(1, 3))
    assert runs.tolist() == [[1, 0, 2], [5, 2, 2]]
    assert merge_runs(np.array([[0, 0, 2], [2, 2, 3], [9, 5, 1]])).tolist() == [
        [0, 0, 5], [9, 5, 1]]
