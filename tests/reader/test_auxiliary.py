"""run.auxiliary (REDUCTION / ERRATA sections), checked against the real extra-data on a run
written by its own mock-data generator, and against plain h5py."""

import h5py
import numpy as np
import pytest

import exfel_data as ed

ERRATA = "DA01@TRAINS_OUTSIDE_BUFFER_RANGE"


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory):
    from extra_data.tests.make_examples import make_reduced_spb_run

    d = tmp_path_factory.mktemp("reduced")
    make_reduced_spb_run(str(d), raw=True, rng=np.random.RandomState(123),
                         format_version="1.2")
    return str(d)


def test_auxiliary_sources_match_extra_data(reduced_run):
    import extra_data

    ours, theirs = ed.RunDirectory(reduced_run).auxiliary, \
        extra_data.RunDirectory(reduced_run).auxiliary
    assert ours.all_sources == theirs.all_sources and len(ours.all_sources) == 33
    assert ours.reduction_sources == theirs.reduction_sources
    assert ours.errata_sources == theirs.errata_sources == {ERRATA}
    assert "PULSE_REDUCTION/SPB_DET_AGIPD1M-1/DET/3CH0:xtdf" in ours
    sd = ours[ERRATA]
    assert (sd.section, sd.source, len(sd.files)) == ("ERRATA", "TRAINS_OUTSIDE_BUFFER_RANGE", 2)
    assert sd.is_errata and sd.is_auxiliary and not sd.is_reduction
    assert not sd.is_control and not sd.is_instrument and not sd.is_run_only
    assert sd.index_groups == {"event"} and sd.keys() == theirs[ERRATA].keys()
    assert sd["event.deviceIds"].entry_shape == (11,)
    for name in ("AGIPD11@SPB_IRU_AGIPD1M1/REDU/LITFRM:daqFilter",
                 "PULSE_REDUCTION/SPB_DET_AGIPD1M-1/DET/3CH0:xtdf", ERRATA):
        for key in sorted(ours[name].keys()):
            a, b = ours[name, key], theirs[name, key]
            np.testing.assert_array_equal(a.ndarray(), b.ndarray(), err_msg=f"{name} {key}")
            np.testing.assert_array_equal(a.data_counts(labelled=False),
                                          b.data_counts(labelled=False))


def test_auxiliary_values_are_the_files(reduced_run):
    run = ed.RunDirectory(reduced_run)
    kd = run.auxiliary[ERRATA, "event.originalTrainIds"]
    expected, counts = [], []
    for seq in range(2):
        with h5py.File(f"{reduced_run}/RAW-R0238-DA01-S{seq:05}.h5", "r") as f:
            n = f["INDEX/TRAINS_OUTSIDE_BUFFER_RANGE/event/count"][:]
            expected.append(f["ERRATA/TRAINS_OUTSIDE_BUFFER_RANGE/event/originalTrainIds"]
                            [:n.sum()])
            counts.append(n)
    np.testing.assert_array_equal(kd.ndarray(), np.concatenate(expected))
    np.testing.assert_array_equal(kd.data_counts(labelled=False), np.concatenate(counts))
    sel = run.select_trains(np.s_[:5]).auxiliary[ERRATA, "event.originalTrainIds"]
    assert sel.shape[0] == counts[0][:5].sum()


def test_auxiliary_errors_and_info(reduced_run, capsys):
    run = ed.RunDirectory(reduced_run)
    with pytest.raises(ed.SourceNameError, match="recorded per aggregator: use e.g. "
                                                 r"\['AGIPD00@SPB_IRU_AGIPD1M1"):
        run.auxiliary["SPB_IRU_AGIPD1M1/REDU/LITFRM:daqFilter"]
    with pytest.raises(ed.SourceNameError, match="'ABC'.*run.auxiliary.all_sources"):
        run.auxiliary["ABC"]
    with pytest.raises(TypeError):
        run.auxiliary[3]
    run.info(with_auxiliary=True, with_aggregators=True)
    out = capsys.readouterr().out
    assert "32 reduction sources:" in out and f"1 errata sources:\n  - [DA01] {ERRATA}" in out
    assert str(run.auxiliary) == "<exfel_data.AuxiliaryIndexer for 33 sources and 64 trains>"
    assert ed.RunDirectory(reduced_run).select("*XGM*").auxiliary.all_sources == \
        run.auxiliary.all_sources - {n for n in run.auxiliary.all_sources if "AGIPD" in n}
