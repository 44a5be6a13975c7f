"""``--to exdf``: a run folder in EXDF format 1.3 holding only the selection.

Sources keep their aggregator and data class, so a selection of
``RAW-R0238-AGIPD00-S*.h5`` and ``RAW-R0238-DA01-S*.h5`` becomes
``RAW-R0238-AGIPD00-S00000.h5`` and ``RAW-R0238-DA01-S00000.h5`` (part ``i`` of N
writes sequence ``i - 1``, so merging parts is just putting the files together).
Each file lists all selected trains; datasets keep the input's chunking and
compression; control keys always carry their ``value`` and ``timestamp``; run values
(``RUN/``) and Karabo key attributes of the selected sources are copied. Files are
written with the shared low-level :class:`~exfel_data.write.exdf_writer.ExdfWriter`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from .base import FolderWriter
from .exdf_writer import KEY_ATTRIBUTES, STRING_DTYPE, ExdfWriter
from .plan import ConversionError, ConversionPlan, KeyPlan

_FILE_NAME = re.compile(
    r"^(?P<cls>[A-Za-z]+)-R(?P<run>\d+)-(?P<agg>[A-Za-z0-9]+)-S(?P<seq>\d+)\.h5$")


def _origin(kp: KeyPlan) -> tuple[str, str]:
    """(data class, aggregator) of the files a key comes from."""
    for fa in getattr(kp.keydata, "files", []):
        m = _FILE_NAME.match(Path(fa.filename).name)
        if m:
            return m["cls"].upper(), m["agg"].upper()
    return "RAW", "DA01"


def _base_key(key: str) -> str:
    for suffix in (".value", ".timestamp"):
        if key.endswith(suffix):
            return key[:-len(suffix)]
    return key


class ExdfConverter(FolderWriter):
    name = "exdf"
    merge_pattern = "*.h5"

    def write(self) -> None:
        plan = self.plan
        self.write_part_file()
        files: dict[tuple[str, str], list[KeyPlan]] = defaultdict(list)
        for kp in plan.keys:
            files[_origin(kp)].append(kp)
        run_no = int(plan.metadata.get("runNumber", 0) or 0)
        seq = plan.part[0] - 1 if plan.part else 0
        for (dclass, agg), keys in sorted(files.items()):
            name = f"{dclass}-R{run_no:04d}-{agg}-S{seq:05d}.h5"
            self._write_file(self.path / name, keys, run_no, seq)

    def write_one_file(self, path: Path) -> None:
        """All of the plan in one file at *path* (``DataCollection.write``)."""
        run_no = int(self.plan.metadata.get("runNumber", 0) or 0)
        self._write_file(Path(path), self.plan.keys, run_no, 0)

    def _write_file(self, path: Path, keys: list[KeyPlan], run_no: int, seq: int) -> None:
        plan = self.plan
        proposal = int(plan.metadata.get("proposalNumber", 0) or 0)
        meta = {k: str(plan.metadata[k]) for k in ("sample", "runType")
                if plan.metadata.get(k)}
        w = ExdfWriter(path, plan.train_ids, format_version="1.3", timestamps=_timestamps(plan),
                       run_number=run_no, proposal=proposal, sequence=seq, metadata=meta)
        try:
            by_source: dict[str, list[KeyPlan]] = defaultdict(list)
            for kp in keys:
                by_source[kp.source].append(kp)
            for source, skeys in sorted(by_source.items()):
                if skeys[0].section == "CONTROL":
                    self._control_source(w, source, skeys)
                else:
                    self._instrument_source(w, source, skeys)
                for key, value in plan.run_values.get(source, {}).items():
                    if not key.endswith(".timestamp"):
                        w.add_run_key(source, _base_key(key), value)
            w.close()
        except BaseException:
            w.abort()
            raise

    def _control_source(self, w: ExdfWriter, source: str, skeys: list[KeyPlan]) -> None:
        plan = self.plan
        w.add_control_source(source, counts=skeys[0].counts)
        for base in sorted({_base_key(kp.key) for kp in skeys}):
            # A valid control key has both value and timestamp, whichever was selected.
            value = plan.run[source, f"{base}.value"]
            stamp = plan.run[source, f"{base}.timestamp"]
            dtype = STRING_DTYPE if np.dtype(value.dtype).kind in "OSU" else value.dtype
            w.add_control_key(source, base, dtype, value.entry_shape,
                              attrs=_attrs(value), chunks=_storage(value)["chunks"])
            for key, kd in ((f"{base}.value", value), (f"{base}.timestamp", stamp)):
                kp = KeyPlan(source, key, "CONTROL", kd, np.dtype(kd.dtype), kd.entry_shape,
                             kd.data_counts(labelled=False).astype(np.int64))
                self._copy_rows(w, kp)

    def _instrument_source(self, w: ExdfWriter, source: str, skeys: list[KeyPlan]) -> None:
        groups: dict[str, np.ndarray] = {}
        for kp in skeys:
            group = kp.key.partition(".")[0]
            if group in groups and not np.array_equal(groups[group], kp.counts):
                raise ConversionError(f"exdf: {source}: keys of index group {group!r} have "
                                      f"different rows per train ({kp.key})")
            groups.setdefault(group, kp.counts)
        w.add_instrument_source(source, groups)
        for kp in skeys:
            dtype = STRING_DTYPE if kp.is_string else kp.dtype
            w.add_instrument_key(source, kp.key, dtype, kp.entry_shape,
                                 attrs=_attrs(kp.keydata), **_storage(kp.keydata))
            self._copy_rows(w, kp)

    def _copy_rows(self, w: ExdfWriter, kp: KeyPlan) -> None:
        row = 0
        for block in self.plan.key_blocks(kp, reuse=True):  # written before the next
            w.write(kp.source, kp.key, block.data, start=row)  # encodes str itself
            row += len(block.data)
            self.progress.update(block.nbytes)
        if row != kp.n_rows:
            raise ConversionError(f"exdf: {kp}: expected {kp.n_rows} rows, read {row}")


def _timestamps(plan: ConversionPlan):
    # Unknown timestamps (0) let the writer fall back to its own default.
    return plan.timestamps if plan.timestamps.all() else None


def _storage(kd) -> dict:
    """How the input stores a key, to store it alike: ``chunks`` (clipped to the output's
    shape; None: contiguous), ``compression`` and ``compression_opts``."""
    out = {"chunks": None, "compression": None, "compression_opts": None}
    try:
        ds = kd.files[0].dataset(kd.hdf5_data_path)
    except (AttributeError, IndexError, KeyError, OSError):
        return out
    rows = int(kd.data_counts(labelled=False).sum())
    if ds.chunks and rows:
        shape = (rows,) + tuple(kd.entry_shape)
        out["chunks"] = tuple(min(c, max(s, 1)) for c, s in zip(ds.chunks, shape, strict=True))
    if ds.compression is not None:
        out["compression"], out["compression_opts"] = ds.compression, ds.compression_opts
    return out


def _attrs(kd) -> dict:
    try:
        attrs = kd.attributes()
    except (AttributeError, KeyError, OSError):
        return {}
    return {k: v for k, v in attrs.items() if k in KEY_ATTRIBUTES and v is not None}
