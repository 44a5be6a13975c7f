"""``det.write_virtual_cxi()``: a small CXI file whose frame datasets point into the run.

The layout is EXtra-data's (CXI 1.5, as CrystFEL and Cheetah read it)::

    /cxi_version                                   150
    /entry_1/experiment_identifier                 (frames,) str "trainId:pulseId"
    /entry_1/trainId, pulseId                      (frames,) uint64
    /entry_1/cellId                                (frames, modules) virtual
    /entry_1/instrument_1/detector_1/data          (frames, modules, [2,] ss, fs) virtual
    /entry_1/instrument_1/detector_1/mask, gain    as data, when the run has them
    /entry_1/instrument_1/detector_1/module_identifier   (modules,) module numbers
    /entry_1/data_1 -> /entry_1/instrument_1/detector_1

Frames are those of ``det[main key].ndarray()`` (XTDF: the frames some module recorded,
train after train; JUNGFRAU: the memory cells of each train). The frame datasets are HDF5
virtual datasets: the file holds only the mapping, so it stays valid while the run's
files stay where they are. Missing data reads as the fill values.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .frames import expand_blocks
from .readblocks import split_at_segments

__all__ = ['write_virtual_cxi']

_DEFAULT_FILL = {'gain': 0, 'mask': 0xFFFFFFFF}
_CELL_KEYS = {'image': 'image.cellId', 'data': 'data.memoryCell'}


def _module_runs(kd, i: int, m: int):
    """(segment, blocks of (virtual row, destination, length)) of module *i* (number *m*)."""
    plan = kd._plan()
    rows, vstart = kd._module_rows(m)
    runs = expand_blocks(plan, i, vstart, slice(0, len(kd.det._train_ids)),
                         slice(0, plan.n_slots))
    return rows, split_at_segments(runs, rows.segments)


def _layout(kd, n_frames: int, module_ix: list[int], n_modules: int, cells: int,
            keep_axis: bool = True):
    """A VirtualLayout (frames, modules, ...entry) mapping every module's frames of *kd*.

    Raw LPD/DSSC frames have a leading length-1 axis: kept (as EXtra-data does for the
    frame datasets, where it is the ``data_gain`` axis) unless *keep_axis* is False.
    """
    import h5py

    entry = tuple(kd.entry_shape[1:] if cells else kd.entry_shape)
    keep_axis = keep_axis and not cells and kd._squeeze
    if keep_axis:
        entry = (1,) + entry
    layout = h5py.VirtualLayout((n_frames, n_modules) + entry, dtype=kd.dtype)
    frame_of = np.cumsum(kd._recorded()) - 1 if kd.per_frame else None
    sources: dict = {}
    for i, m in enumerate(kd.det.modules):
        rows, pieces = _module_runs(kd, i, m)
        for seg, blocks in pieces:
            vsrc = sources.get((seg.filename, seg.dataset_path))
            if vsrc is None:
                with h5py.File(seg.filename, 'r') as f:
                    shape = f[seg.dataset_path].shape
                vsrc = sources[seg.filename, seg.dataset_path] = h5py.VirtualSource(
                    seg.filename, seg.dataset_path, shape=shape, dtype=kd.dtype)
            for src, dst, n in blocks.tolist():
                row = src - seg.vstart + seg.first
                if cells:
                    # One entry per train holding `cells` frames, so n trains are n * cells
                    # consecutive frames: one mapping (HDF5 pairs the elements in order)
                    layout[dst * cells:(dst + n) * cells, module_ix[i]] = vsrc[row:row + n]
                    continue
                f0 = int(frame_of[dst])
                if rows.squeeze_first and not keep_axis:
                    layout[f0:f0 + n, module_ix[i]] = vsrc[row:row + n, 0]
                else:
                    layout[f0:f0 + n, module_ix[i]] = vsrc[row:row + n]
    return layout


def write_virtual_cxi(det, filename, fillvalues: dict | None = None) -> Path:
    """Write a CXI file of virtual datasets for detector *det*; see the module docstring.

    Parameters
    ----------
    det : MultiModuleDetector
        E.g. ``AGIPD1M(run)``, with its train and module selection.
    filename : str or path-like
        Output file (written to a temporary name, then renamed).
    fillvalues : dict, optional
        Fill values for missing data by dataset name (``'data'``, ``'gain'``, ``'mask'``):
        default NaN for float data and 0 for integers, 0 for gain, 0xffffffff for the mask.
    """
    import h5py

    filename = Path(filename)
    group, image = det.kind.main_key.split('.', 1)
    main = det[det.kind.main_key]
    cells = 0 if main.per_frame else int(main.entry_shape[0])
    start = det.kind.modnos_start_at
    module_numbers = list(range(start, start + det.n_modules))
    module_ix = [m - start for m in det.modules]
    names = {image: det.kind.main_key}
    for name in ('gain', 'mask'):
        if f'{group}.{name}' in det:
            names[name] = f'{group}.{name}'
    keys = {name: det[key] for name, key in names.items()}

    train_ids = main.train_id_coordinates()
    if cells:
        n_frames = len(train_ids) * cells
        train_ids = np.repeat(train_ids, cells)
        pulse_ids = np.tile(np.arange(cells, dtype=np.uint64), len(det._train_ids))
    else:
        n_frames = len(train_ids)
        plan = main._plan()
        labels = plan.labels.astype(np.uint64)
        pulse_ids = np.tile(labels, len(det._train_ids))[main._recorded()]
    experiment_ids = np.char.add(np.char.add(train_ids.astype(str), ':'),
                                 pulse_ids.astype(str))

    fills = {image: np.nan if main.dtype.kind == 'f' else 0, **_DEFAULT_FILL,
             **(fillvalues or {})}
    unknown = sorted(set(fillvalues or ()) - {image, 'gain', 'mask'})
    if unknown:
        raise ValueError(f"fillvalues for unknown dataset(s) {unknown}; use "
                         f"{[image, 'gain', 'mask']}")
    layouts = {name: _layout(kd, n_frames, module_ix, det.n_modules, cells)
               for name, kd in keys.items()}
    cell_kd = det[_CELL_KEYS[group]] if _CELL_KEYS[group] in det else None

    tmp = filename.with_name(f'.{filename.name}.{os.getpid()}.tmp')
    try:
        with h5py.File(tmp, 'w', libver=('v110', 'v110')) as f:
            f.create_dataset('cxi_version', data=[150])
            entry = f.create_group('entry_1')
            entry.create_dataset('experiment_identifier', data=experiment_ids.astype(object),
                                 dtype=h5py.string_dtype())
            meta = det.data.run_metadata() if hasattr(det.data, 'run_metadata') else {}
            if 'proposalNumber' in meta and 'runNumber' in meta:
                entry.attrs['name'] = (f"EuXFEL proposal {meta['proposalNumber']} run "
                                       f"{meta['runNumber']}")
                entry.attrs['euxfelProposalNumber'] = meta['proposalNumber']
                entry.attrs['euxfelRunNumber'] = meta['runNumber']
            entry.create_dataset('pulseId', data=pulse_ids)
            entry.create_dataset('trainId', data=train_ids)
            if cell_kd is not None:
                cell_layout = _layout(cell_kd, n_frames, module_ix, det.n_modules, cells,
                                      keep_axis=False)
                entry.create_virtual_dataset('cellId', cell_layout).attrs['axes'] = \
                    'experiment_identifier:module_identifier'
            dgrp = entry.create_group('instrument_1/detector_1')
            dgrp.attrs['name'] = det.detector_name
            ndim = len(layouts[image].shape)
            axes = 'experiment_identifier:module_identifier:' + (
                'y:x' if ndim == 4 else 'data_gain:y:x')
            if ndim == 5:
                n_planes = layouts[image].shape[2]
                entry.create_dataset('data_gain', dtype=h5py.string_dtype(), data=np.array(
                    [image, 'gain'] if n_planes == 2 else [image], dtype=object))
                dgrp['data_gain'] = h5py.SoftLink('/entry_1/data_gain')
            for name, layout in layouts.items():
                fill = layout.dtype.type(fills[name])
                ds = dgrp.create_virtual_dataset('data' if name == image else name, layout,
                                                 fillvalue=fill)
                ds.attrs['axes'] = axes
            dgrp['experiment_identifier'] = h5py.SoftLink('/entry_1/experiment_identifier')
            dgrp.create_dataset('module_identifier', data=module_numbers)
            f['entry_1/data_1'] = h5py.SoftLink('/entry_1/instrument_1/detector_1')
        os.replace(tmp, filename)
    finally:
        if tmp.exists():
            tmp.unlink()
    return filename
