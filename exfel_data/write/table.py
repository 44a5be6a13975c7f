"""``--to csv`` and ``--to json``: one row per train, one column per key.

Only keys with at most one entry per train and scalar or 1-D entries fit a table;
anything else is refused with a message suggesting another format. Trains where a
key has no data leave its cell empty (CSV) or ``null`` (JSON).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from .base import Progress, Writer, part_json, timestamps_iso
from .plan import ConversionError, ConversionPlan

JSON_FORMAT_ID = "exfel-data table 1"
CSV_PART_PREFIX = "# exfel-data part "


def _text(values: np.ndarray) -> list:
    """Cell texts of a 1-D column, shortest round-trip form for floats."""
    if values.dtype.kind == "O":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in values]
    if values.dtype.kind == "S":
        return [v.decode("utf-8", "replace") for v in values.tolist()]
    return values.astype(str).tolist()


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


def _json_values(values: np.ndarray) -> list:
    """Python values of the rows of a column (lists for 1-D entries)."""
    if values.dtype.kind == "f" and values.dtype.itemsize < 8:
        # Via text so float32 0.1 stays 0.1 rather than 0.10000000149011612.
        values = values.astype(str).astype(np.float64)
    return [_json_value(v) for v in values.tolist()]


class _TableWriter(Writer):
    """Common planning of the table formats."""

    @classmethod
    def check(cls, plan: ConversionPlan, **options) -> None:
        super().check(plan)
        for kp in plan.keys:
            if kp.dtype.names is not None:
                raise ConversionError(f"{cls.name}: {kp} has a structured dtype {kp.dtype}; "
                                      "use --to npz or --to exdf for it")
            if len(kp.entry_shape) > 1:
                raise ConversionError(
                    f"{cls.name}: {kp} has entries of shape {kp.entry_shape}; tables take "
                    "scalar or 1-D entries. Deselect it (--select 'SRC[KEY_GLOB]') or use "
                    "--to npz, zarr, exdf (or png for images)")
            if kp.counts.size and kp.counts.max() > 1:
                raise ConversionError(
                    f"{cls.name}: {kp} has up to {kp.counts.max()} entries per train; tables "
                    "have one row per train. Use --to npz/zarr/exdf for per-pulse data")

    def columns(self) -> list[str]:
        cols = ["trainId", "timestamp"]
        for kp in self.plan.keys:
            if kp.entry_shape:
                cols += [f"{kp.name}[{i}]" for i in range(kp.entry_shape[0])]
            else:
                cols.append(kp.name)
        return cols

    def blocks(self):
        """(train IDs, timestamps, {key name: (mask of trains with data, rows)}) blocks."""
        plan = self.plan
        for trains, blocks in plan.train_blocks(plan.keys):
            tids = plan.train_ids[trains]
            cols = {}
            for kp in plan.keys:
                b = blocks[kp.name]
                have = np.zeros(len(tids), dtype=bool)
                pos = np.searchsorted(tids, b.train_ids)
                have[pos] = True
                full = np.empty((len(tids),) + tuple(kp.entry_shape), dtype=b.data.dtype)
                if full.dtype.kind == "O":
                    full[...] = None
                full[pos] = b.data
                cols[kp.name] = (have, full)
                self.progress.update(b.nbytes)
            yield tids, plan.timestamps[trains], cols


class CsvWriter(_TableWriter):
    name = "csv"

    def write(self) -> None:
        with open(self.path, "w", newline="", encoding="utf-8") as fh:
            info = part_json(self.plan)
            if info:
                fh.write(CSV_PART_PREFIX + info + "\n")
            w = csv.writer(fh)
            w.writerow(self.columns())
            for tids, ts, cols in self.blocks():
                table = [_text(tids), timestamps_iso(ts)]
                for kp in self.plan.keys:
                    have, full = cols[kp.name]
                    for sub in (full.T if kp.entry_shape else [full]):
                        cells = _text(np.asarray(sub))
                        table.append([c if h else "" for c, h in
                                      zip(cells, have.tolist(), strict=True)])
                w.writerows(zip(*table, strict=True))

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        if not first.startswith(CSV_PART_PREFIX):
            raise ConversionError(f"{path} is not a part output (made with --part i/N)")
        return json.loads(first[len(CSV_PART_PREFIX):])

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        header = None
        with open(out, "w", encoding="utf-8", newline="") as fo:
            for p in parts:
                with open(p, encoding="utf-8", newline="") as fh:
                    fh.readline()  # part line
                    head = fh.readline()
                    if header is None:
                        header = head
                        fo.write(head)
                    elif head != header:
                        raise ConversionError(f"{p} has other columns than {parts[0]}")
                    for line in fh:
                        fo.write(line)
                        progress.update(len(line))


class JsonWriter(_TableWriter):
    name = "json"

    def write(self) -> None:
        plan = self.plan
        head = {"format": JSON_FORMAT_ID, "run": plan.run_path, "columns": self.columns_json()}
        info = plan.part_info()
        if info:
            head["part"] = info
        with open(self.path, "w", encoding="utf-8") as fh:
            _write_head(fh, head)
            first = True
            for tids, ts, cols in self.blocks():
                records = [{"trainId": t, "timestamp": s}
                           for t, s in zip(tids.tolist(), timestamps_iso(ts), strict=True)]
                for kp in plan.keys:
                    have, full = cols[kp.name]
                    values = _json_values(full)
                    for rec, h, v in zip(records, have.tolist(), values, strict=True):
                        rec[kp.name] = v if h else None
                for rec in records:
                    fh.write(("" if first else ",\n") + json.dumps(rec, allow_nan=False))
                    first = False
            fh.write("\n]}\n")

    def columns_json(self) -> list[str]:
        return ["trainId", "timestamp"] + [kp.name for kp in self.plan.keys]

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        head = _read_head(path)
        if "part" not in head:
            raise ConversionError(f"{path} is not a part output (made with --part i/N)")
        return head["part"]

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        head = _read_head(parts[0])
        head.pop("part", None)
        with open(out, "w", encoding="utf-8") as fo:
            _write_head(fo, head)
            first = True
            for p in parts:
                with open(p, encoding="utf-8") as fh:
                    for line in fh:  # skip the head
                        if line.startswith('"trains": ['):
                            break
                    for line in fh:
                        rec = line.rstrip("\n").rstrip(",")
                        if rec.startswith("]}") or not rec:
                            continue
                        fo.write(("" if first else ",\n") + rec)
                        first = False
                        progress.update(len(line))
            fo.write("\n]}\n")


def _write_head(fh, head: dict) -> None:
    # One field per line and the train records one per line, so that parts can be merged
    # line by line without loading them.
    fh.write("{\n")
    for k, v in head.items():
        fh.write(f"{json.dumps(k)}: {json.dumps(v)},\n")
    fh.write('"trains": [\n')


def _read_head(path: Path) -> dict:
    lines = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith('"trains": ['):
                break
            lines.append(line)
    text = "".join(lines).rstrip().rstrip(",") + "}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{path} is not a JSON output of exfel-data: {exc}") from None

