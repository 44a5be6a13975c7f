"""Exception classes raised by exfel_data.

Every message names the offending value and says what exists or what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ExfelDataError",
    "SourceNameError",
    "PropertyNameError",
    "TrainIDError",
    "NoDataError",
    "FileStructureError",
    "DuplicateTrainError",
    "MultiRunError",
    "FileChangedError",
    "IndexGroupError",
    "AliasError",
    "KeyGlobError",
]


def _suggestion(name: str, candidates: Iterable[str]) -> str:
    """Return " Did you mean 'Y'?" for the closest candidate, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class ExfelDataError(Exception):
    """Base class of the errors raised by exfel_data."""


class SourceNameError(ExfelDataError, KeyError):
    """A source name that is not in the (selected) data.

    Parameters
    ----------
    source : str
        The name asked for.
    available : iterable of str
        The sources there are (the message suggests close matches).
    hint : str, optional
        Replaces the advice to look at ``run.all_sources``.
    """

    def __init__(self, source: str, available: Iterable[str] = (), hint: str = ""):
        self.source = source
        self.available = sorted(available)
        self.hint = hint
        super().__init__(source)

    def __str__(self) -> str:
        advice = self.hint or (" See run.all_sources for the sources in this data"
                               f" ({len(self.available)} selected).")
        return f"No source {self.source!r}.{_suggestion(self.source, self.available)}{advice}"


class PropertyNameError(ExfelDataError, KeyError):
    """A key that a source does not have.

    Parameters
    ----------
    source : str
        The source.
    key : str
        The key asked for.
    available : iterable of str
        The source's keys (the message suggests close matches).
    hint : str
        Extra advice appended to the message.
    """

    def __init__(self, source: str, key: str, available: Iterable[str] = (), hint: str = ""):
        self.source = source
        self.key = key
        self.available = sorted(available)
        self.hint = hint
        super().__init__(key)

    def __str__(self) -> str:
        return (
            f"No key {self.key!r} for source {self.source!r}."
            f"{_suggestion(self.key, self.available)}"
            f"{' ' + self.hint if self.hint else ''}"
            f" See run.keys_for_source({self.source!r}) ({len(self.available)} keys)."
        )


class KeyGlobError(PropertyNameError, ValueError):
    """A key glob given to ``select`` / ``deselect`` that matches no key of its sources.

    Both a ``KeyError`` (as other missing keys) and a ``ValueError`` (what EXtra-data
    raises for a glob matching nothing).
    """


class TrainIDError(ExfelDataError, KeyError):
    """A train ID (or train index) that is not in the selected data.

    Parameters
    ----------
    train_id : int
        The train ID (or index) asked for.
    first, last : int, optional
        The first and last train IDs selected, for the message.
    n_trains : int, optional
        The number of trains selected, for the message.
    """

    def __init__(self, train_id: int, first: int | None = None, last: int | None = None,
                 n_trains: int | None = None):
        self.train_id = train_id
        self.first, self.last, self.n_trains = first, last, n_trains
        super().__init__(train_id)

    def __str__(self) -> str:
        if self.n_trains is None:
            return f"Train ID {self.train_id} not found in this data."
        if self.n_trains == 0:
            return f"Train ID {self.train_id} not found: no trains are selected."
        return (
            f"Train ID {self.train_id} not found in this data"
            f" ({self.n_trains} trains from {self.first} to {self.last};"
            " see run.train_ids)."
        )


class NoDataError(ExfelDataError, ValueError):
    """A source/key that has no data in the selected trains.

    Parameters
    ----------
    source : str
        The source.
    key : str, optional
        The key (None: the source as a whole).
    detail : str
        More about the selection, appended to the message.
    """

    def __init__(self, source: str, key: str | None = None, detail: str = ""):
        self.source, self.key, self.detail = source, key, detail
        super().__init__(source, key)

    def __str__(self) -> str:
        what = f"{self.source!r}" + (f", key {self.key!r}" if self.key else "")
        extra = f" {self.detail}" if self.detail else ""
        return f"No data for source {what} in the selected trains.{extra}"


