"""Serving the test run live for the analysis tests (imported as ``live_helpers``)."""

import socket
import threading
from contextlib import contextmanager

from bridge.serve_run import serve_run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_run(run_dir, **kwargs):
    """Serve ``run_dir`` on a free loopback port in a thread; yields the endpoint."""
    ready, stop, servers = threading.Event(), threading.Event(), []

    def on_ready(server):
        servers.append(server)
        ready.set()

    kwargs.setdefault("dummy_timestamps", True)
    thread = threading.Thread(target=serve_run, args=(run_dir, "tcp://127.0.0.1:0"),
                              kwargs=dict(stop=stop, on_ready=on_ready, drain_timeout=30,
                                          **kwargs), daemon=True)
    thread.start()
    assert ready.wait(30), "serve_run did not start"
    try:
        yield f"tcp://127.0.0.1:{servers[0].port}"
    finally:
        stop.set()
        thread.join(30)
