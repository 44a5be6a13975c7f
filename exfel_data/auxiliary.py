"""``run.auxiliary``: the REDUCTION and ERRATA sections of newer files, as EXtra-data shows them.

Newer DAQ files may record, besides the data sources, what data reduction did
(``REDUCTION``, e.g. which AGIPD frames a pulse selection kept) and errata (``ERRATA``,
e.g. trains outside the buffer range). These sources are listed in
``METADATA/auxiliarySources`` and indexed by train like instrument sources. Each
aggregator writes its own record, so a source appears once per aggregator, named
``AGGREGATOR@source`` -- unless only one aggregator has it and its name ends with a data
source of those files (``PULSE_REDUCTION/SPB_DET_AGIPD1M-1/DET/3CH0:xtdf``).
"""

from __future__ import annotations

import sys
from typing import TextIO

from .exceptions import SourceNameError
from .format import AUXILIARY_SECTIONS
from .selection import glob_matcher
from .source import SourceData

__all__ = ["AuxiliaryIndexer"]


def _aggregator(fa) -> str:
    """The aggregator in an EXDF file name (``RAW-R0238-DA01-S00000.h5`` -> ``DA01``)."""
    parts = fa.basename.rsplit(".", 1)[0].split("-")
    return parts[2] if len(parts) >= 4 else fa.basename


class AuxiliaryIndexer:
    """The auxiliary sources of a collection: ``run.auxiliary[source]`` is a SourceData.

    Parameters
    ----------
    data : DataCollection
        The collection (its files and selected trains).
    """

    def __init__(self, data: DataCollection) -> None:  # noqa: F821 (no import cycle)
        found: dict[tuple[str, str], dict[str, list]] = {}
        for fa in data.files:
            agg = _aggregator(fa)
            for section, sources in fa.auxiliary_sources.items():
                if section not in AUXILIARY_SECTIONS:
                    continue
                for src in sources:
                    found.setdefault((src, section), {}).setdefault(agg, []).append(fa)
        self._sources: dict[str, SourceData] = {}
        for (src, section), by_agg in sorted(found.items()):
            plain = len(by_agg) == 1 and any(
                src.endswith(real) for fa in next(iter(by_agg.values()))
                for real in fa.all_sources)
            for agg, files in by_agg.items():
                name = src if plain else f"{agg}@{src}"
                self._sources[name] = SourceData(
                    src, section=section, files=files, train_ids=data._train_ids,
                    inc_suspect_trains=data.inc_suspect_trains,
                    is_single_run=data.is_single_run)

    @property
    def all_sources(self) -> frozenset[str]:
        """Names of all auxiliary sources (``AGG@source`` where needed, see module doc)."""
        return frozenset(self._sources)

    @property
    def reduction_sources(self) -> frozenset[str]:
        """Names of the ``REDUCTION`` sources."""
        return frozenset(n for n, sd in self._sources.items() if sd.is_reduction)

    @property
    def errata_sources(self) -> frozenset[str]:
        """Names of the ``ERRATA`` sources."""
        return frozenset(n for n, sd in self._sources.items() if sd.is_errata)

    def __contains__(self, item) -> bool:
        if isinstance(item, str):
            return item in self._sources
        if isinstance(item, tuple) and len(item) == 2 and item[0] in self._sources:
            return item[1] in self._sources[item[0]]
        return False

    def __getitem__(self, item):
        if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
            return self._source(item[0])[item[1]]
        if isinstance(item, str):
            return self._source(item)
        raise TypeError("Use run.auxiliary[source] or run.auxiliary[source, key]")

    def _source(self, name: str) -> SourceData:
        try:
            return self._sources[name]
        except KeyError:
            prefixed = sorted(n for n in self._sources if n.partition("@")[2] == name)
            more = f" (and {len(prefixed) - 2} more)" if len(prefixed) > 2 else ""
            hint = (f" It is recorded per aggregator: use e.g. {prefixed[:2]}{more}."
                    if prefixed else " See run.auxiliary.all_sources.")
            raise SourceNameError(name, self._sources, hint=hint) from None

    def info(self, details_for_sources=(), with_aggregators: bool = False,
             file: TextIO | None = None) -> None:
        """Print the reduction and errata sources.

        Parameters
        ----------
        details_for_sources : str or iterable of str
            Source glob patterns whose keys are listed too (entry shape and dtype).
        with_aggregators : bool
            Show the aggregator of each source.
        file : file-like, optional
            Where to print (default ``sys.stdout``).
        """
        print(self._text(details_for_sources, with_aggregators), file=file or sys.stdout)

    def _text(self, details_for_sources=(), with_aggregators: bool = False) -> str:
        match = glob_matcher(details_for_sources) if details_for_sources else None
        out = []
        for label, names in (("reduction", self.reduction_sources),
                             ("errata", self.errata_sources)):
            out.append(f"{len(names)} {label} sources:")
            for name in sorted(names):
                sd = self._sources[name]
                agg = f"[{_aggregator(sd.files[0])}] " if with_aggregators else ""
                out.append(f"  - {agg}{name}")
                if match is not None and match(name):
                    for key in sorted(sd.keys()):
                        kd = sd[key]
                        shape = "x".join(map(str, kd.entry_shape)) or "scalar"
                        dtype = "str" if kd.dtype.kind == "O" else str(kd.dtype)
                        out.append(f"    - {key}: {shape} {dtype}")
            out.append("")
        return "\n".join(out).rstrip("\n")

    def __repr__(self) -> str:
        return self._text()

    def __str__(self) -> str:
        n = len(next(iter(self._sources.values())).train_ids) if self._sources else 0
        return f"<exfel_data.AuxiliaryIndexer for {len(self._sources)} sources and {n} trains>"
