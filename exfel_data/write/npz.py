"""``--to npz``: one NumPy array per key in an uncompressed ``.npz`` (zip) archive.

Arrays are streamed into the zip member block by block (``.npy`` header first, then
raw rows), so memory stays at one block however large the key is. ``np.load`` reads
the result as usual.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .base import Progress, Writer, fixed_strings, part_json
from .npy import npy_bytes, npy_header, read_npy_header
from .plan import ConversionError

PART_MEMBER = "_exfel_data_part"


class NpzWriter(Writer):
    name = "npz"
    direct_parallel = "exfel_data.write.npz_direct"

    def _zip(self, path: Path) -> zipfile.ZipFile:
        return zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def write(self) -> None:
        plan = self.plan
        with self._zip(self.path) as zf:
            zf.writestr("trainId.npy", npy_bytes(plan.train_ids.astype(np.uint64)))
            zf.writestr("timestamp.npy", npy_bytes(plan.timestamps.astype(np.uint64)))
            info = part_json(plan)
            if info:
                zf.writestr(f"{PART_MEMBER}.npy", npy_bytes(np.array(info)))
            for kp in plan.keys:
                if kp.is_string:
                    # Strings need their longest length first; string keys are small.
                    block = plan.read_key(kp)
                    zf.writestr(f"{kp.name}.npy", npy_bytes(fixed_strings(block.data)))
                    zf.writestr(f"{kp.name}.trainId.npy", npy_bytes(block.train_ids))
                    self.progress.update(kp.nbytes)
                    continue
                shape = (kp.n_rows,) + tuple(kp.entry_shape)
                tids = np.empty(kp.n_rows, dtype=np.uint64)
                with zf.open(f"{kp.name}.npy", "w", force_zip64=True) as fh:
                    fh.write(npy_header(kp.dtype, shape))
                    row = 0
                    for block in plan.key_blocks(kp, reuse=True):  # written at once
                        fh.write(np.ascontiguousarray(block.data).data)
                        tids[row:row + len(block.train_ids)] = block.train_ids
                        row += len(block.train_ids)
                        self.progress.update(block.nbytes)
                if row != kp.n_rows:
                    raise ConversionError(f"{kp}: expected {kp.n_rows} rows, read {row}")
                zf.writestr(f"{kp.name}.trainId.npy", npy_bytes(tids))

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        with np.load(path) as npz:
            if PART_MEMBER not in npz.files:
                raise ConversionError(f"{path} is not a part output (made with --part i/N)")
            return json.loads(str(npz[PART_MEMBER]))

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        zips = [zipfile.ZipFile(p) for p in parts]
        try:
            names = [n for n in zips[0].namelist() if n != f"{PART_MEMBER}.npy"]
            for p, z in zip(parts[1:], zips[1:], strict=True):
                other = [n for n in z.namelist() if n != f"{PART_MEMBER}.npy"]
                if sorted(other) != sorted(names):
                    raise ConversionError(f"{p} holds different arrays than {parts[0]}")
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zo:
                for name in names:
                    _concat_member(zips, name, zo, progress)
        finally:
            for z in zips:
                z.close()


def _concat_member(zips: list[zipfile.ZipFile], name: str, zo: zipfile.ZipFile,
                   progress: Progress) -> None:
    """Concatenate one array along its first axis across parts, streaming the rows."""
    headers = []
    for z in zips:
        with z.open(name) as fh:
            headers.append(read_npy_header(fh))
    dtypes = {h[1] for h in headers}
    if len(dtypes) > 1:  # e.g. strings of different widths: small, load them
        arrays = [np.load(z.open(name)) for z in zips]
        zo.writestr(name, npy_bytes(np.concatenate(arrays)))
        return
    dtype = headers[0][1]
    shape = (sum(h[0][0] for h in headers),) + tuple(headers[0][0][1:])
    with zo.open(name, "w", force_zip64=True) as fo:
        fo.write(npy_header(dtype, shape))
        for z in zips:
            with z.open(name) as fh:
                read_npy_header(fh)
                while chunk := fh.read(16 * 1024**2):
                    fo.write(chunk)
                    progress.update(len(chunk))
