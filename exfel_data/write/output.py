"""Writing an output under a temporary name and renaming it when complete.

An interrupted (Ctrl-C) or failed conversion must not leave anything that looks
like a finished output: the data goes to a hidden ``.NAME.partial-HOST-PID-XXXXXXXX``
sibling which is renamed to ``NAME`` only after the writer has closed it. A process
killed outright (SIGKILL, out of memory, a node crash) cannot clean up: the next
conversion to ``NAME`` removes what it left (:func:`remove_stale`).
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..signals import check_interrupt
from ..tempnames import left_by_dead_process, owner_tag, parse_owner_tag
from .h5output import disk_full_message, is_disk_full
from .plan import DiskFullError


class OutputExistsError(FileExistsError):
    """The output path exists and overwriting was not requested."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


#: The hidden temporary siblings of an output: ``.NAME.partial-TAG`` (being written) and
#: ``.NAME.parts-TAG`` (part outputs of --workers / --scheduler).
TEMPORARY_KINDS = ("partial", "parts")


def partial_name(path: Path) -> Path:
    """A hidden sibling name for the output being written."""
    return path.with_name(f".{path.name}.partial-{owner_tag()}")


def parts_folder(path: Path) -> Path:
    """Create a hidden sibling folder for the part outputs of a parallel conversion (next
    to the output, so that renaming from it stays on one file system)."""
    folder = path.with_name(f".{path.name}.parts-{owner_tag()}")
    folder.mkdir()
    return folder


class StaleOutputRemoved(UserWarning):
    """A partial output left by a killed conversion was removed."""


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``path`` left by conversions that were killed.

    Only those made on this host by a process that no longer exists are removed (a
    conversion to the same output on another machine sharing the folder is left alone);
    each one removed is reported with a :class:`StaleOutputRemoved` warning.
    """
    path = Path(path)
    removed = []
    for kind in TEMPORARY_KINDS:
        prefix = f".{path.name}.{kind}"
        for tmp in sorted(path.parent.glob(glob.escape(prefix) + "-*")):
            tag = tmp.name[len(prefix) + 1:]
            if not left_by_dead_process(tag):
                continue
            _remove(tmp)
            removed.append(tmp)
            _, pid = parse_owner_tag(tag)
            warnings.warn(f"Removed {tmp.name} from {tmp.parent}: the unfinished output of an "
                          f"earlier conversion to {path.name} whose process "
                          f"({pid}) was killed", StaleOutputRemoved, stacklevel=2)
    return removed


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early (before any work) if ``path`` exists and ``overwrite`` is false."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputExistsError(
            f"Output {path} already exists; pass --overwrite (overwrite=True) to replace it, "
            "or choose another name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Folder {path.parent} for output {path.name} does not exist")
    return path


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False,
                  directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it to ``path`` on success.

    Parameters
    ----------
    path : str or path-like
        The final output file or folder.
    overwrite : bool
        Replace an existing output (only once the new one is complete).
    directory : bool
        Create the temporary path as an empty folder (for folder outputs).

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = check_output(path, overwrite)
    tmp = partial_name(path)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        check_interrupt()  # Ctrl-C during the last block: no output either
    except BaseException as exc:
        # Also on KeyboardInterrupt: drop the half-written output, then re-raise.
        _remove(tmp)
        if is_disk_full(exc):
            raise DiskFullError(disk_full_message(exc.errno, path), exc.errno) from exc
        raise
    if path.exists() or path.is_symlink():
        if not overwrite:  # appeared while we were writing
            _remove(tmp)
            raise OutputExistsError(f"Output {path} was created by someone else meanwhile; "
                                    "nothing written")
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)
