"""Every Python example of docs/detectors.md runs, as written, on the `exfel-data demo` run.

Examples whose first line is ``# Needs: ...`` run on a generated run of that kind bound to
``run`` (corrected AGIPD, JUNGFRAU); the one needing a SLURM batch system is not run.
"""

import re
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from exfel_data import RunDirectory
from exfel_data.cli import main
from exfel_data.testing import AGIPD1M, JUNGFRAU, make_run

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'detectors.md'
BLOCKS = re.findall(r'```python\n(.*?)```', DOC.read_text(), re.S)


def _needs(block: str) -> str | None:
    first = block.splitlines()[0]
    return first.removeprefix('# Needs:').strip() if first.startswith('# Needs:') else None


@pytest.fixture(scope='module')
def other_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('doc_runs')
    corr = make_run(root / 'corr', n_trains=3, progress=False, devices=[
        *AGIPD1M(raw=False, frames_per_train=2, module_shape=(16, 8), modules=[0, 1])])
    jf = make_run(root / 'jf', n_trains=3, progress=False, devices=[
        *JUNGFRAU(raw=False, cells=2, n_modules=2, module_shape=(16, 8))])
    return {'corrected AGIPD': corr, 'JUNGFRAU': jf}


def test_blocks_found():
    assert len(BLOCKS) >= 10
    assert sum(_needs(b) is not None for b in BLOCKS) == 3


def test_examples_run_on_the_demo_run(tmp_path, monkeypatch, other_runs):
    result = CliRunner().invoke(main, ['demo', '--out', str(tmp_path / 'demo-data')])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = 0
    for block in BLOCKS:
        needs = _needs(block)
        if needs is None:
            exec(compile(block, str(DOC), 'exec'), namespace)
            ran += 1
            continue
        kind = next((k for k in other_runs if k in needs), None)
        if kind is None:
            assert 'SLURM' in needs, needs   # the only example this test cannot run
            continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            run = RunDirectory(other_runs[kind])
        exec(compile(block, str(DOC), 'exec'), {**namespace, 'run': run})
        ran += 1
    assert ran == len(BLOCKS) - 1
    # the last frames = ... of the page: det.trains() on the raw demo data
    assert namespace['frames'].dims == ('module', 'train', 'pulse', 'data_gain', 'slow_scan',
                                        'fast_scan')
