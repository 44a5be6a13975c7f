"""``exfel-bridge view``: show a published analysis result with matplotlib, updating.

Each message's result source (``analysis/NAME`` from ``exfel-bridge process``, or any
source) is drawn as panels: 2-D arrays as images with a colour bar, 1-D arrays as lines
(``K.y`` against ``K.x`` when both exist), numbers and strings in a text panel with the
run's counts from ``analysis/NAME:info``. The figure is updated in place while the
layout stays the same. Headless (``png=``), it is written to a PNG file every few
seconds, under a temporary name renamed when complete.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from bridge.client import BridgeTimeout, Client

__all__ = ["Viewer", "split_panels"]

_POLL_S = 0.1
_INFO_KEYS = ("received", "reduced", "failed", "dropped", "lost", "late", "workers")


def split_panels(values: dict) -> tuple[dict, dict, dict]:
    """``(images, lines, texts)`` of a source's keys; lines map to ``(x or None, y)``."""
    images, lines, texts = {}, {}, {}
    for key, value in sorted(values.items()):
        if key == "metadata":
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            if value.ndim >= 2 and min(value.shape[-2:]) > 1:
                images[key] = value.reshape((-1,) + value.shape[-2:]).mean(axis=0)
                continue
            if value.ndim >= 1 and value.size > 1:
                lines[key] = (None, value.ravel())
                continue
            value = value.ravel()[0] if value.size else value
        if isinstance(value, (list, np.ndarray)):
            texts[key] = f"{np.asarray(value).dtype} {np.shape(value)}"
        else:
            texts[key] = value
    for key in [k for k in lines if k.endswith(".y")]:
        x = lines.pop(key[:-2] + ".x", None)
        if x is not None and len(x[1]) == len(lines[key][1]):
            lines[key[:-2]] = (x[1], lines.pop(key)[1])
        elif x is not None:
            lines[key[:-2] + ".x"] = x
    return images, lines, texts


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Viewer:
    """Receive results from ``endpoint`` and draw them (a window, or a PNG file)."""

    def __init__(self, endpoint: str, sock: str = "SUB", source: str | None = None,
                 png: str | None = None, every: float = 2.0, count: int | None = None,
                 timeout: float | None = None):
        self.endpoint, self.sock, self.source = endpoint, sock, source
        self.png, self.every, self.count, self.timeout = png, every, count, timeout
        self.writes = 0
        self._layout = None
        self._artists: dict = {}

    def run(self) -> None:
        """Until the window closes, Ctrl-C, ``count`` PNGs or the final result (PNG)."""
        import matplotlib

        if self.png:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self._plt = plt
        self.fig = plt.figure(figsize=(10, 7))
        if not self.png:
            plt.ion()
            plt.show(block=False)
        last_data = time.monotonic()
        last_write = 0.0
        with Client(self.endpoint, sock=self.sock, timeout=_POLL_S) as client:
            while True:
                try:
                    data, _ = client.next()
                except BridgeTimeout:
                    if self.timeout is not None and time.monotonic() - last_data > self.timeout:
                        raise TimeoutError(f"Nothing received from {self.endpoint} "
                                           f"({self.sock}) in {self.timeout:g} s") from None
                    if not self.png:
                        if not plt.fignum_exists(self.fig.number):
                            return
                        plt.pause(0.05)
                    continue
                last_data = time.monotonic()
                final = self.draw(data)
                if self.png:
                    if final or time.monotonic() - last_write >= self.every:
                        self.write_png()
                        last_write = time.monotonic()
                        if final or (self.count is not None and self.writes >= self.count):
                            return
                else:
                    if not plt.fignum_exists(self.fig.number):
                        return
                    plt.pause(0.001)

    def write_png(self) -> None:
        tmp = f"{self.png}.partial-{os.getpid()}.png"
        self.fig.savefig(tmp, dpi=80)
        os.replace(tmp, self.png)
        self.writes += 1

    def _pick(self, data: dict) -> str:
        if self.source is not None:
            if self.source not in data:
                raise ValueError(f"No source {self.source!r} in the stream; sources: "
                                 f"{sorted(data)}")
            return self.source
        results = [s for s in sorted(data) if not s.endswith(":info")]
        return results[0] if results else sorted(data)[0]

    def draw(self, data: dict) -> bool:
        """Draw one message; returns whether it is a run's final result."""
        source = self._pick(data)
        values = data[source]
        info = data.get(source + ":info", {})
        images, lines, texts = split_panels(values)
        for key in _INFO_KEYS:
            if key in info:
                texts[f"[{key}]"] = info[key]
        tid = values.get("metadata", {}).get("timestamp.tid", "?")
        final = bool(info.get("final", False))
        layout = (tuple(images), tuple(lines), bool(texts))
        if layout != self._layout:
            self._build(layout)
        for key, image in images.items():
            artist, cbar = self._artists[key]
            artist.set_data(image)
            artist.set_extent((-0.5, image.shape[1] - 0.5, -0.5, image.shape[0] - 0.5))
            finite = image[np.isfinite(image)]
            if finite.size:
                artist.set_clim(finite.min(), finite.max())
            cbar.update_normal(artist)
        for key, (x, y) in lines.items():
            line = self._artists[key]
            line.set_data(np.arange(len(y)) if x is None else x, y)
            line.axes.relim()
            line.axes.autoscale_view()
        if texts:
            self._artists["__text__"].set_text(
                "\n".join(f"{k}: {_format(v)}" for k, v in texts.items()))
        state = ("final result, " if final else "partial result, ") if info else ""
        self.fig.suptitle(f"{source}: {state}train {tid}")
        self.fig.canvas.draw_idle()
        return final

    def _build(self, layout) -> None:
        images, lines, has_text = layout
        self.fig.clear()
        self._artists = {}
        n = len(images) + len(lines) + int(has_text)
        ncols = min(3, max(n, 1))
        nrows = max(1, math.ceil(n / ncols))
        panel = 0
        for key in images:
            panel += 1
            ax = self.fig.add_subplot(nrows, ncols, panel)
            artist = ax.imshow(np.zeros((2, 2)), origin="lower", aspect="auto",
                               interpolation="nearest")
            cbar = self.fig.colorbar(artist, ax=ax)
            ax.set_title(key)
            self._artists[key] = (artist, cbar)
        for key in lines:
            panel += 1
            ax = self.fig.add_subplot(nrows, ncols, panel)
            (line,) = ax.plot([], [], marker=".")
            ax.set_title(key)
            self._artists[key] = line
        if has_text:
            panel += 1
            ax = self.fig.add_subplot(nrows, ncols, panel)
            ax.axis("off")
            self._artists["__text__"] = ax.text(0.0, 1.0, "", va="top", family="monospace",
                                                 transform=ax.transAxes, fontsize=9)
        self.fig.tight_layout(rect=(0, 0, 1, 0.95))
        self._layout = layout
