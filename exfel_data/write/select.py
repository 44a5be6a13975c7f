"""Resolving ``--select`` / ``--trains`` / ``--part`` on an opened run."""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Iterable

import numpy as np

from ..detectors.identify import find_detectors
from ..selection import TrainRange, parse_trains
from .plan import ConversionError
from .request import Selection, parse_selection


def _detector_siblings(run, sources: Iterable[str]) -> set[str]:
    """All module sources (same detector, same raw/corrected kind) of the modules in ``sources``."""
    sources = set(sources)
    out = set()
    for ds in find_detectors(run.instrument_sources).values():
        for modules in (ds.raw, ds.corr):
            if set(modules.values()) & sources:
                out |= set(modules.values())
    return out


def as_selection(item) -> Selection:
    if isinstance(item, Selection):
        return item
    if isinstance(item, tuple):
        return Selection(*item)
    return parse_selection(item)


def select_keys(run, select: Iterable, append_detector_modules: bool = False
                ) -> list[tuple[str, str]]:
    """(source, key) pairs matched by the selection items (all keys if none are given)."""
    items = [as_selection(s) for s in select] or [Selection("*")]
    sources = sorted(run.all_sources)
    pairs: dict[tuple[str, str], None] = {}
    for sel in items:
        matched = [s for s in sources if fnmatch.fnmatchcase(s, sel.source_glob)]
        if append_detector_modules:
            matched = sorted(set(matched) | _detector_siblings(run, matched))
        if not matched:
            raise ConversionError(
                f"Selection {str(sel)!r} matches no source of {run_name(run)} "
                f"({len(sources)} sources, see 'exfel-data info')"
                + (_did_you_mean(sel.source_glob, sources) or _some(sources)))
        n_before = len(pairs)
        for src in matched:
            for key in sorted(run.keys_for_source(src)):
                if fnmatch.fnmatchcase(key, sel.key_glob):
                    pairs[(src, key)] = None
        if len(pairs) == n_before and sel.key_glob != "*":
            keys = sorted(run.keys_for_source(matched[0]))
            raise ConversionError(
                f"Selection {str(sel)!r}: no key matches {sel.key_glob!r} in {matched[0]}"
                f"{' and others' if len(matched) > 1 else ''} ({len(keys)} keys, see "
                f"'exfel-data info --detail {matched[0]}')"
                + (_did_you_mean(sel.key_glob, keys) or _some(keys)))
    return list(pairs)


def _did_you_mean(glob: str, names: list[str]) -> str:
    words = [w for w in re.split(r"[*?\[\]]+", glob) if w]
    scored = {}
    for name in names:
        for w in words:
            for m in difflib.get_close_matches(w, [name, *name.split("/")], n=1, cutoff=0.5):
                scored[name] = max(scored.get(name, 0.0),
                                   difflib.SequenceMatcher(None, w, m).ratio())
    best = sorted(scored, key=lambda n: (-scored[n], n))[:3]
    return f". Did you mean: {', '.join(best)}?" if best else ""


def _some(names: list[str], n: int = 8) -> str:
    return f". Available: {', '.join(names[:n])}{' ...' if len(names) > n else ''}"


def run_name(run) -> str:
    files = getattr(run, "files", None) or []
    if files:
        return os.path.dirname(files[0].filename)
    return "the run"


def apply_trains(run, trains: TrainRange | str | None):
    if trains is None:
        return run
    if isinstance(trains, str):
        trains = parse_trains(trains)
    return run.select_trains(trains.selector)


def part_slice(n_trains: int, part: tuple[int, int]) -> slice:
    """Positions of the trains in part ``i`` of ``N`` (1-based), consecutive and balanced."""
    i, n = part
    bounds = np.linspace(0, n_trains, n + 1).round().astype(int)
    return slice(int(bounds[i - 1]), int(bounds[i]))
