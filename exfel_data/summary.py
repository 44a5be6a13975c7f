"""The text of ``run.info()``: what a user wants to see first about a run."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from .detectors.identify import module_sources
from .selection import glob_matcher

__all__ = ["format_info"]

TRAIN_RATE_HZ = 10


def _count_range(counts: np.ndarray) -> tuple[int, str]:
    """``(trains with data, '4' or '1-4' entries)`` of a per-train count array."""
    with_data = counts[counts > 0]
    if len(with_data) == 0:
        return 0, "0"
    lo, hi = int(with_data.min()), int(with_data.max())
    return len(with_data), f"{lo}" if lo == hi else f"{lo}-{hi}"


def _frames_summary(coll, source: str) -> str:
    sd = coll[source]
    groups = sd.index_groups
    group = "image" if "image" in groups else ("data" if "data" in groups else None)
    if group is None:
        return ""
    counts = sd.data_counts(labelled=False, index_group=group)
    n_with_data, frames = _count_range(counts)
    if n_with_data == 0:
        return "no data"
    missing = len(counts) - n_with_data
    miss = f", missing in {missing} trains" if missing else ""
    if group == "data" and "data.adc" in sd.keys():  # JUNGFRAU: memory cells in each entry
        shape = sd["data.adc"].entry_shape
        return f"{shape[0]} memory cells of {shape[1]}x{shape[2]} px per train{miss}"
    return f"{frames} frames/train{miss}"


def _group_sources(names) -> list[str]:
    """Collapse sources differing only in their channel into 'DEV:{a,b}' lines."""
    by_dev: dict[str, list[str]] = {}
    for n in sorted(names):
        dev, sep, chan = n.partition(":")
        by_dev.setdefault(dev, []).append(chan if sep else "")
    lines = []
    for dev, chans in by_dev.items():
        if chans == [""]:
            lines.append(dev)
        elif len(chans) == 1:
            lines.append(f"{dev}:{chans[0]}")
        else:
            lines.append(f"{dev}:{{{', '.join(chans)}}}")
    return lines


def _key_lines(coll, source: str) -> list[str]:
    sd = coll[source]
    lines = []
    for key in sorted(k for k in sd.keys() if not (sd.is_control and k.endswith(".timestamp"))):
        kd = sd[key]
        shape = "x".join(map(str, kd.entry_shape)) or "scalar"
        dtype = "str" if kd.dtype.kind == "O" else str(kd.dtype)
        units = ""
        try:
            units = f" [{kd.units}]" if kd.units else ""
        except Exception:  # noqa: BLE001 - units are decoration only
            pass
        lines.append(f"    - {key}: {shape} {dtype}{units}")
    return lines


def _aggregator_lines(coll, names) -> list[str]:
    lines = []
    for s in sorted(names):
        try:
            agg = coll[s].aggregator
        except Exception:  # noqa: BLE001 - a file name that does not say
            agg = "?"
        lines.append(f"[{agg}] {s}")
    return lines


def _legacy_lines(legacy: dict[str, str]) -> list[str]:
    """Old -> new names, collapsed per device: 'DET/* -> CORR/* (16)'."""
    by_dev: dict[tuple[str, str], int] = Counter(
        (old.rpartition("/")[0], new.rpartition("/")[0]) for old, new in legacy.items())
    lines = []
    for old, new in sorted(legacy.items()):
        devs = (old.rpartition("/")[0], new.rpartition("/")[0])
        n = by_dev.get(devs)
        if n is None:
            continue
        if n > 1 and all(devs):
            lines.append(f"{devs[0]}/* -> {devs[1]}/* ({n})")
            del by_dev[devs]
        else:
            lines.append(f"{old} -> {new}")
    return lines


def _count_lines(coll, source: str) -> list[str]:
    """How many trains have data, and how many entries, per index group of a source."""
    sd = coll[source]
    groups = sorted(sd.index_groups)
    lines = []
    for group in groups:
        counts = sd.data_counts(labelled=False, index_group=group)  # one per train
        n_with_data, entries = _count_range(counts)
        prefix = f"{group}: " if len(groups) > 1 else ""
        lines.append(f"    {prefix}data for {n_with_data} trains "
                     f"({n_with_data / max(len(counts), 1):.2%}), {entries} entries per "
                     "train")
    return lines


def format_info(coll, details_for_sources=(), with_aggregators: bool = False,
                counts: bool = False, group_sources: bool = True) -> str:
    """Summary text of a collection (see ``DataCollection.info``)."""
    tids = np.asarray(coll.train_ids)
    n = len(tids)
    out = []
    suspect = coll.suspect_trains
    # Range and duration from trustworthy IDs: one rogue ID must not make a run "last a day".
    good = tids
    if suspect and coll.inc_suspect_trains:
        valid = np.concatenate([f.train_ids[f.valid] for f in coll.files])
        good = tids[np.isin(tids, valid)]
    if len(good):
        span = int(good[-1]) - int(good[0]) + 1
        secs = span / TRAIN_RATE_HZ
        dur = f"{int(secs // 3600)}:{int(secs % 3600 // 60):02d}:{secs % 60:04.1f}"
        gaps = span - len(good)
        out += [
            f"# of trains:    {n}" + (f" ({gaps} train IDs missing in the range)" if gaps
                                       else ""),
            f"Duration:       {dur}",
            f"First train ID: {int(good[0])}",
            f"Last train ID:  {int(good[-1])}",
        ]
        outside = tids[~np.isin(tids, good)]
        if len(outside):
            shown = ", ".join(str(t) for t in outside[:5]) + (" ..." if len(outside) > 5
                                                              else "")
            out.append(f"Suspect IDs:    {shown} (outside the range above)")
    else:
        out.append("# of trains:    0 (no trains selected)")
    versions = Counter(f.format_version for f in coll.files)
    vtext = ", ".join(f"{v} ({c})" if len(versions) > 1 else v
                      for v, c in sorted(versions.items()))
    dirs = sorted({os.path.dirname(f.filename) for f in coll.files})
    out.append(f"Files:          {len(coll.files)} in {', '.join(dirs)} (format {vtext})")
    cache_status = {}
    for f in coll.files:
        if f.cache_status is not None:
            cache_status.setdefault(os.path.dirname(f.filename), f.cache_status)
    out += [f"Index cache:    {cache_status[d]()}" for d in dirs if d in cache_status]
    if suspect:
        what = "included" if coll.inc_suspect_trains else "excluded"
        out.append(f"Suspect trains: {len(suspect)} {what} (see run.suspect_trains)")
    out.append("")

    dets = coll.detector_modules()
    for det, mods in dets.items():
        numbers = sorted(mods)
        first_src = mods[numbers[0]]
        out.append(f"{len(mods)} detector modules of {det} (modules "
                   f"{_ranges(numbers)})")
        frames = _frames_summary(coll, first_src)
        if frames:
            out.append(f"  e.g. module {first_src}: {frames}")
    if dets:
        out.append("")

    inst = sorted(coll.instrument_sources - module_sources(coll.instrument_sources))
    out.append(f"{len(inst)} instrument sources (excluding detectors):")
    if with_aggregators:
        inst = _aggregator_lines(coll, inst)
    elif group_sources:
        inst = _group_sources(inst)
    out += [f"  - {line}" for line in inst]
    out.append("")
    if counts:
        out.append("Data counts of every instrument source (trains with data, entries "
                   "per train):")
        for src in sorted(coll.instrument_sources):
            out.append(f"  - {src}")
            out += _count_lines(coll, src)
        out.append("")
    ctrl = sorted(coll.control_sources)
    out.append(f"{len(ctrl)} control sources:")
    out += [f"  - {s}" for s in (_aggregator_lines(coll, ctrl) if with_aggregators else ctrl)]
    legacy = coll.legacy_sources
    if legacy:
        out += ["", f"{len(legacy)} legacy source names:"]
        out += [f"  - {line}" for line in _legacy_lines(legacy)]

    if details_for_sources:
        match = glob_matcher(details_for_sources)
        out.append("")
        for s in sorted(coll.all_sources):
            if match(s):
                out.append(f"{s} ({'control' if coll[s].is_control else 'instrument'}):")
                out += _key_lines(coll, s)
    return "\n".join(out)


def _ranges(numbers: list[int]) -> str:
    """[0,1,2,5] -> '0-2, 5'."""
    parts, start, prev = [], None, None
    for x in numbers + [None]:
        if start is None:
            start = prev = x
        elif x is not None and x == prev + 1:
            prev = x
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = x
    return ", ".join(parts)

