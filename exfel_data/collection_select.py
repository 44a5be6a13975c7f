"""Selecting sources, keys and trains of a collection, and combining collections.

:class:`SelectionMethods` holds ``select``, ``deselect``, ``select_trains``,
``split_trains``, ``union`` and the ``selection`` attribute of
:class:`~exfel_data.DataCollection` (which inherits them; use them from there). Each
returns a new collection built with the collection's ``_replace`` or its constructor.
:data:`SourceSelection` is the selection spec they take (re-exported by
``exfel_data.collection``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from . import format as fmt
from .aliases import merge_aliases
from .exceptions import KeyGlobError, PropertyNameError, SourceNameError
from .keydata import KeyData
from .selection import glob_matcher, select_train_ids, sorted_unique, split_ranges
from .source import SourceData
from .source_files import union_runs, union_sources

if TYPE_CHECKING:
    from typing_extensions import Self

    from .hints import TrainSelection

__all__ = ["SelectionMethods", "SourceSelection"]


class SelectionMethods:
    """The selection methods of :class:`~exfel_data.DataCollection`."""

    @property
    def selection(self) -> dict[str, frozenset | None]:
        """Selected keys per source (None: all keys), as EXtra-data's attribute."""
        return {s: src.keys for s, src in self._sources.items()}

    def _parse_selection(self, seln, key_glob: str) -> dict[str, frozenset | None]:
        """Turn a selection spec into {source: keys or None (all)}."""
        explicit = isinstance(seln, dict)  # names, not globs: a missing one is a KeyError
        if isinstance(seln, str):
            items = [(seln, key_glob)]
        elif isinstance(seln, dict):
            items = []
            for s, keys in seln.items():
                if not keys or keys == "*":  # None or an empty set: all keys
                    items.append((s, "*"))
                else:
                    items.extend((s, k) for k in ([keys] if isinstance(keys, str) else keys))
        elif isinstance(seln, SelectionMethods):  # a DataCollection
            return {s: v.keys for s, v in seln._sources.items()}
        elif isinstance(seln, SourceData):
            return {seln.canonical_name: seln.sel_keys}
        elif isinstance(seln, KeyData):
            return {self._canonical(seln.source): frozenset([seln.key])}
        else:
            items = []
            for x in seln:
                if isinstance(x, KeyData):
                    items.append((x.source, x.key))
                elif isinstance(x, SourceData):
                    items.append((x.source, "*"))
                else:
                    items.append((x, "*") if isinstance(x, str) else tuple(x))
        result: dict[str, frozenset | None] = {}
        for src_pat, key_pat in items:
            if src_pat in self._sources or src_pat in self._legacy:
                matched = [self._canonical(src_pat)]
            else:
                match = glob_matcher(src_pat)
                matched = [s for s in self._sources if match(s)]
                if not matched:
                    raise SourceNameError(src_pat, self._sources)
            found_any = False
            for s in matched:
                if key_pat == "*":
                    result[s] = None
                    found_any = True
                    continue
                try:
                    keys = self._source_data(s).select_keys(key_pat).sel_keys
                except PropertyNameError:
                    continue
                found_any = True
                if s in result and result[s] is None:
                    continue
                result[s] = (result.get(s) or frozenset()) | keys
            if not found_any:
                error = PropertyNameError if explicit else KeyGlobError
                if len(matched) == 1:
                    raise error(matched[0], key_pat, self._source_data(matched[0]).keys())
                raise error(src_pat, key_pat, hint=f"(no source matching {src_pat!r} has it)")
        return result

    def select(self, seln: SourceSelection, key_glob: str = "*", require_all: bool = False,
               require_any: bool = False) -> Self:
        """New collection with only the matching sources / keys.

        Parameters
        ----------
        seln : str, list, dict or DataCollection
            A source glob (with *key_glob*), a list of source globs or
            ``(source_glob, key_glob)`` tuples, a dict ``{source: {keys} or None}``, or
            another collection to copy its selection.
        key_glob : str
            Key glob used with a string *seln*; control keys match with or without
            ``.value``.
        require_all : bool
            Keep only trains where every selected source/key has data.
        require_any : bool
            Keep only trains where at least one selected source/key has data.
        """
        if require_all and require_any:
            raise ValueError("select(): give require_all or require_any, not both")
        spec = self._parse_selection(seln, key_glob)
        sources = {}
        for s, keys in spec.items():
            cur = self._sources[s]
            if keys is None:
                keys = cur.keys
            sources[s] = cur._replace(keys=keys)
        new = self._replace(sources=sources)
        if require_all or require_any:
            before = new
            new = new._replace(train_ids=new._train_ids[new._has_all_mask(any_=require_any)])
            n = len(self._train_ids)
            if require_all and n and not len(new._train_ids):
                empty = sorted(s for s in before._sources if not before._has_data(s))
                warnings.warn(f"{n}/{n} (100%) trains dropped by require_all: no train has "
                              f"data from all selected sources"
                              + (f"; without data: {', '.join(empty)}" if empty else ""),
                              stacklevel=2)
        return new

    def _has_data(self, source: str) -> bool:
        return bool(self._source_data(source).data_counts(labelled=False).any())

    def _has_all_mask(self, any_: bool = False) -> np.ndarray:
        """Trains where every (any_: some) selected source and key group has data."""
        mask = np.full(len(self._train_ids), not any_, dtype=bool)
        for s in self._sources:
            sd = self._source_data(s)
            if sd.is_control:
                groups = [""]
            else:
                groups = sorted({fmt.index_group_of(sd.section, k) for k in sd.keys()})
            for g in groups:
                has = sd.data_counts(labelled=False, index_group=g) > 0
                mask = (mask | has) if any_ else (mask & has)
        return mask

    def deselect(self, seln: SourceSelection, key_glob: str = "*") -> Self:
        """New collection without the matching sources / keys (same spec as select).

        Parameters
        ----------
        seln, key_glob
            As for :meth:`select`.

        Returns
        -------
        DataCollection
        """
        spec = self._parse_selection(seln, key_glob)
        sources = dict(self._sources)
        for s, keys in spec.items():
            if keys is None:
                del sources[s]
                continue
            remaining = frozenset(self._source_data(s).keys()) - keys
            if remaining:
                sources[s] = sources[s]._replace(keys=remaining)
            else:
                del sources[s]
        return self._replace(sources=sources)

    def select_trains(self, trains: TrainSelection) -> Self:
        """New collection with a subset of trains.

        Parameters
        ----------
        trains : slice, int, list, array, bool array, xarray, by_id[...] or by_index[...]
            A slice or indices select by position, a boolean array must match the number
            of trains; ``by_id`` selects by train ID; a boolean ``xarray.DataArray`` with
            a ``trainId`` coordinate selects the trains where it is true.

        Returns
        -------
        DataCollection

        Raises
        ------
        TrainIDError
            A ``by_id`` list holds a train ID that is not selected.
        IndexError
            An index out of range.
        """
        return self._replace(train_ids=select_train_ids(self._train_ids, trains))

    def split_trains(self, parts: int | None = None, trains_per_part: int | None = None):
        """Yield collections each covering a similar share of the trains.

        Parameters
        ----------
        parts : int, optional
            At least this many parts (fewer if there are fewer trains).
        trains_per_part : int, optional
            At most this many trains in each part.

        Yields
        ------
        DataCollection
        """
        for sl in split_ranges(len(self._train_ids), parts, trains_per_part):
            yield self._replace(train_ids=self._train_ids[sl])

    def union(self, *others: Self) -> Self:
        """Combine collections: union of files, sources, keys and trains.

        Parameters
        ----------
        *others : DataCollection
            The collections to combine with this one.

        Returns
        -------
        DataCollection

        Raises
        ------
        DuplicateTrainError
            A source has the same train ID in two of the files.
        """
        colls = (self, *others)
        files = {f.filename: f for c in colls for f in c.files}
        sources = union_sources([c._sources for c in colls], self.inc_suspect_trains)
        train_ids = sorted_unique(np.concatenate([c._train_ids for c in colls]))
        legacy, aliases, alias_files = {}, {}, []
        for c in colls:
            legacy.update(c._legacy)
            aliases = merge_aliases(aliases, c._aliases)
            alias_files += [f for f in c._alias_files if f not in alias_files]
        return type(self)(sorted(files.values(), key=lambda f: f.filename), sources,
                          train_ids, inc_suspect_trains=self.inc_suspect_trains,
                          runs=union_runs(colls), legacy_sources=legacy, aliases=aliases,
                          alias_files=alias_files)

    __or__ = union


#: Sources and keys to select (``select``, ``deselect``, ``trains(devices=)``...): a source
#: glob, a list of source globs or ``(source_glob, key_glob)`` pairs, a dict
#: ``{source: keys or None}``, or a collection / source / key whose selection is copied.
SourceSelection: TypeAlias = (str | Iterable[str | tuple[str, str]]
                              | Mapping[str, Iterable[str] | None]
                              | SelectionMethods | SourceData | KeyData)
