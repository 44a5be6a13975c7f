"""Stack one key of a multi-module detector from a single train dict.

Works on the train dict contract (``docs/train-dict.md``): the dicts yielded by
``run.trains()``, ``RunHandler.trains()`` and ``bridge.Client.next()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

from .errors import FillValueError, ModuleIndexError, ModuleMismatchError
from .identify import find_detectors

__all__ = ['stack_detector_data', 'stack_data', 'ModuleStack', 'StackView']

# EXtra-data's pattern, used when no known detector is recognised in the train
GENERIC_PATTERN = r'/DET/(\d+)CH'
GENERIC_N_MODULES = 16


def default_fill(dtype: np.dtype, fill_value=None):
    """The fill value for missing data: NaN for floats, 0 for integers (as EXtra-data).

    A given value is checked against *dtype* (see :func:`checked_fill`).
    """
    dtype = np.dtype(dtype)
    if fill_value is None:
        return dtype.type(np.nan) if dtype.kind in 'fc' else dtype.type(0)
    return checked_fill(dtype, fill_value)


def checked_fill(dtype: np.dtype, fill_value):
    """Convert *fill_value* to *dtype*, refusing values that would change."""
    dtype = np.dtype(dtype)
    if dtype.kind in 'iub':
        if isinstance(fill_value, float) and not float(fill_value).is_integer():
            raise FillValueError(
                f"Fill value {fill_value!r} cannot be stored in {dtype} data"
                + (" (NaN needs a float dtype: pass astype=np.float32)"
                   if np.isnan(fill_value) else "")
            )
        info = np.iinfo(dtype) if dtype.kind in 'iu' else None
        if info is not None and not (info.min <= fill_value <= info.max):
            raise FillValueError(
                f"Fill value {fill_value!r} is outside the range of {dtype} "
                f"({info.min}..{info.max})"
            )
    try:
        return dtype.type(fill_value)
    except (TypeError, ValueError) as e:
        raise FillValueError(f"Fill value {fill_value!r} cannot be stored in {dtype} data"
                             ) from e


def _match_modules(sources, pattern: str, starts_at: int) -> dict[int, str]:
    """Map module index (number - starts_at) -> source name for sources matching *pattern*."""
    regex = re.compile(pattern)
    found: dict[int, str] = {}
    for src in sorted(sources):
        m = regex.search(src)
        if not m:
            continue
        try:
            modno = int(m.group(1)) - starts_at
        except (IndexError, ValueError) as e:
            raise ValueError(
                f"Pattern {pattern!r} must have one group capturing the module number "
                f"(it matched {src!r})"
            ) from e
        if modno in found:
            raise ModuleMismatchError(
                f"Sources {found[modno]!r} and {src!r} both give module {modno + starts_at} "
                f"with pattern {pattern!r}. Pass a pattern that includes the detector name, "
                f"e.g. pattern=r'{re.escape(src.split('/')[0])}/DET/(\\d+)CH'."
            )
        found[modno] = src
    return found


def find_modules(train_data: Mapping, pattern: str | None = None,
                 starts_at: int | None = None) -> tuple[dict[int, str], int | None]:
    """Detector module sources in a train dict: ``({module index: source}, n_modules)``.

    Module indexes count from 0 (the position on the stacked axis). Without
    *pattern*, the module sources of the one known detector in the dict are used
    (:func:`~.identify.find_detectors`, corrected preferred), numbered as that
    detector's modules (JUNGFRAU from 1) unless *starts_at* is given, and
    *n_modules* is the detector's module count (JUNGFRAU: up to the highest
    found). Sources not matching are ignored (train dicts carry other devices).
    With a *pattern* (or when no known detector matches) EXtra-data's rules apply
    and *n_modules* is None (the caller's ``modules=``).
    """
    sources = [s for s in train_data if s != 'metadata']
    if pattern is not None:
        return _match_modules(sources, pattern, starts_at or 0), None
    found = find_detectors(sources)
    if len(found) > 1:
        names = ', '.join(sorted(ds.detector_name for ds in found.values()))
        raise ModuleMismatchError(
            f"The train holds several detectors ({names}); pass only one detector's "
            f"sources, or pattern= with its name, e.g. pattern=r'{names.split(', ')[0]}"
            f"/DET/(\\d+)CH'")
    if not found:
        return _match_modules(sources, GENERIC_PATTERN, starts_at or 0), None
    ds = next(iter(found.values()))
    start = ds.kind.modnos_start_at if starts_at is None else starts_at
    return ({m - start: s for m, s in ds.default.items()},
            ds.n_modules + ds.kind.modnos_start_at - start)


def stack_detector_data(train_data: Mapping, key: str, axis: int = -3,
                        modules: int | None = None, fill_value: float | None = None,
                        real_array: bool = True, *, pattern: str | None = None,
                        starts_at: int | None = None, fillvalue: float | None = None):
    r"""Stack one key from all modules of a detector in one train.

    Parameters
    ----------
    train_data : dict
        One train dict ``{source: {key: array, 'metadata': ...}}`` from
        ``run.trains()``, ``RunHandler.trains()`` or ``bridge.Client.next()``.
        Sources that are not detector modules are ignored.
    key : str
        The key to stack, e.g. ``'image.data'``.
    axis : int
        Where the new module axis goes. The default -3 gives EXtra-data's layout:
        ``(pulses, modules, ss, fs)`` for corrected data, ``(pulses, 2, modules,
        ss, fs)`` for raw AGIPD (data/gain axis before the modules), ``(pulses, 1,
        modules, ss, fs)`` for raw LPD/DSSC, ``(cells, modules, ss, fs)`` for JUNGFRAU.
    modules : int, optional
        Number of modules of the detector (the length of the module axis).
        Default: found from the source names (16 for AGIPD-1M/LPD-1M/DSSC-1M, 8 for
        AGIPD-500K, JUNGFRAU up to its highest module number); 16 for names no
        known detector matches.
    fill_value : number, optional
        Value for modules missing from this train: default NaN for floats and 0
        for integers (as EXtra-data). ``fillvalue=`` (EXtra-data's name) also works.
    real_array : bool
        If False, return a :class:`ModuleStack` view that reads the module arrays
        on indexing instead of copying them into one new array.
    pattern : str, optional
        Regex with one group capturing the module number in source names (as in
        EXtra-data, e.g. ``r'/DET/(\d+)CH'``). Default: recognise the detector
        from its source names (raw or ``/CORR/`` XTDF names, JUNGFRAU
        ``JNGFR<n>``, ``MODULE_<n>``, ``RECEIVER-<n>``).
    starts_at : int, optional
        Module number of the first module. Default 0 with a *pattern*, else the
        detector's numbering (1 for JUNGFRAU).

    Returns
    -------
    numpy.ndarray or ModuleStack
        E.g. shape (64, 16, 512, 128) for 64 frames of corrected AGIPD-1M.

    Raises
    ------
    ModuleMismatchError
        Modules have different shapes or dtypes (the message names them), a
        module number is outside ``0..modules-1``, or no module source is found.
    FillValueError
        A *fill_value* the data's dtype cannot hold.
    """
    if fillvalue is not None:
        if fill_value is not None and fill_value != fillvalue:
            raise TypeError("Pass fill_value= or its alias fillvalue=, not both")
        fill_value = fillvalue
    if not train_data:
        raise ValueError("Empty train dict: no detector data to stack")
    modno_to_src, found_modules = find_modules(train_data, pattern, starts_at)
    if not modno_to_src:
        srcs = ', '.join(repr(s) for s in list(train_data)[:5])
        raise ModuleMismatchError(
            f"No detector module source in the train (sources: {srcs}"
            f"{', ...' if len(train_data) > 5 else ''}). Pass pattern= (a regex with one "
            f"group for the module number, e.g. r'/DET/(\\d+)CH') to match your names."
        )
    if modules is None:
        modules = found_modules or GENERIC_N_MODULES
    out_of_range = sorted(m for m in modno_to_src if not 0 <= m < modules)
    if out_of_range:
        srcs = ', '.join(modno_to_src[m] for m in out_of_range[:3])
        raise ModuleIndexError(
            f"Module(s) {srcs} outside the {modules} modules of the stack (positions "
            f"{out_of_range}); pass modules= or starts_at= to match the numbering"
        )

    arrays: dict[int, np.ndarray] = {}
    for modno, src in sorted(modno_to_src.items()):
        value = train_data[src].get(key) if isinstance(train_data[src], Mapping) else None
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.ndim >= 1 and arr.shape[0] == 0:
            continue  # no frames from this module in this train: treat as missing
        arrays[modno] = arr
    if not arrays:
        raise ModuleMismatchError(
            f"Key {key!r} not found (or empty) in any of the {len(modno_to_src)} module "
            f"sources, e.g. {modno_to_src[min(modno_to_src)]!r}"
        )

    _check_consistent(arrays, modno_to_src, key, 'shape')
    _check_consistent(arrays, modno_to_src, key, 'dtype')
    first = arrays[min(arrays)]
    stack = ModuleStack(arrays, modules, first.shape, first.dtype,
                        default_fill(first.dtype, fill_value), axis)
    return stack.asarray() if real_array else stack


def stack_data(train_data: Mapping, key: str, axis: int = -3,
               xcept: Iterable[str] = ()) -> np.ndarray:
    """Stack one key of every source in a train dict (EXtra-data's ``stack_data``).

    Sources are ordered by the numbers in their names, read as integers
    (``'B_7_0' < 'A_12_0' < 'A_12_1'``); *xcept* lists sources to leave out. Unlike
    :func:`stack_detector_data` nothing is filled: every source must have *key*,
    with one dtype and shape.

    Parameters
    ----------
    train_data : mapping
        A train dict (source -> key -> value).
    key : str
        The key to stack.
    axis : int
        Position of the new sources axis in the result.
    xcept : iterable of str
        Sources to leave out.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        No sources left to stack.
    ModuleMismatchError
        Arrays of different dtype or shape (the message names the sources).
    PropertyNameError
        A source lacks *key*.
    """
    from exfel_data.exceptions import PropertyNameError

    sources = [s for s in train_data if s != 'metadata' and s not in set(xcept)]
    if not sources:
        raise ValueError("No sources to stack (all left out by xcept=)" if xcept
                         else "Empty train dict: nothing to stack")
    sources.sort(key=lambda s: [int(n) for n in re.findall(r'\d+', s)])
    arrays = {}
    for src in sources:
        if key not in train_data[src]:
            raise PropertyNameError(src, key, [k for k in train_data[src] if k != 'metadata'],
                                    hint="stack_data needs the key in every source; "
                                         "leave sources out with xcept=")
        arrays[src] = np.asarray(train_data[src][key])
    numbered = dict(enumerate(arrays.values()))
    for attr in ('shape', 'dtype'):
        _check_consistent(numbered, dict(enumerate(sources)), key, attr)
    return np.stack(list(numbered.values()), axis=axis)


def _check_consistent(arrays: dict, modno_to_src: dict, key: str, attr: str):
    groups: dict = {}
    for modno, arr in arrays.items():
        groups.setdefault(getattr(arr, attr), []).append(modno)
    if len(groups) > 1:
        # repr: dtype('float32'), (64, 1, 256, 256), as EXtra-data's message shows them
        desc = '; '.join(
            f"module{'s' if len(m) > 1 else ''} {', '.join(map(str, m))} "
            f"({modno_to_src[m[0]]!r}{'...' if len(m) > 1 else ''}): {v!r}"
            for v, m in sorted(groups.items(), key=lambda kv: -len(kv[1]))
        )
        raise ModuleMismatchError(f"Modules have different {attr}s for {key!r}: {desc}")


class ModuleStack:
    """Array-like stack of per-module arrays, copied only when asked.

    Indexing with a single module number (on the module axis) returns that
    module's array (or a filled one) without touching the others; any other
    index is applied per module and re-stacked.
    """

    def __init__(self, arrays: dict[int, np.ndarray], n_modules: int, mod_shape: tuple,
                 dtype, fill_value, axis: int = -3):
        self._arrays = arrays
        self.n_modules = n_modules
        self.mod_shape = tuple(mod_shape)
        # EXtra-data's StackView also takes an array here (its dtype is used)
        self.dtype = np.dtype(getattr(dtype, 'dtype', dtype))
        self.fill_value = fill_value
        self.ndim = len(mod_shape) + 1
        if not -self.ndim <= axis < self.ndim:
            raise np.exceptions.AxisError(axis, self.ndim)
        self.axis = axis % self.ndim
        self.shape = self.mod_shape[:self.axis] + (n_modules,) + self.mod_shape[self.axis:]

    @property
    def modules_present(self) -> list[int]:
        """Module numbers (from 0) that have data."""
        return sorted(self._arrays)

    def __repr__(self):
        return (f"<ModuleStack shape={self.shape} dtype={self.dtype} "
                f"{len(self._arrays)}/{self.n_modules} modules>")

    def __len__(self):
        return self.shape[0]

    def module(self, modno: int) -> np.ndarray:
        """The array for one module (filled if the module is missing)."""
        if not -self.n_modules <= modno < self.n_modules:
            raise IndexError(f"Module {modno} out of range for {self.n_modules} modules")
        modno %= self.n_modules
        if modno in self._arrays:
            return self._arrays[modno]
        return np.full(self.mod_shape, self.fill_value, dtype=self.dtype)

    def __getitem__(self, index):
        index = _expand_index(index, self.ndim)
        mod_index = index[self.axis]
        rest = index[:self.axis] + index[self.axis + 1:]
        if isinstance(mod_index, (int, np.integer)):
            return self.module(int(mod_index))[rest]
        modnos = np.atleast_1d(np.arange(self.n_modules)[mod_index])
        # Axes before the module axis that an integer index removes shift it left
        new_axis = self.axis - sum(isinstance(i, (int, np.integer)) for i in index[:self.axis])
        if isinstance(mod_index, slice) and all(
                isinstance(i, (slice, int, np.integer)) for i in rest):
            # Still a lazy stack, as EXtra-data's StackView (``comb[0, 0].asarray()``)
            arrays = {pos: self._arrays[int(m)][rest] for pos, m in enumerate(modnos)
                      if int(m) in self._arrays}
            mod_shape = np.broadcast_to(np.empty((), bool), self.mod_shape)[rest].shape
            return ModuleStack(arrays, len(modnos), mod_shape, self.dtype, self.fill_value,
                               new_axis)
        parts = [self.module(int(m))[rest] for m in modnos]
        return np.stack(parts, axis=new_axis)

    def squeeze(self, axis=None):
        """Drop axes of length 1 (as ``numpy.squeeze``); a single module stays a view."""
        if axis is None:
            axes = [i for i, n in enumerate(self.shape) if n == 1]
        else:
            axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
            for ax in axes:
                if not -self.ndim <= ax < self.ndim:
                    raise np.exceptions.AxisError(ax, self.ndim)
                if self.shape[ax] != 1:
                    raise ValueError("cannot select an axis to squeeze out which has size "
                                     "not equal to one")
        index = [slice(None)] * self.ndim
        for ax in axes:
            index[ax] = 0
        return self[tuple(index)]

    def asarray(self) -> np.ndarray:
        """Copy all modules into one new array."""
        out = np.empty(self.shape, dtype=self.dtype)
        mod_view = np.moveaxis(out, self.axis, 0)
        for modno in range(self.n_modules):
            if modno in self._arrays:
                mod_view[modno] = self._arrays[modno]
            else:
                mod_view[modno] = self.fill_value
        return out

    def __array__(self, dtype=None, copy=None):
        arr = self.asarray()
        return arr if dtype is None else arr.astype(dtype, copy=False)


def _expand_index(index, ndim: int) -> tuple:
    if not isinstance(index, tuple):
        index = (index,)
    if any(i is None for i in index):
        raise IndexError("ModuleStack does not support np.newaxis; convert with np.asarray")
    n_ellipsis = sum(i is Ellipsis for i in index)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_ellipsis:
        pos = next(k for k, i in enumerate(index) if i is Ellipsis)
        fill = (slice(None),) * (ndim - len(index) + 1)
        index = index[:pos] + fill + index[pos + 1:]
    if len(index) > ndim:
        raise IndexError(f"too many indices: {len(index)} for {ndim} dimensions")
    return index + (slice(None),) * (ndim - len(index))


class StackView(ModuleStack):
    """:class:`ModuleStack` with EXtra-data's ``StackView`` constructor arguments."""

    def __init__(self, data: dict[int, np.ndarray], nmodules: int, mod_shape: tuple, dtype,
                 fillvalue, stack_axis: int = -3):
        super().__init__(data, nmodules, mod_shape, dtype, fillvalue, stack_axis)
