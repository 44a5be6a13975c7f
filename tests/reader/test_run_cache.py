"""The run's index cache: where it goes, the switch, and exits on read-only / slow folders."""

import io
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import exfel_data as ed
import exfel_data.testing as T
from exfel_data import run_map
from exfel_data.exceptions import ExfelDataError

MOTOR = "SA1_XTD2_MOTOR/MDL/M1"


@pytest.fixture
def run_path(tmp_path, monkeypatch):
    monkeypatch.delenv(run_map.MODE_ENV, raising=False)
    monkeypatch.setattr(run_map, "_pending", set())  # none of earlier tests
    monkeypatch.setattr(run_map, "_writer", None)
    monkeypatch.setenv("EXFEL_DATA_CACHE_DIR", str(tmp_path / "usercache"))
    return T.make_run(tmp_path / "r0001", n_trains=6, devices=[T.Motor(MOTOR)])


def info_text(run) -> str:
    out = io.StringIO()
    run.info(file=out)
    return out.getvalue()


def cache_line(run) -> str:
    (line,) = [x for x in info_text(run).splitlines() if x.startswith("Index cache:")]
    return line


def test_info_says_where_the_cache_is(run_path):
    run = ed.RunDirectory(run_path)
    cache = run_path / run_map.CACHE_NAME
    assert cache.exists()
    assert cache_line(run) == (f"Index cache:    {cache} (updated at exit; off: "
                               "EXFEL_DATA_RUN_CACHE=0)")
    assert "Index cache" not in info_text(ed.H5File(run.files[0].filename))


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_environment_switch_off(run_path, monkeypatch, value):
    monkeypatch.setenv("EXFEL_DATA_RUN_CACHE", value)
    run = ed.RunDirectory(run_path)
    assert not (run_path / run_map.CACHE_NAME).exists()
    assert not (run_path.parent / "usercache").exists()
    assert cache_line(run) == f"Index cache:    off (EXFEL_DATA_RUN_CACHE={value})"
    run[MOTOR, "actualPosition"].ndarray()
    assert not run_map._pending  # nothing to write at exit either


def test_cache_false_and_read_only_mode(run_path, monkeypatch):
    run = ed.RunDirectory(run_path, cache=False)
    assert cache_line(run) == "Index cache:    off (RunDirectory(cache=False))"
    assert not (run_path / run_map.CACHE_NAME).exists()

    run = ed.RunDirectory(run_path, cache="read")
    assert not (run_path / run_map.CACHE_NAME).exists()
    assert cache_line(run) == ("Index cache:    none found, none written "
                               "(RunDirectory(cache='read'))")

    ed.RunDirectory(run_path)  # writes it
    cache = run_path / run_map.CACHE_NAME
    stamp = cache.stat().st_mtime_ns
    monkeypatch.setenv("EXFEL_DATA_RUN_CACHE", "read")
    from exfel_data import file_set

    monkeypatch.setattr(file_set, "scan_file", lambda *a: pytest.fail("scanned: cache unused"))
    run = ed.RunDirectory(run_path)  # the cache is read...
    run[MOTOR, "actualPosition"].ndarray()
    assert not run_map._pending  # ... but never written
    assert cache.stat().st_mtime_ns == stamp
    assert cache_line(run) == (f"Index cache:    {cache}, never written "
                               "(EXFEL_DATA_RUN_CACHE=read)")


def test_bad_switch_values(run_path, monkeypatch):
    with pytest.raises(ExfelDataError, match=r"cache='yes': use True, False or 'read'"):
        ed.RunDirectory(run_path, cache="yes")
    monkeypatch.setenv("EXFEL_DATA_RUN_CACHE", "maybe")
    with pytest.raises(ExfelDataError, match=r"EXFEL_DATA_RUN_CACHE='maybe' is not "
                                             r"understood: use 0 \(off\), read"):
        ed.RunDirectory(run_path)


def test_proposal_scratch_cache(tmp_path, monkeypatch):
    """A facility run whose folder is read-only caches in its proposal's scratch, where
    EXtra-data keeps its .karabo_data_maps, and reads it back from there."""
    monkeypatch.setenv("EXFEL_DATA_CACHE_DIR", str(tmp_path / "usercache"))
    path = T.make_run(T.proposal_run_dir(tmp_path, run=7), n_trains=4)
    scratch = path.parent.parent / "scratch"
    scratch.mkdir()
    real_write = run_map._write_atomically

    def write_cache(target, *args):
        if os.path.dirname(target) == str(path):
            raise PermissionError(13, "Permission denied", target)
        return real_write(target, *args)

    monkeypatch.setattr(run_map, "_write_atomically", write_cache)
    run = ed.RunDirectory(path)
    cache = scratch / ".exfel_data_maps" / "raw_r0007.npz"
    assert cache.exists() and not (tmp_path / "usercache").exists()
    assert cache_line(run).startswith(f"Index cache:    {cache} (")
    from exfel_data import file_set

    monkeypatch.setattr(file_set, "scan_file", lambda *a: pytest.fail("scanned: cache unused"))
    assert ed.RunDirectory(path).train_ids == run.train_ids


def test_temporary_file_of_a_dead_writer_removed(run_path):
    from exfel_data.tempnames import owner_tag

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = owner_tag().split("-")[0]
    left = run_path / f"{run_map.CACHE_NAME}.{host}-{dead}-0123abcd.tmp"
    alive = run_path / f"{run_map.CACHE_NAME}.{host}-{os.getpid()}-0123abcd.tmp"
    other_host = run_path / f"{run_map.CACHE_NAME}.elsewhere-{dead}-0123abcd.tmp"
    for p in (left, alive, other_host):
        p.write_bytes(b"half a cache")
    ed.RunDirectory(run_path)
    assert (run_path / run_map.CACHE_NAME).exists()
    assert not left.exists()
    assert alive.exists() and other_host.exists()  # may still be being written


