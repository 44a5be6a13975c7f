"""Which files hold each source of a collection, merged across files and collections.

A collection keeps one :class:`SourceFiles` record per source: its section, its files in
train order and its selected keys. This module builds those records from scanned files
(:func:`group_sources`) and from several collections (:func:`union_sources`), refuses a
source that has the same train twice (:func:`check_duplicates`) and decides which runs
combined collections come from (:func:`union_runs`).
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Iterable

import numpy as np

from .exceptions import DuplicateTrainError
from .file_access import FileAccess

__all__ = ["SourceFiles", "group_sources", "union_sources", "in_train_order",
           "check_duplicates", "union_runs"]

#: One source of a collection: ``section`` ("CONTROL" / "INSTRUMENT"), ``files`` (a tuple
#: of FileAccess in train order) and ``keys`` (frozenset of selected keys, None: all).
SourceFiles = namedtuple("SourceFiles", "section files keys")


def group_sources(files: Iterable[FileAccess], inc_suspect: bool
                  ) -> tuple[dict[str, SourceFiles], dict[str, str]]:
    """Each source's files, all keys selected, and the legacy source names of the files.

    Parameters
    ----------
    files : iterable of FileAccess
        The scanned files.
    inc_suspect : bool
        Whether train IDs the files mark as suspect count for the train order.

    Returns
    -------
    sources : dict
        Source name -> :class:`SourceFiles`.
    legacy : dict
        Old source name -> current one.

    Raises
    ------
    DuplicateTrainError
        A source has the same train ID in two of the files.
    """
    src_files: dict[str, list[FileAccess]] = {}
    sections: dict[str, str] = {}
    legacy: dict[str, str] = {}
    for fa in files:
        for s in fa.control_sources:
            src_files.setdefault(s, []).append(fa)
            sections[s] = "CONTROL"
        for s in fa.instrument_sources:
            src_files.setdefault(s, []).append(fa)
            sections[s] = "INSTRUMENT"
        if fa.legacy_sources:
            legacy.update(fa.legacy_sources)
    sources = {s: SourceFiles(sections[s], in_train_order(fs, inc_suspect), None)
               for s, fs in src_files.items()}
    check_duplicates(sources, inc_suspect)
    return sources, legacy


def union_sources(source_maps: Iterable[dict[str, SourceFiles]], inc_suspect: bool
                  ) -> dict[str, SourceFiles]:
    """Sources of several collections combined: union of their files and selected keys.

    Parameters
    ----------
    source_maps : iterable of dict
        Each collection's source name -> :class:`SourceFiles`.
    inc_suspect : bool
        Whether train IDs the files mark as suspect count.

    Returns
    -------
    dict
        Source name -> :class:`SourceFiles`.

    Raises
    ------
    DuplicateTrainError
        A source has the same train ID in two of the files.
    """
    sources: dict[str, SourceFiles] = {}
    for source_map in source_maps:
        for s, src in source_map.items():
            if s not in sources:
                sources[s] = src
                continue
            old = sources[s]
            fs = {f.filename: f for f in (*old.files, *src.files)}
            keys = None if old.keys is None or src.keys is None else old.keys | src.keys
            sources[s] = SourceFiles(old.section, in_train_order(fs.values(), inc_suspect),
                                     keys)
    check_duplicates(sources, inc_suspect)
    return sources


def union_runs(colls) -> frozenset:
    """The runs of combined collections.

    Collections of one run each whose METADATA names the same proposal and run (e.g. the
    raw and proc folders of a run) stay a single run.

    Parameters
    ----------
    colls : iterable of DataCollection
        The collections combined.

    Returns
    -------
    frozenset
        Run identities (see :func:`exfel_data.euxfel_paths.run_identity`).
    """
    runs = frozenset().union(*(c._runs for c in colls))
    if len(runs) <= 1:
        return runs
    same = set()
    for c in colls:
        if not c.is_single_run or not c.files or c.files[0].format_version == "0.5":
            return runs
        md = c.files[0].metadata()
        ident = (md.get("proposalNumber"), md.get("runNumber"))
        if not all(ident):
            return runs
        same.add(tuple(int(x) for x in ident))
    return frozenset(same) if len(same) == 1 else runs


def in_train_order(files: Iterable[FileAccess], inc_suspect: bool) -> tuple:
    """Files sorted by their first train ID in use (then by name).

    Parameters
    ----------
    files : iterable of FileAccess
        The files of one source.
    inc_suspect : bool
        Whether train IDs the files mark as suspect count.

    Returns
    -------
    tuple of FileAccess
    """
    def start(fa):
        first, last = fa.train_span(inc_suspect)
        return (first if last >= first else 0, fa.filename)

    return tuple(sorted(files, key=start))


def check_duplicates(sources: dict[str, SourceFiles], inc_suspect: bool) -> None:
    """Refuse a source that has the same train in two rows or files.

    Parameters
    ----------
    sources : dict
        Source name -> :class:`SourceFiles`.
    inc_suspect : bool
        Whether train IDs the files mark as suspect count.

    Raises
    ------
    DuplicateTrainError
        Naming the source, the train ID, the files holding it and what to do.
    """
    seen_groups = set()
    for s, src in sorted(sources.items()):
        group = tuple(f.filename for f in src.files)
        if group in seen_groups:
            continue
        seen_groups.add(group)
        if _disjoint_increasing(src.files, inc_suspect):
            continue
        tids = [f.used_train_ids(inc_suspect) for f in src.files]
        allt = np.concatenate(tids) if tids else np.zeros(0, np.uint64)
        uniq, counts = np.unique(allt, return_counts=True)
        if len(uniq) == len(allt):
            continue
        dup = uniq[counts > 1][0]
        where, suspect = [], False
        for f in src.files:
            rows = np.flatnonzero((f.train_ids == dup) & f.rows_in_use(inc_suspect))
            where += [f.filename] * len(rows)
            suspect |= bool((~f.valid[rows]).any())
        n_dup = int((counts > 1).sum())
        hint = f"({n_dup} train ID(s) affected.)"
        if suspect:
            hint += (" One copy is a suspect train ID; open with inc_suspect_trains=False"
                     " to skip suspect trains.")
        elif len({os.path.dirname(w) for w in where}) > 1:
            # e.g. run_a.union(run_b) of two runs that recorded the same trains
            hint += (" The data combined come from different folders that share train IDs:"
                     " union() joins different trains or different sources, so read them"
                     " separately or deselect this source from all but one.")
        else:
            hint += (" The files overlap; open only some of them (include=... or"
                     " H5File) or deselect this source.")
        raise DuplicateTrainError(s, dup, where, hint)


def _disjoint_increasing(files, inc_suspect: bool) -> bool:
    """True if each file's train IDs increase and the files (in order) don't overlap."""
    prev_last = -1
    for f in files:
        if not f.increasing:
            return False
        first, last = f.train_span(inc_suspect)
        if last < first:
            continue  # no trains in use
        if first <= prev_last:
            return False
        prev_last = last
    return True
