"""Joining the part outputs of ``convert --part i/N`` (and of ``--workers``) into one."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..signals import stop_on_signals
from .base import PART_FILE, Progress
from .formats import writer_class
from .output import atomic_output, check_output, remove_stale
from .plan import ConversionError
from .table import CSV_PART_PREFIX


def detect_format(path: Path) -> str:
    """The format of a part output, from its contents."""
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zgroup").exists():
            return "zarr"
        if any(path.glob("*.h5")):
            return "exdf"
        if (path / PART_FILE).exists():
            return "png"
        raise ConversionError(f"{path}: not an exdf, png or zarr output folder")
    with open(path, "rb") as fh:
        head = fh.read(128)
    sniffed = [("npz", b"PK\x03\x04"), ("cxi", b"\x89HDF\r\n\x1a\n"), ("mat", b"MATLAB"),
               ("csv", CSV_PART_PREFIX.encode()), ("json", b"{")]
    for fmt, magic in sniffed:
        if head.startswith(magic):
            return fmt
    raise ConversionError(f"{path}: not a part output of exfel-data convert (npz, cxi, mat, "
                          "csv, json file or exdf, png, zarr folder)")


def merge(parts: Sequence[str | os.PathLike], output: str | os.PathLike, *,
          overwrite: bool = False, quiet: bool = True) -> dict:
    """Join the part outputs of one ``--part i/N`` job into one output.

    All N parts must be given (in any order), made by the same job (same run,
    selection, trains and format).
    """
    output = check_output(output, overwrite)
    remove_stale(output)
    with stop_on_signals(checkpoints=True):
        return _merge(parts, output, overwrite, quiet)


def _merge(parts: Sequence[str | os.PathLike], output: Path, overwrite: bool,
           quiet: bool) -> dict:
    paths = [Path(p) for p in parts]
    if not paths:
        raise ConversionError("merge needs at least one part")
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"Part {p} does not exist")
    fmts = {detect_format(p) for p in paths}
    if len(fmts) > 1:
        raise ConversionError(f"Parts are in different formats: {', '.join(sorted(fmts))}")
    cls = writer_class(fmts.pop())
    infos = []
    for p in paths:
        try:
            infos.append(cls.read_part_info(p))
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"Cannot read part information from {p}: {exc}") from exc
    order = _check_parts(paths, infos)
    ordered = [paths[i] for i in order]
    total = sum(_size(p) for p in ordered)
    progress = Progress(total, sum(i["n_trains"] for i in infos), quiet, desc="merging")
    try:
        with atomic_output(output, overwrite, directory=cls.directory) as tmp:
            cls.merge(ordered, tmp, progress)
        progress.finish()
    finally:
        progress.close()
    return {"parts": len(paths), "n_trains": sum(i["n_trains"] for i in infos),
            "output": str(output)}


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def _check_parts(paths: list[Path], infos: list[dict]) -> list[int]:
    """Check the parts form one complete job; return their order."""
    jobs = {i["job"] for i in infos}
    if len(jobs) > 1:
        desc = "; ".join(f"{p}: {json.dumps({k: i.get(k) for k in ('run', 'select', 'trains')})}"
                         for p, i in zip(paths, infos, strict=True))
        raise ConversionError(f"Parts come from different conversions: {desc}")
    n = infos[0]["of"]
    numbers = [i["part"] for i in infos]
    dupes = sorted({x for x in numbers if numbers.count(x) > 1})
    if dupes:
        raise ConversionError(f"Part(s) {dupes} given more than once")
    missing = sorted(set(range(1, n + 1)) - set(numbers))
    if missing:
        raise ConversionError(f"Missing part(s) {', '.join(f'{m}/{n}' for m in missing)}; "
                              "merge needs all parts of the job")
    return sorted(range(len(infos)), key=lambda k: numbers[k])
