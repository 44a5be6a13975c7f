"""Whose temporary file is this: ``HOST-PID-RANDOM`` tags in temporary names.

Outputs and caches are written under a temporary name and renamed when complete. A
process killed meanwhile (SIGKILL, out of memory, a cache write abandoned at exit) cannot
remove its temporary file; the tag lets a later process recognise it as left by a process
of this host that no longer exists, and remove it. Files of other hosts sharing the folder
are never touched (their processes cannot be checked from here).
"""

from __future__ import annotations

import os
import re
import socket
import uuid

__all__ = ["owner_tag", "parse_owner_tag", "left_by_dead_process"]

_TAG = re.compile(r"(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)-[0-9a-f]{8}")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "localhost"


def owner_tag() -> str:
    """A new ``HOST-PID-RANDOM`` tag for a temporary name of this process."""
    return f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def parse_owner_tag(text: str) -> tuple[str, int] | None:
    """``(host, pid)`` if *text* is exactly a tag made by :func:`owner_tag`, else None."""
    m = _TAG.fullmatch(text)
    return (m["host"], int(m["pid"])) if m else None


def left_by_dead_process(tag: str) -> bool:
    """Whether *tag* was made on this host by a process that no longer exists."""
    owner = parse_owner_tag(tag)
    if owner is None or owner[0] != _host():
        return False
    try:
        os.kill(owner[1], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process, running
        return False
    return False