class FileStructureError(ExfelDataError, ValueError):
    """A file lacks a group or dataset the EXDF format requires, or holds one that is bad.

    Bad: it cannot be read (damaged) or is inconsistent with the other files.

    Parameters
    ----------
    filename : str
        The file.
    path : str
        The group or dataset inside it.
    detail : str
        What is wrong with it.
    hint : str
        What to do, appended to the message.
    """

    def __init__(self, filename: str, path: str, detail: str = "", hint: str = ""):
        self.filename, self.path, self.detail, self.hint = filename, path, detail, hint
        super().__init__(filename, path)

    def __str__(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"{self.filename}: missing or invalid {self.path!r}{extra}.{hint}"


def exclude_file_hint(filename: str) -> str:
    """What to do about one bad file: how to open the run without it."""
    name = filename.rsplit("/", 1)[-1]
    return ("To read the other files, leave this one out: RunDirectory(run_dir, "
            f"file_filter=lambda paths: [p for p in paths if not p.endswith({name!r})]), "
            f"and check it with `exfel-data validate`.")


class DuplicateTrainError(ExfelDataError, ValueError):
    """The same train ID appears twice for one source (in two files or rows).

    Parameters
    ----------
    source : str
        The source.
    train_id : int
        The repeated train ID.
    files : iterable of str
        The files holding it.
    hint : str
        What to do, appended to the message.
    """

    def __init__(self, source: str, train_id: int, files: Iterable[str], hint: str = ""):
        self.source, self.train_id = source, int(train_id)
        self.files = list(files)
        self.hint = hint
        super().__init__(source, train_id)

    def __str__(self) -> str:
        files = " and ".join(self.files)
        where = "twice in " + files if len(set(self.files)) == 1 else "in both " + files
        return (
            f"Train {self.train_id} of source {self.source!r} appears {where}."
            + (f" {self.hint}" if self.hint else "")
        )


class MultiRunError(ExfelDataError, ValueError):
    """An operation that needs data from one run was given several runs.

    Parameters
    ----------
    what : str
        The operation, for the message.
    runs : iterable
        The run numbers found.
    """

    def __init__(self, what: str = "this operation", runs: Iterable = ()):
        self.what, self.runs = what, list(runs)
        super().__init__(what)

    def __str__(self) -> str:
        runs = f" (runs {', '.join(map(str, self.runs))})" if self.runs else ""
        return (
            f"{self.what} needs data from a single run, but this data combines several"
            f"{runs}. Select one run's files first."
        )


class FileChangedError(ExfelDataError, RuntimeError):
    """A file changed on disk after it was indexed (files are opened lazily).

    Parameters
    ----------
    filename : str
        The file.
    changed : iterable of str
        What differs (e.g. size, mtime, ``INDEX/trainId``), for the message.
    """

    def __init__(self, filename: str, changed: Iterable[str]):
        self.filename, self.changed = filename, list(changed)
        super().__init__(filename)

    def __str__(self) -> str:
        return (
            f"{self.filename} changed on disk since the run was opened (different "
            f"{', '.join(self.changed)}); its train IDs and index may no longer fit its "
            "data. Open the run again."
        )


class IndexGroupError(ExfelDataError, ValueError):
    """An index group a source does not have, or whose keys are not selected.

    The index group is the first part of an instrument key, e.g. 'image'.

    Parameters
    ----------
    source : str
        The source.
    index_group : str
        The index group asked for.
    available : iterable of str
        The source's (selected) index groups.
    """

    def __init__(self, source: str, index_group: str, available: Iterable[str] = ()):
        self.source, self.index_group = source, index_group
        self.available = sorted(available)
        super().__init__(source, index_group)

    def __str__(self) -> str:
        return (f"{self.source!r} has no selected keys in index group {self.index_group!r};"
                f" its selected index groups: {self.available}.")


class AliasError(ExfelDataError, KeyError):
    """An alias that is not defined for this data (see ``DataCollection.with_aliases``).

    Parameters
    ----------
    alias : str
        The alias asked for.
    available : iterable of str
        The aliases there are (the message suggests close matches).
    """

    def __init__(self, alias: str, available: Iterable[str] = ()):
        self.alias = alias
        self.available = sorted(available)
        super().__init__(alias)

    def __str__(self) -> str:
        return (f"{self.alias!r} is not an alias for this data."
                f"{_suggestion(self.alias, self.available)} Defined aliases:"
                f" {', '.join(self.available) or 'none'} (add some with run.with_aliases()).")
