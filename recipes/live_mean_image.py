"""Live mean detector image, with the same processing on files and on a live stream.

``process_train`` turns one train dict into that train's mean image; it does not care whether the
train came from ``run.trains()`` (files) or from ``bridge.Client.next()`` (live), because both
yield the same train dict (``docs/train-dict.md``).

Live, against a simulator or a served run::

    exfel-bridge serve-sim 4545 --rate 10 &
    python recipes/live_mean_image.py 4545 --count 50 --png mean.png

    exfel-bridge serve-run /data/r0238 4545 --append-detector-modules --dummy-timestamps &
    python recipes/live_mean_image.py 4545 --count 50

Offline, on the files themselves (modules are stacked like ``--append-detector-modules``)::

    python recipes/live_mean_image.py --run /data/r0238 --count 50 --png mean.png
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator

import numpy as np

# Keys holding detector images, in order of preference.
IMAGE_KEYS = ("image.data", "data.adc", "data.image.pixels")


def find_image_source(data: dict, source: str | None = None) -> tuple[str, str]:
    """The (source, key) of the detector image in a train dict."""
    candidates = [source] if source else sorted(data)
    for src in candidates:
        if src not in data:
            raise KeyError(f"No source {src!r} in this train; sources: {sorted(data)}")
        for key in IMAGE_KEYS:
            if key in data[src]:
                return src, key
    raise KeyError(f"No detector image ({', '.join(IMAGE_KEYS)}) in sources {candidates}")


def frames_first(image: np.ndarray, n_frames: int | None, online: bool | None = None
                 ) -> np.ndarray:
    """View ``image`` as (frames, ..., ss, fs) whatever order it was sent in.

    ``online`` order (modules, fs, ss, [gain,] frames) is recognised by its last axis matching
    the number of frames (``len(image.cellId)``), file order (frames, [gain,] modules, ss, fs),
    as ``stack_detector_data`` and ``--append-detector-modules`` give it, by its first. Raw
    data keeps only the data channel of a gain axis (or raw LPD/DSSC's singleton axis).
    """
    if online is None:
        online = (n_frames is not None and image.shape[-1] == n_frames
                  and image.shape[0] != n_frames)
    if online:
        image = np.moveaxis(image, -1, 0)             # frames, modules, fs, ss, [gain]
        if image.ndim >= 4 and image.shape[-1] == 2:
            image = image[..., 0]                     # raw: the data channel
        image = np.swapaxes(image, -1, -2)
    elif n_frames is None:
        image = image[np.newaxis]                     # one frame per train (camera)
    elif image.ndim == 5:
        image = image[:, 0]                           # raw stack: the data channel
    elif image.ndim == 4 and image.shape[-3] == 2:
        image = image[..., 0, :, :]                   # one raw AGIPD module
    return image


def process_train(data: dict, source: str | None = None, online: bool | None = None
                  ) -> tuple[int, np.ndarray]:
    """Train ID and mean image over the frames of one train, as float32 (..., ss, fs).

    ``online`` forces the axis order (see :func:`frames_first`); default: guessed.
    """
    src, key = find_image_source(data, source)
    props = data[src]
    cells = props.get("image.cellId", props.get("data.memoryCell"))
    n_frames = None if cells is None else len(np.atleast_1d(cells))
    image = frames_first(props[key], n_frames, online)
    train_id = int(props["metadata"]["timestamp.tid"])
    # np.mean, not nanmean: a missing module is NaN in every frame and stays NaN in the mean.
    return train_id, np.mean(image, axis=0, dtype=np.float32)


class RunningMean:
    """Mean of equally shaped images, updated one train at a time."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, image: np.ndarray) -> None:
        if self.total is None:
            self.total = np.zeros(image.shape, np.float64)
        self.total += image
        self.count += 1

    @property
    def mean(self) -> np.ndarray:
        if self.total is None:
            raise ValueError("No image added yet")
        return (self.total / self.count).astype(np.float32)


def live_trains(endpoint: str, sock: str, timeout: float,
                tune_malloc: bool = True) -> Iterator[dict]:
    """Train dicts from a bridge server."""
    from bridge.cli import CLIENT_FOR, client_endpoint
    from bridge.client import Client

    with Client(client_endpoint(endpoint), sock=CLIENT_FOR[sock], timeout=timeout,
                tune_malloc=tune_malloc) as client:
        while True:
            data, _ = client.next()
            yield data


def file_trains(run_dir: str, source: str | None) -> Iterator[dict]:
    """Train dicts from a run on disk, detector modules stacked as serve-run would."""
    from bridge.serve_run import iter_run_trains, select_run

    if source and source.endswith("/DET/APPEND"):
        run = select_run(run_dir, [source[:-len("DET/APPEND")] + "*"], "image.*")   # its modules
    else:
        run = select_run(run_dir, [source or "*"])
    for _, data in iter_run_trains(run, append_detector_modules=True):
        yield data


def save_png(image: np.ndarray, path: str, title: str) -> None:
    """Save the mean image; modules are drawn one below the other (no geometry)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = image.reshape(-1, image.shape[-1]) if image.ndim > 2 else image
    fig, ax = plt.subplots(figsize=(6, 8))
    shown = ax.imshow(flat, aspect="auto", interpolation="nearest")
    fig.colorbar(shown, ax=ax)
    ax.set_title(title)
    fig.savefig(path + ".tmp.png", dpi=80)   # complete files only: write, then rename
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("endpoint", nargs="?",
                    help="bridge server (tcp://host:port, or a bare port on this machine)")
    ap.add_argument("--run", metavar="RUN_DIR", help="process a run from files instead")
    ap.add_argument("-z", "--server-socket", default="REP", choices=["REP", "PUB", "PUSH"],
                    help="socket type of the server (default REP)")
    ap.add_argument("--source", help="source of the detector image (default: the first found)")
    ap.add_argument("--data-like", choices=["auto", "online", "file"], default="auto",
                    help="axis order of the image: online (modules, fs, ss, frames), file "
                         "(frames, modules, ss, fs), or guessed from image.cellId (default)")
    ap.add_argument("--count", type=int, default=None, help="stop after N trains")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds to wait for a train (live; default 30)")
    ap.add_argument("--tune-malloc", action=argparse.BooleanOptionalAction, default=True,
                    help="live: reuse memory for trains above 32 MiB (glibc; 2-3x faster for "
                         "full AGIPD/LPD trains; default on, as in bridge.Client)")
    ap.add_argument("--png", metavar="FILE", help="save the mean image as a PNG (matplotlib)")
    args = ap.parse_args(argv)
    if bool(args.endpoint) == bool(args.run):
        ap.error("give either ENDPOINT (live) or --run RUN_DIR (files)")

    trains = (file_trains(args.run, args.source) if args.run
              else live_trains(args.endpoint, args.server_socket, args.timeout,
                               args.tune_malloc))
    online = {"auto": None, "online": True, "file": False}[args.data_like]
    mean = RunningMean()
    first_tid = last_tid = None
    t0 = time.monotonic()
    try:
        for data in trains:
            train_id, image = process_train(data, args.source, online)
            mean.add(image)
            first_tid = train_id if first_tid is None else first_tid
            last_tid = train_id
            print(f"train {train_id}: mean {float(np.nanmean(image)):10.3f} | "
                  f"running mean {float(np.nanmean(mean.mean)):10.3f} over {mean.count} trains",
                  flush=True)
            if args.count is not None and mean.count >= args.count:
                break
    except KeyboardInterrupt:
        print("Interrupted.")
    except TimeoutError as e:
        print(f"Stopped: {e}", file=sys.stderr)
    if mean.count == 0:
        print("No trains processed.", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t0
    print(f"Mean image {mean.mean.shape} of {mean.count} trains ({first_tid}..{last_tid}), "
          f"{mean.count / elapsed:.1f} trains/s")
    if args.png:
        save_png(mean.mean, args.png, f"Mean of {mean.count} trains from {first_tid}")
        print(f"Saved {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
