"""One key of all modules of a detector: labelled numpy / xarray / dask reads."""

from __future__ import annotations

from functools import partial

import numpy as np

from exfel_data.keydata import DASK_CHUNK_BYTES
from exfel_data.reading import roi_shape
from exfel_data.selection import find_train_ids

from .errors import ModuleMismatchError, warn_user
from .frames import (
    GAIN_STRIDE,
    LabelPatterns,
    expand_blocks,
    gain_stage_labels,
    majority,
    normalise_pulses,
    plan_slots,
)
from .readblocks import ModuleRows, Segment, read_box
from .stacking import default_fill

__all__ = ['DetectorKeyData']

SUBTRAIN_INDEXES = {'pulseId': 'pulse', 'cellId': 'cell'}


class DetectorKeyData:
    """One key of every module of a detector, e.g. ``det['image.data']``.

    Per-frame keys (XTDF ``image.*``) get a pulse axis labelled by pulse ID
    (or cell ID); per-train keys (JUNGFRAU ``data.*``, XTDF ``header.*``) do not.
    *det* is a :class:`~.base.MultiModuleDetector`; this class uses only the
    attributes listed in its docstring.
    """

    def __init__(self, det, key: str, pulses=None, subtrain_index: str = 'pulseId'):
        if subtrain_index not in SUBTRAIN_INDEXES:
            raise ValueError(f"subtrain_index must be one of {list(SUBTRAIN_INDEXES)}, "
                             f"not {subtrain_index!r}")
        self.det = det
        self.key = key
        self.pulses = normalise_pulses(pulses)
        self.subtrain_index = subtrain_index
        group = key.split('.', 1)[0]
        self.per_frame = det.frames_group is not None and group == det.frames_group
        # LPD parallel gain: each train's frames are 3 gain stages of the same pulses
        self._stages = 3 if self.per_frame and getattr(det, 'parallel_gain', False) else 1
        self._check_modules_agree()

    def _check_modules_agree(self):
        meta = {}
        for m in self.det.modules:
            kd = self.det.data[self.det.modno_to_source[m], self.key]
            meta.setdefault((np.dtype(kd.dtype), tuple(kd.entry_shape)), []).append(m)
        if len(meta) > 1:
            groups = sorted(meta.items(), key=lambda x: -len(x[1]))
            desc = '; '.join(f"modules {mods}: {dt} {shape}" for (dt, shape), mods in groups)
            raise ModuleMismatchError(
                f"Modules of {self.det.detector_name} disagree on {self.key!r}: {desc}. "
                f"Pass modules= to use the consistent ones."
            )
        (dtype, shape), = meta
        self.dtype = dtype
        self._squeeze = self.per_frame and len(shape) >= 1 and shape[0] == 1
        self.entry_shape = shape[1:] if self._squeeze else shape

    def __repr__(self):
        return (f"<DetectorKeyData {self.det.detector_name} {self.key!r}: "
                f"{len(self.det.modules)} modules, {len(self.det._train_ids)} trains>")

    # -- selections -----------------------------------------------------------------
    def _copy(self, **changes):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def select_pulses(self, pulses=None, subtrain_index: str | None = None):
        """Same key with frames selected: ``by_index[...]`` or ``by_id[...]``."""
        si = subtrain_index or self.subtrain_index
        if si not in SUBTRAIN_INDEXES:
            raise ValueError(f"subtrain_index must be one of {list(SUBTRAIN_INDEXES)}")
        return self._copy(pulses=normalise_pulses(pulses), subtrain_index=si)

    def select_trains(self, trains):
        return self._copy(det=self.det.select_trains(trains))

    def drop_unselected_trains(self):
        """Same key without the trains where the pulse selection keeps no frame.

        What EXtra-data's ``get_array`` returns for a pulse selection: a train none of
        whose modules recorded a selected pulse has no row (``by_id[:0]`` gives 0 trains).
        """
        if not self.per_frame or self.pulses.is_all:
            return self
        keep = self._plan().covered().sum(axis=0) > 0
        if keep.all():
            return self
        return self._copy(det=self.det._with_trains(self.det._train_ids[keep]))

    def split_trains(self, parts=None, trains_per_part=None, frames_per_part=None):
        for d in self.det.split_trains(parts, trains_per_part, frames_per_part):
            yield self._copy(det=d)

    # -- planning -------------------------------------------------------------------
    def _module_rows(self, modno: int) -> tuple[ModuleRows, np.ndarray]:
        """File segments of this key for one module and each train's first row."""
        cache_key = ('rows', self.key, modno)
        cached = self.det.plan_cache.get(cache_key)
        if cached is not None:
            return cached
        tids = self.det._train_ids
        kd = self.det.module_keydata(modno, self.key)
        segments, vstart, v = [], np.zeros(len(tids), np.int64), 0
        for ch in kd.data_chunks():
            counts = np.asarray(ch.counts, dtype=np.int64)
            n = int(counts.sum())
            if n == 0:
                continue
            pos, ok = find_train_ids(tids, ch.train_ids)
            starts = v + np.cumsum(counts) - counts
            vstart[pos[ok]] = starts[ok]
            segments.append(Segment(v, n, ch.file.filename, ch.dataset_path, int(ch.first),
                                    ch.file.identity))
            v += n
        res = self.det.plan_cache[cache_key] = (ModuleRows(tuple(segments), self._squeeze), vstart)
        return res

    def _counts(self) -> np.ndarray:
        """(modules, trains) entries of this key."""
        if self.per_frame:
            return self.det.entry_counts.T.astype(np.int64)
        return np.stack([
            np.asarray(self.det.module_keydata(m, self.key).data_counts(labelled=False), np.int64)
            for m in self.det.modules
        ])

    def _plan(self):
        """Slot plan (cached on the detector per group, label and pulse selection)."""
        det = self.det
        group = det.frames_group if self.per_frame else self.key
        cache_key = (group, self.subtrain_index, self.pulses.key())
        plan = det.plan_cache.get(cache_key)
        if plan is not None:
            return plan
        counts = self._counts()
        n_mod, n_trains = counts.shape
        pat = LabelPatterns(n_mod, n_trains)
        label_key = f"{group}.{self.subtrain_index}"
        use_labels = self.per_frame and label_key in det
        for i, m in enumerate(det.modules):
            labels = None
            if use_labels:
                labels = det.module_keydata(m, label_key).ndarray().reshape(-1)
                if labels.size != counts[i].sum():
                    raise ModuleMismatchError(
                        f"{det.modno_to_source[m]}: {labels.size} entries of {label_key!r} "
                        f"but {counts[i].sum()} of {self.key!r}; the file index is inconsistent"
                    )
            if self._stages > 1:
                labels = gain_stage_labels(counts[i], labels, self._stages)
            pat.add_module(i, counts[i], labels)
        # by_index positions refer to the frames of the modules that agree with the
        # majority frame count (the same vote as the detector's reference_counts)
        ref_counts = majority(counts, counts > 0, empty=0)
        agree = counts == ref_counts[None, :]
        reference = majority(pat.ids, (pat.ids >= 0) & agree)
        exclude = None
        if det.mismatched_frames == 'exclude':
            exclude = ~agree & (counts > 0)
        plan = plan_slots(pat, self.pulses, reference, exclude, self._stages)
        if self._stages > 1 and plan.n_slots % self._stages:
            raise ModuleMismatchError(
                f"{det.detector_name}: parallel gain stages hold different pulses "
                f"({plan.n_slots} slots for {self._stages} stages); read with "
                f"parallel_gain=False")
        if plan.positional and use_labels:
            warn_user(f"{det.detector_name}: {label_key} values repeat within a train, so the "
                      f"pulse axis is labelled by position in the train instead")
        plan.has_pulse_axis = self.per_frame or plan.n_slots > 1
        plan.use_labels = use_labels
        det.plan_cache[cache_key] = plan
        return plan

    # -- shapes and labels --------------------------------------------------------------
    def _entry_dims(self, roi=()) -> list[str]:
        nd = len(self.entry_shape)
        if self.per_frame and nd == 3:
            dims = ['data_gain', 'slow_scan', 'fast_scan']
        elif self.per_frame and nd == 2:
            dims = ['slow_scan', 'fast_scan']
        else:
            dims = self.det._entry_dims(self.key, nd)
        roi = roi if isinstance(roi, tuple) else (roi,)
        return [d for d, r in zip(dims, roi + (slice(None),) * nd, strict=False)
                if not isinstance(r, (int, np.integer))]

    @property
    def pulse_dim(self) -> str:
        plan = self._plan()
        if not self.per_frame:
            return 'entry'
        return SUBTRAIN_INDEXES[self.subtrain_index] if plan.use_labels else 'pulse'

    def unstacked_dims(self, roi=()) -> tuple[str, ...]:
        """Dims of the unstacked layout: ``(module, train, [[gain,] pulse,] ...entry)``."""
        pulse = (self.pulse_dim,) if self._plan().has_pulse_axis else ()
        if self._stages > 1:
            pulse = ('gain',) + pulse
        return ('module', 'train') + pulse + tuple(self._entry_dims(roi))

    def _module_numbers(self, module_gaps: bool) -> list[int]:
        if module_gaps:
            start = self.det.kind.modnos_start_at
            return list(range(start, start + self.det.n_modules))
        return self.det.modules

    def unstacked_shape(self, roi=(), module_gaps: bool = False) -> tuple:
        """Shape of the unstacked layout: ``(modules, trains, [[gain,] pulses,] ...entry)``."""
        shape = self._read_shape(roi, module_gaps)
        if self._stages > 1:
            shape = shape[:2] + (self._stages, shape[2] // self._stages) + shape[3:]
        return shape

    def _read_shape(self, roi=(), module_gaps: bool = False) -> tuple:
        """``(modules, trains, [slots,] ...entry)``: how reads fill the output."""
        plan = self._plan()
        roi = roi if isinstance(roi, tuple) else (roi,)
        pulse = (plan.n_slots,) if plan.has_pulse_axis else ()
        return ((len(self._module_numbers(module_gaps)), len(self.det._train_ids)) + pulse
                + roi_shape(self.entry_shape, roi))

    def unstacked_coords(self, module_gaps: bool = False) -> dict:
        plan = self._plan()
        c = {'module': np.array(self._module_numbers(module_gaps)),
             'train': np.asarray(self.det._train_ids, dtype=np.uint64)}
        if plan.has_pulse_axis:
            labels = plan.labels
            if self._stages > 1:
                c['gain'] = np.arange(self._stages, dtype=np.uint8)
                labels = labels[:len(labels) // self._stages] % GAIN_STRIDE
            c[self.pulse_dim] = (labels.astype(np.uint64) if plan.use_labels and
                                 not plan.positional else labels)
        return c

    def _module_slots(self, module_gaps: bool) -> list[int]:
        if not module_gaps:
            return list(range(len(self.det.modules)))
        start = self.det.kind.modnos_start_at
        return [m - start for m in self.det.modules]

    def _out_dtype(self, astype) -> np.dtype:
        return self.dtype if astype is None else np.dtype(astype)

    def _read_setup(self, roi, astype, fill_value, module_gaps: bool):
        """(roi as a tuple, frame plan, output dtype, fill value, output shape) of a read."""
        roi = roi if isinstance(roi, tuple) else (roi,)
        dtype = self._out_dtype(astype)
        return (roi, self._plan(), dtype, default_fill(dtype, fill_value),
                self._read_shape(roi, module_gaps))

    # -- reading ----------------------------------------------------------------------
    def unstacked_ndarray(self, *, fill_value=None, roi=(), astype=None,
                          module_gaps: bool = False, _out=None) -> np.ndarray:
        """Read into one new array of :meth:`unstacked_shape` (the fast path, no labels).

        This is what ``get_array`` labels: the train and pulse axes apart, missing
        frames filled.
        """
        roi, plan, dtype, fill, shape = self._read_setup(roi, astype, fill_value, module_gaps)
        n_trains, n_slots = len(self.det._train_ids), plan.n_slots
        tasks = []
        mod_slots = self._module_slots(module_gaps)
        for i, (m, slot) in enumerate(zip(self.det.modules, mod_slots, strict=True)):
            rows, vstart = self._module_rows(m)
            runs = expand_blocks(plan, i, vstart, slice(0, n_trains), slice(0, n_slots))
            tasks.append((slot, rows, runs))
        full = (shape[0] == len(self.det.modules)
                and int(plan.covered().sum()) == len(self.det.modules) * n_trains * n_slots)
        entry_ndim = len(shape) - (3 if plan.has_pulse_axis else 2)
        out = read_box(tuple(tasks), shape, entry_ndim, dtype, fill, full, roi,
                       None if _out is None else _out.reshape(shape))
        return out.reshape(self.unstacked_shape(roi, module_gaps))


    def _chunking(self, roi, itemsize: int, chunk_bytes):
        """(trains per chunk, slots per chunk) keeping chunks under *chunk_bytes*."""
        chunk_bytes = DASK_CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
        plan = self._plan()
        frame = int(np.prod(roi_shape(self.entry_shape, roi), dtype=np.int64)) * itemsize
        n_slots = max(plan.n_slots, 1)
        per_train = max(frame * n_slots, 1)
        if per_train <= chunk_bytes:
            return max(1, chunk_bytes // per_train), n_slots
        return 1, max(1, chunk_bytes // max(frame, 1))

    def unstacked_dask_array(self, *, fill_value=None, roi=(), astype=None, chunk_bytes=None,
                             module_gaps: bool = False, labelled: bool = False,
                             _chunking=None):
        """Lazy :meth:`unstacked_ndarray` (wrapped in xarray if *labelled*).

        One chunk is one module x a block of trains (x a block of pulses when a
        single train is bigger than *chunk_bytes*, default
        :data:`exfel_data.keydata.DASK_CHUNK_BYTES`, 128 MiB).
        """
        import dask.array as da
        roi, plan, dtype, fill, shape = self._read_setup(roi, astype, fill_value, module_gaps)
        n_trains, n_slots = len(self.det._train_ids), plan.n_slots
        tpc, spc = _chunking or self._chunking(roi, dtype.itemsize, chunk_bytes)
        # An empty selection still gets one (empty) chunk per module
        train_bounds = [(a, min(a + tpc, n_trains)) for a in range(0, n_trains, tpc)] or [(0, 0)]
        slot_bounds = [(a, min(a + spc, n_slots)) for a in range(0, n_slots, spc)] or [(0, 0)]
        entry = shape[3 if plan.has_pulse_axis else 2:]
        name = f"exfel-det-{self.key}-{_token(self, roi, dtype, fill, module_gaps, tpc, spc)}"
        dsk = {}
        mod_slots = dict(zip(self._module_slots(module_gaps), self.det.modules, strict=True))
        for mi in range(shape[0]):
            m = mod_slots.get(mi)
            rows = vstart = None
            if m is not None:
                i = self.det.modules.index(m)
                rows, vstart = self._module_rows(m)
            for ti, (t0, t1) in enumerate(train_bounds):
                for si, (s0, s1) in enumerate(slot_bounds):
                    pulse = (s1 - s0,) if plan.has_pulse_axis else ()
                    cshape = (1, t1 - t0) + pulse + entry
                    tasks, covered = (), 0
                    if m is not None:
                        runs = expand_blocks(plan, i, vstart, slice(t0, t1), slice(s0, s1))
                        covered = int(runs[:, 2].sum())
                        tasks = ((0, rows, runs),) if len(runs) else ()
                    full = covered == (t1 - t0) * (s1 - s0)
                    key = (name, mi, ti) + ((si,) if plan.has_pulse_axis else ()) \
                        + (0,) * len(entry)
                    dsk[key] = (partial(read_box, tasks, cshape, len(entry), dtype, fill,
                                        full, roi),)
        chunks = ((1,) * shape[0], tuple(b - a for a, b in train_bounds))
        if plan.has_pulse_axis:
            chunks += (tuple(b - a for a, b in slot_bounds),)
        chunks += tuple((n,) for n in entry)
        arr = da.Array(dsk, name, chunks=chunks, dtype=dtype)
        if self._stages > 1:
            arr = arr.reshape(self.unstacked_shape(roi, module_gaps))
        if not labelled:
            return arr
        return self._wrap_unstacked(arr, roi, module_gaps)

    def _wrap_unstacked(self, arr, roi, module_gaps):
        import xarray as xr
        return xr.DataArray(arr, dims=self.unstacked_dims(roi),
                            coords=self.unstacked_coords(module_gaps), name=self.key)

    # -- EXtra-data's layout: frames of all trains on one axis --------------------------
    def _recorded(self) -> np.ndarray:
        """Flat (train, slot) mask of the slots some module recorded: the frames axis."""
        return self._plan().masks().any(axis=0).reshape(-1)

    def _as_frames(self, arr):
        """(modules, trains, [gain,] slots, ...) -> (modules, frames, ...), numpy or dask."""
        lead = 3 if self._stages == 1 else 4
        flat = arr.reshape((arr.shape[0], -1) + tuple(arr.shape[lead:]))
        recorded = self._recorded()
        return flat if recorded.all() else flat[:, recorded]

    def buffer_shape(self, module_gaps: bool = False, roi=()) -> tuple:
        """Shape of :meth:`ndarray`: ``(modules, frames, ...entry)`` for per-frame keys,
        ``(modules, trains, ...entry)`` for per-train keys (as EXtra-data)."""
        shape = self.unstacked_shape(roi, module_gaps)
        if not self.per_frame:
            return shape
        return shape[:1] + (int(self._recorded().sum()),) + shape[3:]

    @property
    def shape(self) -> tuple:
        return self.buffer_shape()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dimensions(self) -> list[str]:
        """Dims of :meth:`xarray`: ``module, train_pulse, ...`` for per-frame keys,
        ``module, trainId, ...`` for per-train keys (as EXtra-data)."""
        if not self.per_frame:
            return ['module', 'trainId'] + list(self.unstacked_dims()[2:])
        return ['module', 'train_pulse'] + self._entry_dims()

    @property
    def modules(self) -> list[int]:
        return self.det.modules

    @property
    def train_ids(self):
        """Train IDs (a list of ints, as the detector's)."""
        return self.det.train_ids

    def train_id_coordinates(self) -> np.ndarray:
        """Train ID of each entry on the frames (or trains) axis."""
        if not self.per_frame:
            return np.asarray(self.det._train_ids, dtype=np.uint64)
        n_slots = self._plan().n_slots
        return np.repeat(np.asarray(self.det._train_ids, np.uint64), n_slots)[self._recorded()]

    def pulse_id_coordinates(self) -> np.ndarray:
        """Pulse ID of each frame on the frames axis of :meth:`ndarray` (EXtra-data's)."""
        return self._label_coordinates('pulseId')

    def cell_id_coordinates(self) -> np.ndarray:
        """Memory cell ID of each frame on the frames axis of :meth:`ndarray`."""
        return self._label_coordinates('cellId')

    def _label_coordinates(self, index: str) -> np.ndarray:
        if not self.per_frame:
            raise ValueError(f"{self.key!r} has one entry per train, not per frame; "
                             f"use train_id_coordinates()")
        kd = self.select_pulses(self.pulses, index)
        plan = kd._plan()
        if not plan.use_labels or plan.positional:
            raise ModuleMismatchError(
                f"{self.det.detector_name}: no usable {kd.det.frames_group}.{index} "
                f"(missing, or repeated within a train)")
        labels = plan.labels % GAIN_STRIDE if self._stages > 1 else plan.labels
        n_trains = len(self.det._train_ids)
        coords = np.broadcast_to(labels, (n_trains, len(labels))).reshape(-1)[kd._recorded()]
        if kd is not self and len(coords) != int(self._recorded().sum()):
            raise ModuleMismatchError(
                f"{self.det.detector_name}: the frames by {index} do not line up with the "
                f"frames by {self.subtrain_index}; select with subtrain_index={index!r}")
        return coords.astype(np.uint64)

    def __getitem__(self, trains):
        """Select trains by position (``kd[:10]``), as EXtra-data."""
        return self.select_trains(trains)

    # Indexing selects trains: without this, Python would iterate via __getitem__ forever
    __iter__ = None

    def ndarray(self, *, fill_value=None, out: np.ndarray | None = None, roi=(), astype=None,
                module_gaps: bool = False, decompress_threads: int | None = None
                ) -> np.ndarray:
        """Read into a new array of :meth:`buffer_shape` (EXtra-data's layout).

        Per-frame keys give ``(modules, frames, ...)``: the frames of all trains one
        after another (the frames some module recorded; others filled). Use
        ``get_array`` or :meth:`unstacked_ndarray` for separate train and pulse axes.

        Parameters
        ----------
        fill_value, roi, astype, module_gaps
            As for ``get_array``.
        out : numpy.ndarray, optional
            Array of :meth:`buffer_shape` to read into (its dtype is the output dtype;
            read in place when it is C-contiguous and every frame slot is recorded).
        decompress_threads : int, optional
            Accepted for EXtra-data compatibility; HDF5 decompresses while reading,
            in the calling thread, so it does not change the result or the speed.
        """
        del decompress_threads  # see docstring: no separate decompression step here
        if out is None:
            arr = self.unstacked_ndarray(fill_value=fill_value, roi=roi, astype=astype,
                                         module_gaps=module_gaps)
            return self._as_frames(arr) if self.per_frame else arr
        want = self.buffer_shape(module_gaps, roi)
        if out.shape != want:
            raise ValueError(f"{self.key}: out= must have shape {want} (buffer_shape), "
                             f"not {out.shape}")
        direct = out.flags.c_contiguous and (not self.per_frame or self._recorded().all())
        arr = self.unstacked_ndarray(fill_value=fill_value, roi=roi, astype=out.dtype,
                                     module_gaps=module_gaps, _out=out if direct else None)
        if not direct:
            out[...] = self._as_frames(arr) if self.per_frame else arr
        return out

    def xarray(self, *, pulses=None, fill_value=None, roi=(), astype=None,
               subtrain_index: str | None = None, unstack_pulses: bool = False,
               module_gaps: bool = False):
        """Read into a labelled :class:`xarray.DataArray`.

        Per-frame keys: dims ``(module, train_pulse, ...)`` with a (train, pulse)
        MultiIndex, as EXtra-data; ``unstack_pulses=True`` gives ``(module, train,
        pulse, ...)`` (what ``get_array`` returns). Per-train keys (JUNGFRAU): dims
        ``(module, trainId, ...)`` (``train`` with ``unstack_pulses=True``).
        *pulses* / *subtrain_index* select as :meth:`select_pulses`.
        """
        kd = self if pulses is None and subtrain_index is None else \
            self.select_pulses(pulses if pulses is not None else self.pulses, subtrain_index)
        if unstack_pulses:
            kd = kd.drop_unselected_trains()
        roi = roi if isinstance(roi, tuple) else (roi,)
        arr = kd.unstacked_ndarray(fill_value=fill_value, roi=roi, astype=astype,
                                   module_gaps=module_gaps)
        if unstack_pulses:
            return kd._wrap_unstacked(arr, roi, module_gaps)
        if not kd.per_frame:
            return kd._wrap_per_train(arr, roi, module_gaps)
        return kd._wrap_frames(kd._as_frames(arr), roi, module_gaps)

    def _wrap_per_train(self, arr, roi, module_gaps):
        # EXtra-data's key-level layout names the train dim after its coordinate
        return self._wrap_unstacked(arr, roi, module_gaps).rename(train='trainId')

    def _wrap_frames(self, arr, roi, module_gaps):
        import pandas as pd
        import xarray as xr
        coords = self.unstacked_coords(module_gaps)
        names = ['train'] + (['gain'] if self._stages > 1 else []) + [self.pulse_dim]
        index = pd.MultiIndex.from_product([coords[n] for n in names], names=names)
        recorded = self._recorded()
        if not recorded.all():
            index = index[recorded]
        frames = xr.Coordinates.from_pandas_multiindex(index, 'train_pulse')
        return xr.DataArray(arr, dims=('module', 'train_pulse') + tuple(self._entry_dims(roi)),
                            coords={'module': coords['module'], **frames}, name=self.key)

    def dask_array(self, *, labelled: bool = False, fill_value=None, roi=(), astype=None,
                   chunk_bytes=None, module_gaps: bool = False, unstack_pulses: bool = False):
        """Lazy :meth:`ndarray` (labelled like :meth:`xarray` if *labelled*).

        One chunk is one module x a block of trains (*chunk_bytes*, default
        :data:`exfel_data.keydata.DASK_CHUNK_BYTES`, 128 MiB); the task graph holds
        file names and row numbers only, so it runs on a ``dask.distributed`` cluster.
        ``unstack_pulses=True`` keeps train and pulse axes apart (as ``get_dask_array``).
        """
        roi = roi if isinstance(roi, tuple) else (roi,)
        arr = self.unstacked_dask_array(fill_value=fill_value, roi=roi, astype=astype,
                                        chunk_bytes=chunk_bytes, module_gaps=module_gaps)
        if unstack_pulses:
            return self._wrap_unstacked(arr, roi, module_gaps) if labelled else arr
        if not self.per_frame:
            return self._wrap_per_train(arr, roi, module_gaps) if labelled else arr
        arr = self._as_frames(arr)
        return self._wrap_frames(arr, roi, module_gaps) if labelled else arr

    def data_availability(self, module_gaps: bool = False) -> np.ndarray:
        """(modules, frames) bool: True where a module has data (EXtra-data's).

        The frames axis is that of :meth:`ndarray`; for per-train keys (modules, trains).
        """
        if self.per_frame:
            masks = self._plan().masks()
            have = masks.reshape(masks.shape[0], -1)[:, self._recorded()]
        else:
            have = self._plan().covered() > 0
        if not module_gaps:
            return have
        out = np.zeros((self.det.n_modules,) + have.shape[1:], bool)
        out[self._module_slots(True)] = have
        return out


def _token(*parts) -> str:
    from dask.base import tokenize
    kd = parts[0]
    return tokenize(kd.det.detector_name, kd.key, kd.pulses.key(), kd.subtrain_index,
                    kd.det._train_ids, kd.det.modules, kd.det.mismatched_frames, *parts[1:])
