"""Dimension names and coordinates of ``KeyData.xarray()`` entries after a region of interest.

As in EXtra-data 1.25: *extra_dims* names the dims of the stored entry (an integer in the
*roi* drops its dim, which then becomes a scalar coordinate); coordinates are the entry
indices the *roi* kept (``np.s_[10:20]`` gives 10..19), made when *extra_dims* is given
or ``extra_coords=True``; a dict *extra_coords* gives coordinates for the dims it names.
"""

from __future__ import annotations

import numpy as np

__all__ = ["entry_dims_and_coords"]


def _per_dim(entry_shape: tuple, roi) -> list:
    """The roi as one index per entry dim (Ellipsis expanded, missing dims as ``:``)."""
    if not isinstance(roi, tuple):
        roi = (roi,)
    n = len(entry_shape)
    if any(x is Ellipsis for x in roi):
        i = next(j for j, x in enumerate(roi) if x is Ellipsis)
        fill = n - (len(roi) - 1)
        roi = roi[:i] + (slice(None),) * fill + roi[i + 1:]
    if len(roi) > n:
        raise IndexError(f"roi {roi!r} has {len(roi)} indices for entries of shape "
                         f"{tuple(entry_shape)}")
    return list(roi) + [slice(None)] * (n - len(roi))


def entry_dims_and_coords(entry_shape: tuple, roi, extra_dims=None,
                          extra_coords=None) -> tuple[list[str], dict]:
    """Names of the entry dims kept by *roi*, and their coordinates.

    Parameters
    ----------
    entry_shape : tuple
        Shape of one stored entry.
    roi : index
        As for ``KeyData.ndarray``.
    extra_dims : list of str, optional
        One name per stored entry dim, or (for code written for older exfel_data) one
        per dim left after the roi.
    extra_coords : bool or dict, optional
        True: coordinates for all entry dims; a dict: dim name -> coordinate values.

    Raises
    ------
    ValueError
        *extra_dims* of the wrong length, or *extra_coords* naming a dim that is not there.
    """
    index = _per_dim(tuple(entry_shape), roi)
    kept = [i for i, ix in enumerate(index) if not isinstance(ix, (int, np.integer))]
    n_all = len(entry_shape)
    default_coords = extra_coords is True or (extra_dims is not None and extra_coords is None)
    if extra_dims is None and not default_coords:
        # without coordinates, the dims left are numbered in order (as EXtra-data does)
        names = [f"dim_{kept.index(i)}" if i in kept else "" for i in range(n_all)]
    elif extra_dims is None:
        names = [f"dim_{i}" for i in range(n_all)]
    elif len(extra_dims) == n_all:
        names = list(extra_dims)
    elif len(extra_dims) == len(kept):
        names = [f"dim_{i}" for i in range(n_all)]
        for i, name in zip(kept, extra_dims, strict=True):
            names[i] = name
    else:
        alt = f", or {len(kept)} for the dims the roi keeps" if len(kept) != n_all else ""
        raise ValueError(f"extra_dims needs {n_all} names (one per entry dim{alt}), "
                         f"got {list(extra_dims)!r}")
    dims = [names[i] for i in kept]
    coords: dict = {}
    if isinstance(extra_coords, dict):
        unknown = sorted(set(extra_coords) - set(dims))
        if unknown:
            raise ValueError(f"extra_coords names {unknown}, which are not dims of the "
                             f"array {dims}; name the dims with extra_dims")
        coords = {d: np.asarray(v) for d, v in extra_coords.items()}
    elif default_coords:
        for i, ix in enumerate(index):
            kept_ix = np.arange(entry_shape[i])[ix]
            coords[names[i]] = kept_ix if i in kept else np.asarray(kept_ix)
    return dims, coords
