"""The interface every output format implements, and shared progress reporting."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..signals import check_interrupt
from .plan import ConversionError, ConversionPlan, KeyPlan


class MissingDependencyError(ImportError):
    """An optional dependency of an output format is not installed."""


def require(module: str, extra: str, feature: str):
    """Import an optional module or say which extra to install.

    ``feature`` names what needs it in the message, e.g. ``"--to zarr"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module}', which is not installed. "
            f"Install it with: pip install 'exfel-data[{extra}]'") from exc


class Progress:
    """Progress over the bytes of a conversion, showing MB/s and trains/s.

    Parameters
    ----------
    total_bytes : int
        Bytes the conversion will write.
    n_trains : int
        Trains being converted (for the trains/s figure).
    quiet : bool
        Show nothing.
    """

    def __init__(self, total_bytes: int, n_trains: int, quiet: bool = False,
                 desc: str = "converting"):
        self.total_bytes = max(int(total_bytes), 1)
        self.n_trains = n_trains
        self.done = 0
        self.start = time.perf_counter()
        self._bar = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total_bytes, unit="B", unit_scale=True,
                             unit_divisor=1000, desc=desc, dynamic_ncols=True,
                             leave=True)

    def update(self, nbytes: int) -> None:
        """Count ``nbytes`` more as written; a safe point to stop at on Ctrl-C."""
        check_interrupt()
        self.done += int(nbytes)
        if self._bar is not None:
            self._bar.update(int(nbytes))
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            trains = self.n_trains * min(self.done / self.total_bytes, 1.0)
            self._bar.set_postfix_str(f"{trains / elapsed:.1f} trains/s", refresh=False)

    def finish(self) -> None:
        """Mark complete: the total is an estimate (strings, formats writing a subset)."""
        if self._bar is not None:
            self._bar.n = self._bar.total = max(self.done, 1)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def rates(self) -> tuple[float, float]:
        """(trains/s, MB/s) so far."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return self.n_trains / elapsed, self.done / 1e6 / elapsed


class Writer:
    """One output format.

    Subclasses set :attr:`name` and implement :meth:`write` (all of the plan to
    ``path``) and :meth:`merge` (part outputs into one output).
    """

    name: ClassVar[str]
    #: The output is a folder rather than a file.
    directory: ClassVar[bool] = False
    #: Module whose ``prepare`` / ``write_part`` / ``finish`` let local workers write
    #: straight into one output (e.g. :mod:`exfel_data.write.npz_direct`); ``None``:
    #: parallel conversions write part outputs and :meth:`merge` them.
    direct_parallel: ClassVar[str | None] = None

    def __init__(self, plan: ConversionPlan, path: Path, progress: Progress, **options):
        self.plan = plan
        self.path = Path(path)
        self.progress = progress
        self.options = options

    @classmethod
    def check(cls, plan: ConversionPlan, **options) -> None:
        """Raise :class:`ConversionError` if the selection does not fit this format."""
        if not plan.keys:
            raise ConversionError(f"Nothing to write to {cls.name}: the selection has no keys")

    @classmethod
    def refuse_structured(cls, plan: ConversionPlan) -> None:
        """Raise :class:`ConversionError` for the first key with a structured (compound)
        dtype, for formats that cannot hold one."""
        for kp in plan.keys:
            if kp.dtype.names is not None:
                raise ConversionError(f"{cls.name}: {kp} has a structured dtype {kp.dtype}; "
                                      "use --to npz or --to exdf")

    def write(self) -> None:
        raise NotImplementedError

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        raise NotImplementedError

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        """The part metadata stored in a part output (see ``ConversionPlan.part_info``)."""
        raise NotImplementedError

    # helpers for subclasses
    def unsupported(self, kp: KeyPlan, why: str, hint: str = "") -> ConversionError:
        return ConversionError(f"{self.name}: cannot write {kp.source} {kp.key} "
                               f"({kp.dtype}, entry shape {kp.entry_shape}): {why}"
                               + (f". {hint}" if hint else ""))


class FolderWriter(Writer):
    """A format whose output is a folder of files (exdf, png).

    Part outputs carry :data:`PART_FILE`; merging puts the files matching
    :attr:`merge_pattern` of all parts into one folder.
    """

    directory = True
    merge_pattern: ClassVar[str]

    def write_part_file(self) -> None:
        info = part_json(self.plan)
        if info:
            (self.path / PART_FILE).write_text(info)

    @classmethod
    def read_part_info(cls, path: Path) -> dict:
        f = path / PART_FILE
        if not f.exists():
            raise ConversionError(f"{path} is not a part output (made with --part i/N)")
        return json.loads(f.read_text())

    @classmethod
    def merge(cls, parts: list[Path], out: Path, progress: Progress) -> None:
        link_tree(parts, out, progress, cls.merge_pattern)


#: Part record in folder outputs (readers ignore it; merge leaves it out).
PART_FILE = "exfel-data-part.json"


def link_tree(parts: list[Path], out: Path, progress: Progress, pattern: str) -> None:
    """Put the files matching ``pattern`` of several folders into ``out`` (hard links where
    possible, so the parts stay intact at no cost); the same name in two parts is an
    error. Other files (part records, readers' caches) are left out."""
    for part in parts:
        for src in sorted(part.rglob(pattern)):
            if src.is_dir():
                continue
            dest = out / src.relative_to(part)
            if dest.exists():
                raise ConversionError(f"{src.relative_to(part)} exists in two parts "
                                      f"(second: {part})")
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy2(src, dest)
            progress.update(src.stat().st_size)


def part_json(plan: ConversionPlan) -> str | None:
    info = plan.part_info()
    return None if info is None else json.dumps(info, sort_keys=True)


def timestamps_iso(ts: np.ndarray) -> list[str]:
    """ns-since-epoch timestamps as ISO 8601 UTC strings ('' where unknown)."""
    out = np.datetime_as_string(np.asarray(ts, dtype="datetime64[ns]"), unit="ns")
    known = np.asarray(ts).astype(bool).tolist()
    return [s + "Z" if k else "" for s, k in zip(out.tolist(), known, strict=True)]


def fixed_strings(values: np.ndarray) -> np.ndarray:
    """Object arrays of str/bytes as a fixed-width unicode array (for npz, zarr, mat)."""
    flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in values.ravel()]
    return np.array(flat, dtype=str).reshape(values.shape) if flat else \
        np.zeros(values.shape, dtype="U1")
