"""Parsing what to convert: selections, train ranges and parts (shared by CLI and API)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Selection:
    """A ``SRC_GLOB`` or ``SRC_GLOB[KEY_GLOB]`` selection item."""

    source_glob: str
    key_glob: str = "*"

    def __str__(self) -> str:
        if self.key_glob == "*" and not self.source_glob.endswith("]"):
            return self.source_glob
        return f"{self.source_glob}[{self.key_glob}]"


def parse_selection(text: str) -> Selection:
    """Parse ``'SRC_GLOB'`` or ``'SRC_GLOB[KEY_GLOB]'``.

    A trailing ``[...]`` is always the key glob; to end a source glob with a
    character class, add an explicit key glob: ``'*/DET/[0-3]CH0:xtdf[*]'``.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty selection; expected 'SRC_GLOB' or 'SRC_GLOB[KEY_GLOB]'")
    if text.endswith("]"):
        depth = 0
        for pos in range(len(text) - 1, -1, -1):
            depth += {"]": 1, "[": -1}.get(text[pos], 0)
            if depth == 0:
                break
        else:
            raise ValueError(f"unbalanced brackets in selection {text!r}")
        source, key = text[:pos], text[pos + 1:-1]
        if not source or not key:
            raise ValueError(f"selection {text!r}: expected 'SRC_GLOB[KEY_GLOB]' with both "
                             "parts non-empty")
        return Selection(source, key)
    return Selection(text)


@dataclass(frozen=True)
class TrainRange:
    """A ``--trains`` value: a slice over train positions (``by_index``) or IDs (``by_id``)."""

    by: str  # "index" or "id"
    slice: slice

    def __str__(self) -> str:
        s = self.slice
        text = ":".join("" if v is None else str(v) for v in (s.start, s.stop, s.step))
        return ("id:" if self.by == "id" else "") + text.rstrip(":")


_SLICE = re.compile(r"^(-?\d*)(?::(-?\d*))?(?::(-?\d*))?$")


def parse_trains(text: str) -> TrainRange:
    """Parse ``START:STOP[:STEP]`` (train positions, like Python slicing) or
    ``id:FIRST:STOP[:STEP]`` (train IDs, stop excluded); a single number ``N``
    means just that one train."""
    text = text.strip()
    by = "index"
    if text.startswith("id:"):
        by, text = "id", text[3:]
    m = _SLICE.match(text)
    if not m or not text:
        raise ValueError(f"{text!r} is not a train range; use START:STOP[:STEP], e.g. "
                         "'0:100', ':50', '::10', or 'id:10000:10050' for train IDs")
    parts = [int(g) if g else None for g in m.groups()]
    if ":" not in text:  # one train
        if parts[0] is None:
            raise ValueError(f"{text!r} is not a train range")
        n = parts[0]
        return TrainRange(by, slice(n, (n + 1) or None))
    start, stop, step = parts
    if step == 0:
        raise ValueError("a train range step cannot be 0")
    if (step or 1) < 0:
        raise ValueError("train ranges cannot go backwards (a negative step): trains are "
                         "always read and written in order")
    return TrainRange(by, slice(start, stop, step))


def parse_part(text: str) -> tuple[int, int]:
    """Parse ``i/N`` (parts numbered from 1, as in ``--array=1-N``) into ``(i, N)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a part; use i/N, e.g. 3/8 (parts 1..N)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"part {i}/{n} out of range: parts are numbered 1..N, N >= 1 "
                         "(with SLURM use --array=1-N and --part $SLURM_ARRAY_TASK_ID/N)")
    return i, n
