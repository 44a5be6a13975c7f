"""Stack one key of a multi-module detector from a single train dict.

Works on the train dict contract (``docs/train-dict.md``): the dicts yielded by
``run.trains()``, ``RunHandler.trains()`` and ``bridge.Client.next()``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from .errors import FillValueError, ModuleMismatchError

__all__ = ['stack_detector_data', 'ModuleStack']

DEFAULT_PATTERN = r'/DET/(\d+)CH'
# Tried in this order when the caller keeps the default pattern and it finds nothing:
# corrected XTDF data (new names), then JUNGFRAU (numbered from 1).
_FALLBACK_PATTERNS = ((r'/CORR/(\d+)CH', 0), (r'/(?:DET|CORR)/JNGFR(\d+)', 1))


def default_fill(dtype: np.dtype, fillvalue=None, *, what: str = 'data'):
    """Check *fillvalue* against *dtype*; NaN for floats when not given.

    Integer (and bool) data has no natural "missing" value, so there it must
    be given explicitly: putting NaN into an int array would be silently wrong.
    """
    dtype = np.dtype(dtype)
    if fillvalue is None:
        if dtype.kind in 'fc':
            return dtype.type(np.nan)
        raise FillValueError(
            f"{what} has dtype {dtype} and some modules are missing; NaN cannot be stored "
            f"in {dtype}. Pass fillvalue= (e.g. fillvalue=0) to choose a value for them."
        )
    return checked_fill(dtype, fillvalue)


def checked_fill(dtype: np.dtype, fillvalue):
    """Convert *fillvalue* to *dtype*, refusing values that would change."""
    dtype = np.dtype(dtype)
    if dtype.kind in 'iub':
        if isinstance(fillvalue, float) and not float(fillvalue).is_integer():
            raise FillValueError(
                f"Fill value {fillvalue!r} cannot be stored in {dtype} data"
                + (" (NaN needs a float dtype: pass astype=np.float32)"
                   if np.isnan(fillvalue) else "")
            )
        info = np.iinfo(dtype) if dtype.kind in 'iu' else None
        if info is not None and not (info.min <= fillvalue <= info.max):
            raise FillValueError(
                f"Fill value {fillvalue!r} is outside the range of {dtype} "
                f"({info.min}..{info.max})"
            )
    try:
        return dtype.type(fillvalue)
    except (TypeError, ValueError) as e:
        raise FillValueError(f"Fill value {fillvalue!r} cannot be stored in {dtype} data") from e


def _match_modules(sources, pattern: str, starts_at: int) -> dict[int, str]:
    """Map module number -> source name for the sources matching *pattern*."""
    regex = re.compile(pattern)
    found: dict[int, str] = {}
    for src in sources:
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


def find_modules(train_data: Mapping, pattern: str = DEFAULT_PATTERN,
                 starts_at: int = 0) -> dict[int, str]:
    """Identify detector module sources in a train dict.

    Sources not matching are ignored (train dicts often carry other devices).
    With the default pattern, corrected sources (``/CORR/<n>CH``) are preferred
    when present and JUNGFRAU sources (``JNGFR<n>``, numbered from 1) are tried
    when nothing else matches.
    """
    sources = [s for s in train_data if s != 'metadata']
    if pattern != DEFAULT_PATTERN:
        return _match_modules(sources, pattern, starts_at)
    corr = _match_modules(sources, _FALLBACK_PATTERNS[0][0], starts_at)
    if corr:
        return corr
    found = _match_modules(sources, pattern, starts_at)
    if not found:
        jf_pattern, jf_start = _FALLBACK_PATTERNS[1]
        found = _match_modules(sources, jf_pattern, starts_at or jf_start)
    return found


def stack_detector_data(train_data: Mapping, key: str, axis: int = -3, modules: int = 16,
                        fillvalue=None, real_array: bool = True,
                        pattern: str = DEFAULT_PATTERN, starts_at: int = 0):
    """Stack one key from all modules of a detector in one train.

    Parameters
    ----------
    train_data : dict
        One train dict ``{source: {key: array, 'metadata': ...}}`` from
        ``run.trains()``, ``RunHandler.trains()`` or ``bridge.Client.next()``.
        Sources that are not detector modules are ignored.
    key : str
        The key to stack, e.g. ``'image.data'``.
    axis : int
        Where the new module axis goes; the default -3 gives
        ``(pulses, modules, slow_scan, fast_scan)`` for corrected data.
    modules : int
        Number of modules of the detector (the length of the module axis).
    fillvalue : number, optional
        Value for modules missing from this train. Default NaN for floats;
        integer data with missing modules needs an explicit value.
    real_array : bool
        If False, return a :class:`ModuleStack` view that reads the module arrays
        on indexing instead of copying them into one new array.
    pattern : str
        Regex with one group capturing the module number in source names. The
        default also finds ``/CORR/<n>CH0:output`` (preferred) and JUNGFRAU
        ``JNGFR<n>`` sources.
    starts_at : int
        Module number of the first module (1 for JUNGFRAU; set automatically when
        the default pattern falls back to JUNGFRAU names).

    Returns
    -------
    numpy.ndarray or ModuleStack
        E.g. shape (64, 16, 512, 128) for 64 frames of corrected AGIPD-1M.

    Raises
    ------
    ModuleMismatchError
        Modules have different shapes or dtypes (the message names them), or a
        module number is outside ``0..modules-1``.
    FillValueError
        Integer data with missing modules and no *fillvalue*.
    """
    if not train_data:
        raise ValueError("Empty train dict: no detector data to stack")
    modno_to_src = find_modules(train_data, pattern, starts_at)
    if not modno_to_src:
        srcs = ', '.join(repr(s) for s in list(train_data)[:5])
        raise ModuleMismatchError(
            f"No source matches the module pattern {pattern!r} (sources: {srcs}"
            f"{', ...' if len(train_data) > 5 else ''}). Pass pattern= to match your names."
        )
    out_of_range = sorted(m + starts_at for m in modno_to_src if not 0 <= m < modules)
    if out_of_range:
        raise ModuleMismatchError(
            f"Module number(s) {out_of_range} outside 0..{modules - 1} for a detector "
            f"with modules={modules}; pass modules= or starts_at= to match the numbering"
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
    dtype, mod_shape = first.dtype, first.shape
    if len(arrays) < modules:
        fill = default_fill(dtype, fillvalue, what=f"{key!r}")
    else:
        fill = None if fillvalue is None else checked_fill(dtype, fillvalue)

    stack = ModuleStack(arrays, modules, mod_shape, dtype, fill, axis)
    return stack.asarray() if real_array else stack


def _check_consistent(arrays: dict, modno_to_src: dict, key: str, attr: str):
    groups: dict = {}
    for modno, arr in arrays.items():
        groups.setdefault(getattr(arr, attr), []).append(modno)
    if len(groups) > 1:
        desc = '; '.join(
            f"module{'s' if len(m) > 1 else ''} {', '.join(map(str, m))} "
            f"({modno_to_src[m[0]]!r}{'...' if len(m) > 1 else ''}): {v}"
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
                 dtype, fillvalue, axis: int = -3):
        self._arrays = arrays
        self.n_modules = n_modules
        self.mod_shape = tuple(mod_shape)
        self.dtype = np.dtype(dtype)
        self.fillvalue = fillvalue
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
        return np.full(self.mod_shape, self.fillvalue, dtype=self.dtype)

    def __getitem__(self, index):
        index = _expand_index(index, self.ndim)
        mod_index = index[self.axis]
        rest = index[:self.axis] + index[self.axis + 1:]
        if isinstance(mod_index, (int, np.integer)):
            return self.module(int(mod_index))[rest]
        modnos = np.arange(self.n_modules)[mod_index]
        # Axes before the module axis that an integer index removes shift it left
        new_axis = self.axis - sum(isinstance(i, (int, np.integer)) for i in index[:self.axis])
        parts = [self.module(int(m))[rest] for m in np.atleast_1d(modnos)]
        return np.stack(parts, axis=new_axis)

    def asarray(self) -> np.ndarray:
        """Copy all modules into one new array."""
        out = np.empty(self.shape, dtype=self.dtype)
        mod_view = np.moveaxis(out, self.axis, 0)
        for modno in range(self.n_modules):
            if modno in self._arrays:
                mod_view[modno] = self._arrays[modno]
            else:
                mod_view[modno] = self.fillvalue
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
