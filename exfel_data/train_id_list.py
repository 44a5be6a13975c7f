"""``TrainIdList``: the public ``train_ids`` of collections, sources and keys.

EXtra-data returns train IDs as a Python list of ints, and users' code relies on list
behaviour (``run.train_ids == [..]``, ``if run.train_ids:``, ``a.train_ids + b.train_ids``).
Inside exfel_data train IDs are uint64 numpy arrays; this list keeps that array, so
``np.asarray(run.train_ids)`` costs nothing and fast paths stay fast.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TrainIdList"]


class TrainIdList(list):
    """A list of train IDs (Python ints) that converts to a uint64 array without copying.

    Behaves as a plain ``list`` in every respect; ``np.asarray(ids)`` returns the
    read-only uint64 array it was made from. Changing the list in place (``append``,
    ``ids[0] = ...``) is allowed; the array is then rebuilt from the list when asked for.
    """

    __slots__ = ("_array",)

    def __init__(self, train_ids=()):
        arr = np.asarray(train_ids, dtype=np.uint64).reshape(-1)
        super().__init__(arr.tolist())
        arr = arr.view()
        arr.flags.writeable = False
        self._array = arr

    def __array__(self, dtype=None, copy=None):
        if self._array is None:
            arr = np.array(list(self), dtype=np.uint64)
            arr.flags.writeable = False
            self._array = arr
        arr = self._array
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __reduce__(self):
        # pickles (dask, multiprocessing) as a plain list, rebuilt as a TrainIdList
        return (TrainIdList, (list(self),))


def _invalidating(name: str):
    method = getattr(list, name)

    def mutate(self, *args, **kwargs):
        self._array = None
        return method(self, *args, **kwargs)

    mutate.__name__ = name
    mutate.__doc__ = method.__doc__
    return mutate


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(TrainIdList, _name, _invalidating(_name))
del _name
