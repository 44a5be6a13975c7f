"""Type aliases for the arguments of the public API that take several forms.

Used in annotations only (every module here has ``from __future__ import annotations``, and
imports this module under ``TYPE_CHECKING``), so they cost nothing at import. The forms
themselves are explained in the numpydoc of each function and in docs/reading.md. The
source/key selection spec, which may also be a collection, is
:data:`exfel_data.collection.SourceSelection`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import numpy as np

from .selection import ById, ByIndex

__all__ = ["TrainSelection", "PulseSpec", "KeySelection", "Roi"]

#: Trains: by position (int, slice, ints, a boolean array, ``by_index[...]``) or by train ID
#: (``by_id[...]``); see :func:`exfel_data.selection.select_train_ids`.
TrainSelection: TypeAlias = int | slice | Sequence[int] | np.ndarray | ById | ByIndex
#: Frames within a train: ``by_index[...]`` (position), ``by_id[...]`` (pulse ID), or a plain
#: int / slice / list (position).
PulseSpec: TypeAlias = int | slice | Sequence[int] | np.ndarray | ById | ByIndex
#: Keys of one source: a key name or glob, several, or None for all.
KeySelection: TypeAlias = str | Iterable[str] | None
#: Basic indexing applied to each entry (``np.s_[100:200, :]``): an int, a slice or a tuple.
Roi: TypeAlias = int | slice | tuple[int | slice, ...]
