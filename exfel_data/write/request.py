"""Parsing what to convert: selections and parts (shared by CLI and API).

Train ranges (``--trains``) are parsed by :func:`exfel_data.selection.parse_trains`, shared
with ``exfel-bridge serve-run``.
"""

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
