"""``--to png``: 8-bit greyscale PNG images, one file per train and frame.

Written with ``zlib`` and ``struct`` only (no imaging library needed). Layout::

    OUTPUT/<source with '/' and ':' as '_'>/<key>/<trainId>_<frame:04d>.png

``frame`` counts the entries of that train (detector frames); entries with more than
two dimensions (e.g. raw AGIPD data/gain planes) add ``_<plane>`` for each image.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .base import FolderWriter
from .plan import ConversionError, ConversionPlan, frame_numbers


@dataclass(frozen=True)
class PngScale:
    """How values map to grey levels 0..255."""

    mode: str = "minmax"  # minmax | percentile | fixed
    low: float | None = None
    high: float | None = None

    def limits(self, img: np.ndarray) -> tuple[float, float]:
        finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
        if finite.size == 0:
            return 0.0, 1.0
        if self.mode == "fixed":
            return float(self.low), float(self.high)
        if self.mode == "percentile":
            lo, hi = np.percentile(finite, [self.low if self.low is not None else 1.0,
                                            self.high if self.high is not None else 99.0])
            return float(lo), float(hi)
        return float(finite.min()), float(finite.max())


def parse_png_scale(text: str | PngScale | None) -> PngScale:
    """Parse ``minmax``, ``percentile [LOW HIGH]`` or ``fixed LOW HIGH`` (space or ':')."""
    if isinstance(text, PngScale):
        return text
    if not text:
        return PngScale()
    words = text.replace(":", " ").replace(",", " ").split()
    mode, nums = words[0].lower(), words[1:]
    try:
        values = [float(n) for n in nums]
    except ValueError:
        raise ValueError(f"--png-scale {text!r}: limits must be numbers") from None
    if mode == "minmax" and not values:
        return PngScale()
    if mode == "percentile" and len(values) in (0, 2):
        lo, hi = values or (1.0, 99.0)
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"--png-scale {text!r}: percentiles need 0 <= LOW < HIGH <= 100")
        return PngScale("percentile", lo, hi)
    if mode == "fixed" and len(values) == 2:
        if values[0] >= values[1]:
            raise ValueError(f"--png-scale {text!r}: LOW must be below HIGH")
        return PngScale("fixed", *values)
    raise ValueError(f"--png-scale {text!r}: use 'minmax', 'percentile [LOW HIGH]' or "
                     "'fixed LOW HIGH'")


def to_grey(img: np.ndarray, scale: PngScale) -> np.ndarray:
    """Scale a 2-D image to uint8 (NaN becomes 0)."""
    lo, hi = scale.limits(img)
    f = img.astype(np.float64)
    if hi > lo:
        f = (f - lo) / (hi - lo) * 255.0
    else:
        f = np.zeros_like(f)
    return np.nan_to_num(np.clip(f, 0, 255), nan=0.0).round().astype(np.uint8)


def encode_png(grey: np.ndarray) -> bytes:
    """PNG file bytes of a 2-D uint8 image."""
    h, w = grey.shape
    raw = np.empty((h, w + 1), dtype=np.uint8)
    raw[:, 0] = 0  # filter type None per scanline
    raw[:, 1:] = grey

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def safe_name(source: str) -> str:
    return source.replace("/", "_").replace(":", "_")


class PngWriter(FolderWriter):
    name = "png"
    merge_pattern = "*.png"

    @classmethod
    def check(cls, plan: ConversionPlan, **options) -> None:
        super().check(plan)
        parse_png_scale(options.get("png_scale"))
        for kp in plan.keys:
            if len(kp.entry_shape) < 2 or kp.dtype.kind not in "uifb":
                raise ConversionError(
                    f"png: {kp} has entries of shape {kp.entry_shape} ({kp.dtype}); PNG takes "
                    "numeric 2-D images. Select image keys only, e.g. "
                    "--select 'CAM*[data.image.pixels]'")

    def write(self) -> None:
        scale = parse_png_scale(self.options.get("png_scale"))
        self.write_part_file()
        for kp in self.plan.keys:
            folder = self.path / safe_name(kp.source) / kp.key
            folder.mkdir(parents=True, exist_ok=True)
            planes = int(np.prod(kp.entry_shape[:-2], dtype=np.int64))
            for block in self.plan.key_blocks(kp):
                frames = frame_numbers(block.train_ids)
                images = block.data.reshape((len(block.data), planes) + kp.entry_shape[-2:])
                for tid, fr, stack in zip(block.train_ids.tolist(), frames.tolist(), images,
                                          strict=True):
                    for p in range(planes):
                        suffix = f"_{p}" if planes > 1 else ""
                        (folder / f"{tid}_{fr:04d}{suffix}.png").write_bytes(
                            encode_png(to_grey(stack[p], scale)))
                self.progress.update(block.nbytes)
