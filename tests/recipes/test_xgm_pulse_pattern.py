"""recipes/xgm_pulse_pattern.py: EXtra's XGM and XrayPulses on runs opened with exfel_data."""

import importlib.util
import os

import extra_data
import numpy as np
import pytest
from extra.components import XGM as ExtraXGM
from extra.components import XrayPulses

from exfel_data import RunDirectory
from exfel_data.testing import XGM, Timeserver, make_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SA1 = list(range(300, 340, 4))            # 10 pulses to SASE1
SA3 = [1000, 1008, 1016]                  # and 3 kicked to SASE3


@pytest.fixture(scope='module')
def recipe():
    spec = importlib.util.spec_from_file_location(
        'xgm_pulse_pattern', os.path.join(ROOT, 'recipes', 'xgm_pulse_pattern.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp('xgm') / 'r0001', n_trains=6,
                    devices=[XGM(pulses=len(SA1), n_samples=100),
                             Timeserver(pulses={1: SA1, 3: SA3})])


def test_energy_by_pulse_id(recipe, run_dir):
    run = RunDirectory(run_dir)
    table = recipe.energy_by_pulse_id(run)
    tids = np.asarray(run.train_ids)
    assert table.attrs['sase'] == 1
    assert table.index.names == ['trainId', 'pulseIndex']
    # independent truth: the generator's pattern and energies
    np.testing.assert_array_equal(table['pulseId'].to_numpy(), np.tile(SA1, len(tids)))
    np.testing.assert_array_equal(table.index.get_level_values('trainId'),
                                  np.repeat(tids, len(SA1)))
    np.testing.assert_array_equal(table['energy'].to_numpy(),
                                  XGM.pulse_energies(tids, len(SA1)).ravel())


def test_same_as_on_extra_data(run_dir):
    """EXtra gives the same results on our run as on extra-data's."""
    ours, theirs = RunDirectory(run_dir), extra_data.RunDirectory(str(run_dir))
    for run_xgm, peer_xgm in [(ExtraXGM(ours), ExtraXGM(theirs)),
                              (ExtraXGM(ours, 'SA1_XTD2_XGM/XGM/DOOCS'),
                               ExtraXGM(theirs, 'SA1_XTD2_XGM/XGM/DOOCS'))]:
        assert run_xgm.pulse_energy().identical(peer_xgm.pulse_energy())
        assert run_xgm.npulses() == peer_xgm.npulses() == len(SA1)
        assert run_xgm.photon_energy() == peer_xgm.photon_energy()
        assert run_xgm.doocs_server() == peer_xgm.doocs_server() == 'SASE1 XTD2'
    for sase, ids in ((1, SA1), (3, SA3)):
        a, b = XrayPulses(ours, sase=sase), XrayPulses(theirs, sase=sase)
        assert a.pulse_ids().equals(b.pulse_ids())
        assert a.peek_pulse_ids().tolist() == ids
        assert a.pulse_counts().tolist() == [len(ids)] * 6
        np.testing.assert_array_equal(a.pulse_mask(labelled=False),
                                      b.pulse_mask(labelled=False))
        assert a.select_trains(np.s_[2:4]).pulse_ids().equals(
            b.select_trains(np.s_[2:4]).pulse_ids())
    assert XrayPulses(ours).is_constant_pattern()
    assert XrayPulses(ours).pulse_periods().tolist() == [4] * 6


def test_main_on_generated_run(recipe, capsys):
    assert recipe.main([]) == 0
    out = capsys.readouterr().out
    assert '10 trains, 64-64 X-ray pulses per train to SASE1' in out
    tids = np.arange(10000, 10010)
    mean = XGM.pulse_energies(tids, 64).mean(dtype=np.float64)
    assert f'mean over all pulses: {mean:.2f} uJ' in out


def test_no_xgm_is_explained(recipe, tmp_path):
    run = RunDirectory(make_run(tmp_path / 'r0002', n_trains=2, devices=[Timeserver()]))
    with pytest.raises(RuntimeError, match="Couldn't find an XGM"):
        recipe.energy_by_pulse_id(run)


def test_main_with_named_sources(recipe, run_dir, capsys):
    assert recipe.main([str(run_dir), '--xgm', 'SA1_XTD2_XGM/XGM/DOOCS', '--timeserver',
                        'SPB_RR_SYS/TSYS/TIMESERVER:outputBunchPattern', '--sase', '1']) == 0
    out = capsys.readouterr().out
    assert '6 trains, 10-10 X-ray pulses per train to SASE1' in out
    assert '300    ' in out   # the first pulse ID heads the per-pulse table
