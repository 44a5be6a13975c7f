"""``--to zarr``: a Zarr (v3) store, one array per key (optional extra ``formats``).

Layout (group paths)::

    trainId                 (trains,) uint64       selected trains
    timestamp               (trains,) uint64       ns since the epoch (0 = unknown)
    <source>/<key>          (rows, *entry_shape)   data, rows ordered by train
    <source>/<key>.trainId  (rows,) uint64         train ID of each row

Root attributes: ``run``, ``format`` and, for part outputs, ``exfel_data_part``.
Arrays are written block by block, chunked along the first axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Progress, Writer, fixed_strings, require
from .plan import ConversionError

PART_ATTR = "exfel_data_part"
CHUNK_BYTES = 16 * 1024**2


def _chunks(shape: tuple, itemsize: int) -> tuple:
    row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    return (max(1, min(shape[0], CHUNK_BYTES // row)),) + tuple(shape[1:])


def _create(group, name: str, shape: tuple, dtype):
    dtype = str if np.dtype(dtype).kind in "OUS" else np.dtype(dtype)
    itemsize = 16 if dtype is str else np.dtype(dtype).itemsize
    return group.create_array(name=name, shape=shape, dtype=dtype,
                              chunks=_chunks(shape, itemsize))


class ZarrWriter(Writer):
    name = "zarr"
    directory = True

    @classmethod
    def check(cls, plan, **options) -> None:
        require("zarr", "formats", f"--to {cls.name}")
        super().check(plan)
        cls.refuse_structured(plan)

    def write(self) -> None:
        zarr = require("zarr", "formats", f"--to {self.name}")
        plan = self.plan
        root = zarr.open_group(store=str(self.path), mode="w")
        root.attrs["run"] = plan.run_path
        root.attrs["format"] = "exfel-data zarr 1"
        if plan.part is not None:
            root.attrs[PART_ATTR] = plan.part_info()
        root.create_array(name="trainId", data=plan.train_ids.astype(np.uint64))
        root.create_array(name="timestamp", data=plan.timestamps.astype(np.uint64))
        for kp in plan.keys:
            arr = _create(root, kp.name, (kp.n_rows,) + tuple(kp.entry_shape), kp.dtype)
            tids = np.empty(kp.n_rows, dtype=np.uint64)
            row = 0
            for block in plan.key_blocks(kp):
                data = fixed_strings(block.data) if kp.is_string else block.data
                n = len(data)
                if n:
                    arr[row:row + n] = data
                tids[row:row + n] = block.train_ids
                row += n
                self.progress.update(block.nbytes)
            root.create_array(name=f"{kp.name}.trainId", data=tids)

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        zarr = require("zarr", "formats", f"--to {cls.name}")
        attrs = dict(zarr.open_group(store=str(path), mode="r").attrs)
        if PART_ATTR not in attrs:
            raise ConversionError(f"{path} is not a part output (made with --part i/N)")
        return attrs[PART_ATTR]

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        zarr = require("zarr", "formats", f"--to {cls.name}")
        groups = [zarr.open_group(store=str(p), mode="r") for p in parts]
        names = sorted(name for name, _ in groups[0].arrays()) + [
            f"{g}/{name}" for g in _subgroups(groups[0]) for name in _array_names(groups[0][g])]
        root = zarr.open_group(store=str(out), mode="w")
        for k, v in groups[0].attrs.items():
            if k != PART_ATTR:
                root.attrs[k] = v
        for name in names:
            arrays = [g[name] for g in groups]
            shape = (sum(a.shape[0] for a in arrays),) + tuple(arrays[0].shape[1:])
            dest = _create(root, name, shape, arrays[0].dtype if arrays[0].dtype.kind not in
                           "OUT" else np.dtype(object))
            pos = 0
            for a in arrays:
                step = a.chunks[0] if a.shape[0] else 1
                for s in range(0, a.shape[0], step):
                    block = a[s:s + step]
                    dest[pos + s:pos + s + len(block)] = block
                    progress.update(getattr(block, "nbytes", 0))
                pos += a.shape[0]


def _subgroups(group, prefix: str = "") -> list[str]:
    out = []
    for name, sub in group.groups():
        path = f"{prefix}{name}"
        out.append(path)
        out += _subgroups(sub, path + "/")
    return out


def _array_names(group) -> list[str]:
    return sorted(name for name, _ in group.arrays())
