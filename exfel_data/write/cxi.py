"""``--to cxi``: multi-module detector frames in the CXI layout crystallography tools read.

One HDF5 file (CXI version 1.5, as CrystFEL / Cheetah expect)::

    /cxi_version                                  150
    /entry_1/trainId                              (frames,) uint64
    /entry_1/pulseId                              (frames,) uint64
    /entry_1/cellId                               (frames, modules) uint16
    /entry_1/experiment_identifier                (frames,) str  "trainId:pulseId"
    /entry_1/instrument_1/detector_1/data         (frames, modules, ss, fs)
                                                  (raw AGIPD: (frames, modules, 2, ss, fs))
    /entry_1/instrument_1/detector_1/mask, gain   as data, when present in the run
    /entry_1/instrument_1/detector_1/module_identifier   (modules,) module numbers
    /entry_1/instrument_1/detector_1/experiment_identifier -> /entry_1/experiment_identifier
    /entry_1/data_1 -> /entry_1/instrument_1/detector_1

A frame is one position within a train; a train has as many frames as its module with
the most. Modules with fewer frames (or none) in a train are filled (NaN for float data,
0 for integers, 0xffffffff for the mask).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..detectors.identify import detector_modules
from .base import Progress, Writer, part_json
from .h5output import h5_output
from .plan import ConversionError, ConversionPlan, frame_numbers

PART_ATTR = "exfel_data_part"
_XTDF_KEYS = {"data": "image.data", "mask": "image.mask", "gain": "image.gain",
              "cellId": "image.cellId", "pulseId": "image.pulseId"}
# JUNGFRAU: one entry per train holding all memory cells; each cell is a frame.
_JF_KEYS = {"data": "data.adc", "mask": "data.mask", "gain": "data.gain",
            "cellId": "data.memoryCell"}
_FILL = {"mask": 0xFFFFFFFF, "gain": 0}


@dataclass
class _Module:
    number: int
    source: str
    keys: dict  # dataset name ('data', 'mask', 'gain', 'cellId', 'pulseId') -> KeyData
    cells: int = 0  # JUNGFRAU: frames (memory cells) per entry; 0 for XTDF (one per entry)

    def frame_shape(self, name: str) -> tuple:
        shape = tuple(self.keys[name].entry_shape)
        return shape[1:] if self.cells else shape

    def frames(self, rows: np.ndarray, row_tids: np.ndarray):
        """Rows of a key as frames, with the train ID of each frame."""
        if not self.cells:
            return rows, row_tids
        return rows.reshape((-1,) + rows.shape[2:]), np.repeat(row_tids, self.cells)


def _modules(plan: ConversionPlan) -> tuple[str, list[_Module]]:
    """The detector in the plan and its selected modules (sorted by number); worked out
    once, in ``check``."""
    if "cxi" not in plan.checked:
        plan.checked["cxi"] = _find_modules(plan)
    return plan.checked["cxi"]


def _find_modules(plan: ConversionPlan) -> tuple[str, list[_Module]]:
    selected = set(plan.sources())
    found: dict[str, list[_Module]] = {}
    for det, modules in detector_modules(selected).items():
        for number, src in modules.items():
            run_keys = set(plan.run.keys_for_source(src))
            if "image.data" in run_keys:  # AGIPD, LPD, DSSC
                mapping, cells = _XTDF_KEYS, 0
            elif "data.adc" in run_keys:  # JUNGFRAU
                mapping, cells = _JF_KEYS, plan.run[src, "data.adc"].entry_shape[0]
            else:
                continue
            keys = {name: plan.run[src, key] for name, key in mapping.items() if key in run_keys}
            found.setdefault(det, []).append(_Module(number, src, keys, cells))
    if not found:
        raise ConversionError(
            "cxi: no detector module source (AGIPD/LPD/DSSC …/DET/<n>CH0:xtdf with image.data, "
            "JUNGFRAU …/DET/JNGFR<n>, MODULE_<n> or RECEIVER-<n> with data.adc) in the "
            "selection; select one with e.g. --select '*/DET/*'")
    if len(found) > 1:
        raise ConversionError(f"cxi: the selection holds several detectors "
                              f"({', '.join(sorted(found))}); select one")
    det, mods = found.popitem()
    return det, sorted(mods, key=lambda m: m.number)


def _fill(name: str, dtype: np.dtype):
    if name in _FILL:
        return dtype.type(_FILL[name])
    return dtype.type(np.nan) if dtype.kind == "f" else dtype.type(0)


class CxiWriter(Writer):
    name = "cxi"

    @classmethod
    def check(cls, plan: ConversionPlan, **options) -> None:
        super().check(plan)
        _modules(plan)

    def write(self) -> None:
        plan = self.plan
        det, mods = _modules(plan)
        others = sorted({str(k) for k in plan.keys if k.source not in {m.source for m in mods}})
        if others:
            print(f"cxi: not written (not detector frames): {', '.join(others[:5])}"
                  f"{' ...' if len(others) > 5 else ''}", file=sys.stderr)
        counts = np.stack([m.keys["data"].data_counts(labelled=False).astype(np.int64)
                           * max(m.cells, 1) for m in mods])
        frames_per_train = counts.max(axis=0)
        uneven = np.flatnonzero((counts != frames_per_train).any(axis=0))
        if uneven.size:
            print(f"cxi: {uneven.size} train(s) where modules have different frame counts "
                  f"(e.g. train {plan.train_ids[uneven[0]]}); missing frames are filled",
                  file=sys.stderr)
        n_frames = int(frames_per_train.sum())
        names = [n for n in ("data", "mask", "gain") if all(n in m.keys for m in mods)]
        frame_shape = mods[0].frame_shape("data")
        with h5_output(self.path) as f:
            info = part_json(plan)
            if info:
                f.attrs[PART_ATTR] = info
            f.create_dataset("cxi_version", data=[150])
            grp = f.create_group("entry_1")
            grp.attrs["name"] = f"{det} from {plan.run_path}"
            for k in ("proposalNumber", "runNumber"):
                if k in plan.metadata:
                    grp.attrs[f"euxfel{k[0].upper()}{k[1:]}"] = plan.metadata[k]
            dgrp = grp.create_group("instrument_1/detector_1")
            dgrp.attrs["name"] = det
            dsets = {}
            for n in names:
                kd, fshape = mods[0].keys[n], mods[0].frame_shape(n)
                dsets[n] = dgrp.create_dataset(
                    n, (n_frames, len(mods)) + fshape, dtype=kd.dtype,
                    chunks=(1, len(mods)) + fshape if n_frames else None,
                    fillvalue=_fill(n, np.dtype(kd.dtype)))
                extra = ":data_gain" if len(fshape) == 3 else ""
                dsets[n].attrs["axes"] = f"experiment_identifier:module_identifier{extra}:y:x"
            tid_ds = grp.create_dataset("trainId", (n_frames,), dtype=np.uint64)
            pid_ds = grp.create_dataset("pulseId", (n_frames,), dtype=np.uint64)
            cell_ds = grp.create_dataset("cellId", (n_frames, len(mods)), dtype=np.uint16)
            cell_ds.attrs["axes"] = "experiment_identifier:module_identifier"
            exp_ds = grp.create_dataset("experiment_identifier", (n_frames,),
                                        dtype=h5py.string_dtype())
            dgrp["experiment_identifier"] = h5py.SoftLink("/entry_1/experiment_identifier")
            dgrp.create_dataset("module_identifier", data=[m.number for m in mods])
            grp["data_1"] = h5py.SoftLink("/entry_1/instrument_1/detector_1")

            budget = max(plan.block_bytes // max(len(mods), 1), 1)
            per_frame = max(1, int(np.prod(frame_shape)) *
                            np.dtype(mods[0].keys["data"].dtype).itemsize)
            frame_start = 0
            t = 0
            while t < plan.n_trains:
                # Consecutive trains holding about `budget` bytes per module.
                ends = np.cumsum(frames_per_train[t:]) * per_frame
                stop = t + max(1, int(np.searchsorted(ends, budget, side="right")))
                self._write_block(mods, names, dsets, (tid_ds, pid_ds, cell_ds, exp_ds),
                                  slice(t, stop), frames_per_train, frame_start)
                frame_start += int(frames_per_train[t:stop].sum())
                t = stop

    def _write_block(self, mods, names, dsets, id_dsets, trains: slice,
                     frames_per_train: np.ndarray, frame_start: int) -> None:
        plan = self.plan
        tid_ds, pid_ds, cell_ds, exp_ds = id_dsets
        fpt = frames_per_train[trains]
        nf = int(fpt.sum())
        if nf == 0:
            return
        tids = plan.train_ids[trains]
        offsets = np.cumsum(fpt) - fpt
        blocks = {n: np.full((nf, len(mods)) + mods[0].frame_shape(n),
                             _fill(n, np.dtype(mods[0].keys[n].dtype)),
                             dtype=mods[0].keys[n].dtype) for n in names}
        pulse = np.zeros(nf, dtype=np.uint64)
        have_pulse = np.zeros(nf, dtype=bool)
        cells = np.zeros((nf, len(mods)), dtype=np.uint16)
        for mi, mod in enumerate(mods):
            for n in [*names, "cellId", "pulseId"]:
                if n not in mod.keys:
                    continue
                sub = mod.keys[n].select_trains(trains)
                kp_dtype = np.dtype(sub.dtype)
                rows, row_tids = mod.frames(sub.ndarray(), sub.train_id_coordinates())
                dest = offsets[np.searchsorted(tids, row_tids)] + frame_numbers(row_tids)
                if n in blocks:
                    blocks[n][dest, mi] = rows
                    self.progress.update(rows.size * kp_dtype.itemsize)
                elif n == "cellId":
                    cells[dest, mi] = rows.reshape(len(rows), -1)[:, 0]
                else:
                    vals = rows.reshape(len(rows), -1)[:, 0]
                    new = ~have_pulse[dest]
                    pulse[dest[new]] = vals[new]
                    have_pulse[dest] = True
        # No pulse ID recorded (JUNGFRAU): the frame's position in its train.
        no_pulse = ~have_pulse
        pulse[no_pulse] = (np.arange(nf) - np.repeat(offsets, fpt.astype(np.intp)))[no_pulse]
        sl = slice(frame_start, frame_start + nf)
        for n in names:
            dsets[n][sl] = blocks[n]
        frame_tids = np.repeat(tids, fpt.astype(np.intp))
        tid_ds[sl] = frame_tids
        pid_ds[sl] = pulse
        cell_ds[sl] = cells
        exp_ds[sl] = [f"{t}:{p}" for t, p in zip(frame_tids.tolist(), pulse.tolist(),
                                                  strict=True)]

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        with h5py.File(path, "r") as f:
            if PART_ATTR not in f.attrs:
                raise ConversionError(f"{path} is not a part output (made with --part i/N)")
            return json.loads(f.attrs[PART_ATTR])

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        merge_h5_frames(parts, out, progress)


def merge_h5_frames(parts: list[Path], out: Path, progress: Progress) -> None:
    """Concatenate every dataset along axis 0 (copying block by block), keep links/attrs."""
    files = [h5py.File(p, "r") for p in parts]
    try:
        first = files[0]
        datasets: list[str] = []
        links: dict[str, str] = {}

        def visit(name, link):
            if isinstance(link, h5py.SoftLink):
                links[name] = link.path
            elif isinstance(link, h5py.HardLink) and isinstance(first[name], h5py.Dataset):
                datasets.append(name)

        first.visititems_links(visit)
        with h5_output(out) as fo:
            for k, v in first.attrs.items():
                if k != PART_ATTR:
                    fo.attrs[k] = v
            for name in datasets:
                src0 = first[name]
                if name in ("cxi_version", "entry_1/instrument_1/detector_1/module_identifier"):
                    fo.create_dataset(name, data=src0[()])
                    continue
                n = sum(f[name].shape[0] for f in files)
                ds = fo.create_dataset(name, (n,) + src0.shape[1:], dtype=src0.dtype,
                                       chunks=src0.chunks if n else None,
                                       fillvalue=src0.fillvalue)
                for k, v in src0.attrs.items():
                    ds.attrs[k] = v
                pos = 0
                for f in files:
                    d = f[name]
                    step = max(1, (64 * 1024**2) // max(d[0:1].nbytes, 1)) if len(d) else 1
                    for a in range(0, len(d), step):
                        block = d[a:a + step]
                        ds[pos + a:pos + a + len(block)] = block
                        progress.update(block.nbytes)
                    pos += len(d)
            for name in sorted(first):
                _copy_group_attrs(first, fo, name)
            for name, target in links.items():
                fo[name] = h5py.SoftLink(target)
    finally:
        for f in files:
            f.close()


def _copy_group_attrs(src: h5py.File, dst: h5py.File, name: str) -> None:
    link = src.get(name, getlink=True)
    if isinstance(link, h5py.SoftLink) or not isinstance(src[name], h5py.Group):
        return
    g = dst.require_group(name)
    for k, v in src[name].attrs.items():
        g.attrs[k] = v
    for child in src[name]:
        _copy_group_attrs(src, dst, f"{name}/{child}")
