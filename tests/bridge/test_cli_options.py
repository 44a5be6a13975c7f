"""serve-sim and serve-run options reach the server: --policy and its default under --rate,
--rate, -z, --loop (the serving loop is replaced by a recorder; serving itself is tested in
test_simulation.py, test_serve_run.py and test_server.py)."""

import itertools

import pytest
from click.testing import CliRunner

import bridge.serve_run
import bridge.simulation
from bridge.cli import main


class Recorder:
    """Stands in for ``serve_trains``: keeps its arguments and the first trains."""

    def __init__(self, n_trains=20):
        self.n_trains, self.calls = n_trains, []

    def __call__(self, endpoint, trains, **kwargs):
        taken = list(itertools.islice(trains, self.n_trains))
        self.calls.append((endpoint, taken, kwargs))
        return len(taken)


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(bridge.simulation, "serve_trains", rec)
    monkeypatch.setattr(bridge.serve_run, "serve_trains", rec)
    return rec


def invoke(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


@pytest.mark.parametrize("args, policy", [
    ([], "wait"),                                   # unpaced: never lose a train
    (["--rate", "10"], "drop"),                     # paced like live data: newest dropped
    (["--rate", "10", "--policy", "wait"], "wait"),
    (["--policy", "queue"], "queue"),
    (["--rate", "5", "--policy", "queue"], "queue"),
])
def test_serve_sim_policy_and_its_default(recorder, args, policy):
    res = invoke("serve-sim", "0", "-d", "XGM", "--ntrains", "3", *args)
    assert res.exit_code == 0, res.output
    (endpoint, trains, kwargs), = recorder.calls
    assert endpoint == "tcp://127.0.0.1:0"
    assert kwargs["policy"] == policy
    assert kwargs["rate"] == (float(args[1]) if args[:1] == ["--rate"] else None)
    # --ntrains counts trains clients took: the simulator goes on past dropped ones.
    assert kwargs["until_sent"] == 3
    assert [tid for tid, _, _ in trains][:3] == [10000000000, 10000000001, 10000000002]


@pytest.mark.parametrize("sock", ["REP", "PUB", "PUSH"])
def test_serve_sim_socket(recorder, sock):
    res = invoke("serve-sim", "tcp://127.0.0.1:0", "-d", "XGM", "--ntrains", "1", "-z", sock)
    assert res.exit_code == 0, res.output
    assert recorder.calls[0][2]["sock"] == sock


def test_serve_sim_rejects_unknown_policy():
    res = invoke("serve-sim", "0", "--policy", "never")
    assert res.exit_code == 2 and "'never' is not one of 'wait', 'drop', 'queue'" in res.output


def test_serve_sim_jungfrau_modules(recorder):
    res = invoke("serve-sim", "0", "-d", "JUNGFRAU", "--modules", "3", "-n", "2",
                 "--ntrains", "1")
    assert res.exit_code == 0, res.output
    _, trains, _ = recorder.calls[0]
    _, data, _ = trains[0]
    modules = sorted(s for s in data if "JNGFR" in s)
    assert modules == [f"SPB_IRDA_JF4M/DET/JNGFR{m:02d}:daqOutput" for m in (1, 2, 3)]
    assert all(data[s]["data.adc"].shape[0] == 2 for s in modules)   # -n: memory cells
    res = invoke("serve-sim", "0", "-d", "AGIPD", "--modules", "3")
    assert res.exit_code == 1 and "modules= applies to JUNGFRAU only, not AGIPD" in res.output
    res = invoke("serve-sim", "0", "-d", "JUNGFRAU", "--modules", "33")
    assert res.exit_code == 2 and "--modules" in res.output


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from exfel_data.testing import XGM, make_run

    return make_run(tmp_path_factory.mktemp("runs") / "r0001", n_trains=4, devices=[XGM()],
                    progress=False)


@pytest.mark.parametrize("args, expected", [
    ([], dict(policy="wait", rate=None, sock="REP")),
    (["--rate", "12.5", "--policy", "drop", "-z", "PUB"],
     dict(policy="drop", rate=12.5, sock="PUB")),
    (["--policy", "queue", "-z", "PUSH"], dict(policy="queue", rate=None, sock="PUSH")),
])
def test_serve_run_options(recorder, run_dir, args, expected):
    res = invoke("serve-run", run_dir, "0", *args)
    assert res.exit_code == 0, res.output
    (endpoint, trains, kwargs), = recorder.calls
    assert endpoint == "tcp://127.0.0.1:0"
    assert {k: kwargs[k] for k in expected} == expected
    assert [tid for tid, *_ in trains] == [10000, 10001, 10002, 10003]  # once, in order


def test_serve_run_loop_starts_over(recorder, run_dir):
    res = invoke("serve-run", run_dir, "0", "--loop", "--trains", "1:3")
    assert res.exit_code == 0, res.output
    tids = [tid for tid, *_ in recorder.calls[0][1]]
    assert len(tids) == recorder.n_trains  # endless: the recorder stopped taking
    assert tids[:6] == [10001, 10002, 10001, 10002, 10001, 10002]


def test_match_options_reach_the_matcher(monkeypatch):
    import bridge.live_commands

    calls = []
    monkeypatch.setattr(bridge.live_commands, "run_match",
                        lambda streams, bind, **kw: calls.append((streams, bind, kw)))
    res = invoke("match", "4545", "SUB@tcp://127.0.0.1:4546", "--serve", "4600",
                 "-i", "PULL", "--require", "SPB_DET_*", "--require", "SA1_*",
                 "--optional", "CAM/*", "--timeout", "0.25", "--policy", "drop", "-z", "PUB")
    assert res.exit_code == 0, res.output
    (streams, bind, kw), = calls
    # -i applies to ENDPOINTs without a SOCK@ prefix only
    assert streams == [("tcp://127.0.0.1:4545", "PULL"), ("tcp://127.0.0.1:4546", "SUB")]
    assert bind == "tcp://127.0.0.1:4600"
    assert kw == dict(sock="PUB", policy="drop", require=["SPB_DET_*", "SA1_*"],
                      optional=["CAM/*"], timeout=0.25, loopback_only=True)
    calls.clear()
    assert invoke("match", "4545", "--serve", "4600").exit_code == 0
    (streams, _, kw), = calls
    assert streams == [("tcp://127.0.0.1:4545", "REQ")]
    assert kw["require"] is None and kw["optional"] == [] and kw["timeout"] == 1.0


@pytest.mark.parametrize("args, sock", [
    ([], "REQ"), (["-z", "PUB"], "SUB"), (["-z", "PUSH"], "PULL"), (["-z", "SUB"], "SUB"),
    (["-z", "REP"], "REQ"),
])
def test_record_socket_option(monkeypatch, tmp_path, args, sock):
    import bridge.live_commands

    calls = []
    monkeypatch.setattr(bridge.live_commands, "run_record",
                        lambda endpoint, out_dir, **kw: calls.append((endpoint, out_dir, kw)))
    res = invoke("record", "4545", tmp_path / "rec", *args, "--source", "SA1_*",
                 "--trains", "7", "--sequence-size", "3")
    assert res.exit_code == 0, res.output
    (endpoint, out_dir, kw), = calls
    assert endpoint == "tcp://127.0.0.1:4545" and out_dir == str(tmp_path / "rec")
    assert kw == dict(sock=sock, sources=("SA1_*",), trains=7, duration=None, sequence_size=3)