def test_exit_write_needs_no_new_thread(run_path, monkeypatch):
    # Python 3.12 refuses to start a thread in an atexit handler ("can't create new thread
    # at interpreter shutdown"): the writer is started when the cache first has something
    # to add, and the exit only wakes it.
    run = ed.RunDirectory(run_path)
    run[MOTOR, "actualPosition"].ndarray()
    assert run_map._pending

    def refuse(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert run_map._save_pending() is True
    assert not run_map._pending
    run[MOTOR, "encoderPosition"].ndarray()  # same index: nothing new, no thread needed
    assert run_map._save_pending() is True


def test_no_thread_at_all_means_no_write_and_no_error(run_path, monkeypatch):
    run = ed.RunDirectory(run_path)
    stamp = (run_path / run_map.CACHE_NAME).stat().st_mtime_ns

    def refuse(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    np_values = run[MOTOR, "actualPosition"].ndarray()  # reading is not disturbed
    assert len(np_values) == 6
    assert run_map._save_pending() is False  # not written: a cache is never worth an error
    assert (run_path / run_map.CACHE_NAME).stat().st_mtime_ns == stamp


# -- exits: a subprocess that opens a run, reads an index (a cache update pending) and ends

EXIT_SCRIPT = """
import sys, time
import exfel_data as ed
from exfel_data import run_map
run = ed.RunDirectory(sys.argv[1])
run["{motor}", "actualPosition"].ndarray()
run.info()
{extra}
print("END", time.monotonic(), flush=True)
"""


def run_exit_script(path, extra="", wrap=()):
    script = EXIT_SCRIPT.format(motor=MOTOR, extra=textwrap.dedent(extra))
    proc = subprocess.run([*wrap, sys.executable, "-c", script, str(path)],
                          capture_output=True, text=True, timeout=120, env=os.environ)
    ended = time.monotonic()
    return proc, ended


def read_only_wrap(folder):
    """Run a command with *folder* read-only: a read-only bind mount in a private mount
    namespace for root (permissions do not stop root), plain permissions otherwise."""
    if os.geteuid() != 0:
        for dirpath, _, _ in os.walk(folder):
            os.chmod(dirpath, 0o555)
        return ()
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" ' \
             '|| exit 99; exec "$@"'
    return ("unshare", "--mount", "sh", "-c", script, "sh")


def test_read_only_folders_exit_cleanly(run_path, tmp_path):
    # Before: nothing said where the cache went; a read-only folder was tried at each save.
    ed.RunDirectory(run_path, cache=False)  # nothing cached yet
    (tmp_path / "usercache").mkdir()
    proc, _ = run_exit_script(run_path, wrap=read_only_wrap(tmp_path))
    if os.geteuid() != 0:
        for dirpath, _, _ in os.walk(tmp_path):
            os.chmod(dirpath, 0o755)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert "Index cache:    not written: no writable place (" in proc.stdout
    assert str(run_path / run_map.CACHE_NAME) in proc.stdout
    assert not (run_path / run_map.CACHE_NAME).exists()
    assert os.listdir(tmp_path / "usercache") == []


def test_slow_folder_does_not_delay_exit(run_path):
    # The writes at exit hang (a stuck network file system): Python still ends within
    # EXIT_BUDGET_S, without a traceback. Before: the exit waited for the write.
    slow = """
    def hang(*args):
        time.sleep(60)
    run_map._write_atomically = hang
    """
    proc, ended = run_exit_script(run_path, extra=slow)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    end_of_script = float(proc.stdout.split("END ")[1])
    assert ended - end_of_script < run_map.EXIT_BUDGET_S + 3.0


def test_indexes_written_at_exit(run_path):
    proc, _ = run_exit_script(run_path)
    assert proc.returncode == 0 and proc.stderr == ""
    from exfel_data import file_access

    run = ed.RunDirectory(run_path)
    (fa,) = run[MOTOR].files
    assert (MOTOR, "") in fa.info()["index"]  # from the cache, written at exit
    file_access.handle_pool.forget_all()


def test_open_run_cache_switch(tmp_path, monkeypatch):
    """open_run(cache=...) reaches RunDirectory: off writes nothing, 'read' uses the cache
    without scanning."""
    monkeypatch.delenv(run_map.MODE_ENV, raising=False)
    monkeypatch.setattr(run_map, "_pending", set())
    monkeypatch.setenv("EXFEL_DATA_CACHE_DIR", str(tmp_path / "usercache"))
    path = T.make_run(T.proposal_run_dir(tmp_path, run=3), n_trains=4,
                      devices=[T.Motor(MOTOR)])
    run = ed.open_run(700000, 3, root=str(tmp_path), cache=False)
    assert cache_line(run) == "Index cache:    off (RunDirectory(cache=False))"
    assert not (path / run_map.CACHE_NAME).exists()
    ed.open_run(700000, 3, root=str(tmp_path))  # writes the cache
    assert (path / run_map.CACHE_NAME).exists()
    from exfel_data import file_set

    monkeypatch.setattr(file_set, "scan_file", lambda *a: pytest.fail("scanned: cache unused"))
    assert ed.open_run(700000, 3, root=str(tmp_path), cache="read").train_ids == run.train_ids
