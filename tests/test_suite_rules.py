"""The suite fails loudly: unlisted skips fail the run, a hanging test times out."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def run_pytest(tmp_path: Path, test_source: str, *args: str) -> subprocess.CompletedProcess:
    """Run pytest on one test file next to a copy of our tests/conftest.py."""
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(test_source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args, str(tmp_path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_unlisted_skip_fails_the_run(tmp_path):
    res = run_pytest(tmp_path, "import pytest\n\ndef test_ok():\n    pass\n\n"
                               "def test_gone():\n    pytest.skip('peer not installed')\n")
    assert res.returncode == pytest.ExitCode.TESTS_FAILED, res.stdout
    assert "skips not allowed" in res.stdout
    assert "test_sample.py::test_gone: peer not installed" in res.stdout


def test_module_level_skip_fails_the_run(tmp_path):
    res = run_pytest(tmp_path, "import pytest\n\npytest.importorskip('no_such_module_xyz')\n\n"
                               "def test_ok():\n    pass\n")
    assert res.returncode == pytest.ExitCode.TESTS_FAILED, res.stdout
    assert "no_such_module_xyz" in res.stdout


def test_allowed_skip_passes(tmp_path):
    res = run_pytest(tmp_path, "import conftest, pytest\n"
                               "conftest.ALLOWED_SKIPS['^needs a GPU'] = 'none here'\n\n"
                               "def test_gpu():\n    pytest.skip('needs a GPU')\n")
    assert res.returncode == pytest.ExitCode.OK, res.stdout
    assert "1 skipped" in res.stdout


def test_hanging_test_times_out(tmp_path):
    res = run_pytest(tmp_path, "import time\n\ndef test_hang():\n    time.sleep(60)\n",
                     "--timeout=1")
    assert res.returncode == pytest.ExitCode.TESTS_FAILED, res.stdout
    assert "Timeout" in res.stdout


def test_default_timeout_is_configured(pytestconfig):
    assert float(pytestconfig.getini("timeout")) == 300
