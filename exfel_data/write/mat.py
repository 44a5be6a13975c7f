"""``--to mat``: a MATLAB (v5) ``.mat`` file via scipy (optional extra ``formats``).

MATLAB names must be identifiers, so each source becomes a struct variable with a
sanitised name and each key a field holding a struct with ``data`` and ``trainId``::

    trainId, timestamp                      (trains, 1) uint64
    SA1_XTD2_XGM_DOOCS_MAIN.pulseEnergy_photonFlux_value.data      (rows, ...)
    SA1_XTD2_XGM_DOOCS_MAIN.pulseEnergy_photonFlux_value.trainId   (rows, 1)
    source_names   cell (sources, 2): {variable, source}
    key_names      cell (keys, 3): {variable, field, key}

The MAT v5 format and scipy write whole arrays, so the selection is held in memory; it
is refused above :data:`MAX_BYTES` (use ``--trains`` to split, or npz/zarr/exdf).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from .base import Progress, Writer, fixed_strings, require
from .plan import ConversionError, ConversionPlan

PART_VAR = "exfel_data_part"
#: MAT v5 cannot hold variables over 2 GiB; scipy needs everything in memory.
MAX_BYTES = 2 * 1024**3 - 1024


def matlab_name(text: str, taken: set[str]) -> str:
    """A unique MATLAB identifier (letters, digits, '_', at most 63 chars) for ``text``."""
    name = re.sub(r"\W", "_", text).strip("_") or "x"
    if not name[0].isalpha():
        name = "x_" + name
    if len(name) > 63 or name in taken:
        digest = hashlib.sha1(text.encode()).hexdigest()[:6]
        name = f"{name[:56]}_{digest}"
    taken.add(name)
    return name


class MatWriter(Writer):
    name = "mat"

    @classmethod
    def check(cls, plan: ConversionPlan, **options) -> None:
        require("scipy.io", "formats", f"--to {cls.name}")
        super().check(plan)
        # scipy would write them as MATLAB structs, read back with other dtypes.
        cls.refuse_structured(plan)
        if plan.nbytes > MAX_BYTES:
            raise ConversionError(
                f"mat: the selection holds {plan.nbytes / 1e9:.1f} GB; MAT v5 files hold at "
                "most 2 GiB. Select fewer keys or trains (--trains), or use --to npz, zarr "
                "or exdf")

    def write(self) -> None:
        sio = require("scipy.io", "formats", f"--to {self.name}")
        plan = self.plan
        out: dict = {"trainId": plan.train_ids.astype(np.uint64).reshape(-1, 1),
                     "timestamp": plan.timestamps.astype(np.uint64).reshape(-1, 1)}
        taken = set(out) | {"source_names", "key_names", PART_VAR}
        src_vars: dict[str, str] = {}
        fields: dict[str, set] = {}
        key_names = []
        for kp in plan.keys:
            if kp.source not in src_vars:
                src_vars[kp.source] = matlab_name(kp.source, taken)
                fields[kp.source] = set()
                out[src_vars[kp.source]] = {}
            field = matlab_name(kp.key, fields[kp.source])
            block = plan.read_key(kp)  # MAT v5 is written whole anyway
            data = fixed_strings(block.data) if kp.is_string else block.data
            out[src_vars[kp.source]][field] = {"data": data,
                                               "trainId": block.train_ids.reshape(-1, 1)}
            key_names.append([src_vars[kp.source], field, kp.key])
            self.progress.update(block.nbytes)
        out["source_names"] = np.array([[v, s] for s, v in src_vars.items()], dtype=object)
        out["key_names"] = np.array(key_names, dtype=object)
        info = plan.part_info()
        if info:
            out[PART_VAR] = json.dumps(info, sort_keys=True)
        with open(self.path, "wb") as fh:
            sio.savemat(fh, out, long_field_names=True, do_compression=False, oned_as="column")

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        sio = require("scipy.io", "formats", f"--to {cls.name}")
        m = sio.loadmat(str(path), variable_names=[PART_VAR])
        if PART_VAR not in m:
            raise ConversionError(f"{path} is not a part output (made with --part i/N)")
        return json.loads(str(np.asarray(m[PART_VAR]).ravel()[0]))

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        sio = require("scipy.io", "formats", f"--to {cls.name}")
        mats = [sio.loadmat(str(p), squeeze_me=False, struct_as_record=True) for p in parts]
        first = mats[0]
        merged: dict = {}
        for name in first:
            if name.startswith("__") or name == PART_VAR:
                continue
            if name in ("source_names", "key_names"):
                merged[name] = first[name]
            elif name in ("trainId", "timestamp"):
                merged[name] = np.concatenate([m[name] for m in mats])
            else:
                src = {}
                for field in first[name].dtype.names:
                    parts_ = [m[name][field][0, 0] for m in mats]
                    src[field] = {
                        "data": np.concatenate([p["data"][0, 0] for p in parts_]),
                        "trainId": np.concatenate([p["trainId"][0, 0] for p in parts_]),
                    }
                merged[name] = src
        with open(out, "wb") as fh:
            sio.savemat(fh, merged, long_field_names=True, do_compression=False,
                        oned_as="column")
        progress.update(sum(p.stat().st_size for p in parts))
