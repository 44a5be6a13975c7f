"""glibc tuning for receiving frames bigger than 32 MiB.

ZeroMQ allocates every received message with ``malloc`` in its I/O thread.
glibc serves allocations above 32 MiB (its largest mmap threshold) with fresh
``mmap`` pages, so each big frame costs page faults and zeroing of the whole
buffer: a 268 MB AGIPD train arrives ~3x slower than the network allows.

:func:`tune_malloc` stops glibc from using ``mmap`` or giving freed memory back
to the system (and makes new threads share the main heap), so the same memory
is reused train after train. It changes the whole process, for good: threads
started afterwards share one heap, which keeps its peak size. So a library
must not do it behind the user's back: ``Client`` tunes only when asked
(``tune_malloc=True``, or the environment variable ``EXFEL_BRIDGE_TUNE_MALLOC=1``);
the programs that own their process (``exfel-bridge monitor``, the recipes)
ask.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

__all__ = ['tune_malloc', 'tuning_wanted', 'ENV_VAR']

ENV_VAR = 'EXFEL_BRIDGE_TUNE_MALLOC'
_YES = ('1', 'true', 'yes', 'on')
_NO = ('', '0', 'false', 'no', 'off')

# mallopt parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_lock = threading.Lock()
_tuned: bool | None = None


def tune_malloc() -> bool:
    """Let glibc reuse memory for big received messages (process-wide, once).

    Call it before creating the ZeroMQ context that receives (``Client``
    does when given ``tune_malloc=True``): only threads started
    afterwards, such as that context's I/O thread, share the main heap; glibc
    serves big blocks in a thread's own heap with ``mmap`` whatever the
    settings, so tuning after the context started does not help.

    Returns
    -------
    bool
        True if glibc accepted the settings; False on other C libraries,
        where nothing is changed.
    """
    global _tuned
    with _lock:
        if _tuned is None:
            _tuned = _apply()
        return _tuned


def tuning_wanted(option: bool | None) -> bool:
    """Whether a client should tune: its ``tune_malloc`` option, else the environment.

    Parameters
    ----------
    option : bool or None
        True or False decide; None reads ``EXFEL_BRIDGE_TUNE_MALLOC``
        (``1``/``true``/``yes``/``on`` tune; unset, ``0``/``false``/``no``/``off`` do not).

    Raises
    ------
    ValueError
        The environment variable holds anything else.
    """
    if option is not None:
        return bool(option)
    value = os.environ.get(ENV_VAR, '').strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f'{ENV_VAR}={os.environ[ENV_VAR]!r}: use 1 (tune glibc for big frames) '
                     'or 0 (leave the allocator alone)')


def _apply() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, 'gnu_get_libc_version'):
        return False  # not glibc: other mallopts use other parameter numbers
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all([
        mallopt(_M_ARENA_MAX, 1),                # new threads use the main heap...
        mallopt(_M_MMAP_MAX, 0),                 # ...which serves big blocks too
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1),   # and keeps freed memory for reuse
    ])
