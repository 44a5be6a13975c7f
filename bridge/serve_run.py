"""Stream a run from files through a bridge server, train by train.

What users of ``karabo-bridge-serve-files`` expect, plus a pace (``rate``), looping, any train
selection, and detector modules stacked into one ``<DET>/DET/APPEND`` source for monitors that
need it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from bridge.serving import serve_trains
from exfel_data.detectors import stack_detector_data
from exfel_data.detectors.frames import majority
from exfel_data.detectors.identify import DetectorSources, find_detectors
from exfel_data.selection import TrainRange, parse_trains

if TYPE_CHECKING:
    import os

    from bridge.curve import KeySource
    from bridge.server import Server
    from exfel_data.collection import DataCollection

__all__ = ["select_run", "stack_detector_modules", "iter_run_trains",
           "serve_run"]

#: How stacked detector data is laid out: as EXtra-data's serve-files, or as online.
LAYOUTS = ("file", "online")


def select_run(run: DataCollection | str | os.PathLike, sources: Sequence[str] = ("*",),
               key: str = "*",
               trains: TrainRange | str | slice | int | Sequence[int] | None = None
               ) -> DataCollection:
    """Select sources (globs), keys (glob) and trains of a run or its path.

    Parameters
    ----------
    run : DataCollection or path
        An ``exfel_data`` run or selection, or the path of a run folder.
    sources : sequence of str
        Source name glob patterns (one string is one pattern).
    key : str
        Key glob pattern, applied to every selected source.
    trains : str, TrainRange, int, slice or sequence of int, optional
        A range as text (:func:`exfel_data.selection.parse_trains`: positions ``'10:20'``,
        train IDs ``'id:10000:10050'``) or parsed, or train positions (an index, a slice or
        a list). None: all trains.

    Returns
    -------
    DataCollection
        The selection.
    """
    import exfel_data

    if not hasattr(run, "trains"):
        run = exfel_data.RunDirectory(str(run))
    if isinstance(sources, str):
        sources = (sources,)
    if tuple(sources) != ("*",) or key != "*":
        run = run.select([(s, key) for s in sources])
    if isinstance(trains, str):
        trains = parse_trains(trains)
    if isinstance(trains, TrainRange):
        run = run.select_trains(trains.selector)
    elif trains is not None:
        if isinstance(trains, int):
            trains = slice(trains, (trains + 1) or None)
        run = run.select_trains(exfel_data.by_index[trains])
    return run


def _stack_group(ds: DetectorSources, data: dict, layout: str) -> dict | None:
    """One stacked source from the module sources of one detector in one train.

    None if no module has frames in this train.
    """
    kind = ds.kind
    sources = ds.default                                  # {module number: source}
    start, n_modules = kind.modnos_start_at, ds.n_modules
    main = kind.main_key
    frames = {m: np.shape(data[src][main])[0] for m, src in sources.items()
              if main in data[src]}
    if not frames:
        raise ValueError(f"No {main} in the module sources of {ds.detector_name}; select the "
                         f"key (e.g. --key '{main.split('.')[0]}.*') to stack modules")
    frames = {m: n for m, n in frames.items() if n > 0}   # no frames: missing, not odd
    if not frames:
        return None
    numbers = sorted(frames)
    counts = np.array([frames[m] for m in numbers], dtype=np.int64)[:, None]
    n_frames = int(majority(counts, counts > 0)[0])
    odd = [m for m in numbers if frames[m] != n_frames]
    if odd:
        warnings.warn(f"{ds.detector_name}: module(s) {odd} have a different number of frames "
                      f"than the others ({n_frames}); they are filled as missing in this train",
                      stacklevel=3)
    present = [m for m in numbers if frames[m] == n_frames]
    first = data[sources[present[0]]]
    online = layout == "online"

    out: dict = {}
    for key, value in first.items():
        per_pixel = (isinstance(value, np.ndarray) and value.ndim >= 3
                     and value.shape[0] == n_frames)
        if per_pixel and all(key in data[sources[m]] for m in present):
            modules = {sources[m]: data[sources[m]] for m in present}
            if online:
                out[key] = _online_stack(modules, key, n_modules)
            else:
                out[key] = stack_detector_data(modules, key, modules=n_modules)
        elif online and isinstance(value, np.ndarray) and value.shape[:1] == (n_frames,):
            out[key] = value.reshape(n_frames, -1)[:, 0] if value.ndim == 2 else value
        else:  # per-frame labels and per-train records: the first module's, as EXtra-data
            out[key] = value
    out["modulesPresent"] = [m + start in present for m in range(n_modules)]
    out["sources"] = [sources.get(m + start, "") for m in range(n_modules)]
    out["metadata"] = {**first.get("metadata", {}), "source": _stacked_name(ds, data, layout)}
    return out


def _online_stack(modules: dict, key: str, n_modules: int) -> np.ndarray:
    """(modules, fs, ss, [gain,] frames) as the online calibration sends it."""
    stack = stack_detector_data(modules, key, axis=0, modules=n_modules)
    if stack.ndim == 5 and stack.shape[2] == 1:
        stack = stack[:, :, 0]            # raw LPD/DSSC: drop the singleton axis
    order = (0,) + tuple(range(stack.ndim - 1, 0, -1))
    return np.ascontiguousarray(stack.transpose(order))


def _stacked_name(ds: DetectorSources, data: dict, layout: str) -> str:
    """``<DET>/DET/APPEND`` (files, as EXtra-data) or ``<DET>/CAL/APPEND_RAW|_CORRECTED``."""
    if layout == "file":
        return f"{ds.detector_name}/DET/APPEND"
    src = next(iter(ds.default.values()))
    raw = not ds.corr and np.issubdtype(np.asarray(data[src][ds.kind.main_key]).dtype,
                                        np.integer)
    return f"{ds.detector_name}/CAL/APPEND_{'RAW' if raw else 'CORRECTED'}"


def stack_detector_modules(data: dict, layout: str = "file") -> dict:
    """Replace the module sources of each detector in a train dict by one stacked source.

    Parameters
    ----------
    data : dict
        A train dict (source -> key -> value).
    layout : {'file', 'online'}
        How the stacked source is named and its arrays laid out (below).

    Returns
    -------
    dict
        A new train dict; ``data`` is not modified.

    Raises
    ------
    ValueError
        An unknown ``layout``.

    Notes
    -----
    The modules are found as everywhere in exfel_data (:func:`exfel_data.detectors.identify.
    detector_modules`: AGIPD, LPD, DSSC, JUNGFRAU, raw or corrected names; corrected preferred).

    ``layout='file'`` gives what EXtra-data's ``serve-files --append-detector-modules`` sends:
    source ``<DET>/DET/APPEND`` with every per-pixel key stacked by
    :func:`~exfel_data.detectors.stack_detector_data` (module axis at -3: corrected
    (frames, modules, ss, fs), raw AGIPD (frames, 2, modules, ss, fs), raw LPD/DSSC
    (frames, 1, modules, ss, fs), JUNGFRAU (cells, modules, ss, fs)); the other keys are
    the first module's, unchanged. ``layout='online'`` gives what the facility's online
    calibration sends (and ``serve-sim`` simulates): ``<DET>/CAL/APPEND_CORRECTED`` (or
    ``APPEND_RAW``), per-pixel keys (modules, fs, ss, frames) (raw AGIPD (modules, fs, ss, 2,
    frames)), per-frame keys one value per frame; JUNGFRAU modules stay separate there, as
    online. Both add ``modulesPresent`` and ``sources`` (one entry per module). Missing
    modules are filled with NaN (floats) or 0; a module with another frame count than most
    in a train counts as missing (with a warning). Other sources pass through unchanged.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    found = find_detectors([s for s in data if s != "metadata"])
    if layout == "online":
        found = {k: ds for k, ds in found.items() if ds.kind.frames_group is not None}
    stacked = {}
    for ds in sorted(found.values(), key=lambda d: d.detector_name):
        group = _stack_group(ds, data, layout)
        if group is not None:
            stacked[group["metadata"]["source"]] = group
    used = {s for ds in found.values() for s in ds.default.values()}
    out = {source: props for source, props in data.items() if source not in used}
    out.update(stacked)
    return out


def _drop_unsendable(data: dict, warned: set) -> None:
    """Remove keys the bridge cannot carry (structured dtypes), warning once per key."""
    for source, props in data.items():
        bad = [k for k, v in props.items()
               if isinstance(v, np.ndarray) and v.dtype.kind == "V"]
        for key in bad:
            del props[key]
            if (source, key) not in warned:
                warned.add((source, key))
                warnings.warn(f"Not sending {source} {key}: structured dtypes have no bridge "
                              "representation", stacklevel=3)


def iter_run_trains(run: DataCollection, *, append_detector_modules: bool = False,
                    loop: bool = False, layout: str = "file") -> Iterator[tuple[int, dict]]:
    """Yield ``(train_id, data)`` of a (selected) run, ready to feed to a server.

    Trains without any data are skipped.

    Parameters
    ----------
    run : DataCollection
        A run or a selection of it.
    append_detector_modules : bool
        Stack each detector's modules into one source (:func:`stack_detector_modules`).
    loop : bool
        Start over after the last train (train IDs then repeat), forever.
    layout : {'file', 'online'}
        The stacked layout, see :func:`stack_detector_modules`.

    Yields
    ------
    tuple of (int, dict)
        The train ID and its train dict.

    Raises
    ------
    ValueError
        An unknown ``layout``, or ``loop`` over a selection without any data.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    warned: set = set()
    while True:
        sent = 0
        for train_id, data in run.trains():
            if append_detector_modules:
                data = stack_detector_modules(data, layout)
            if not data:
                continue
            _drop_unsendable(data, warned)
            sent += 1
            yield int(train_id), data
        if not loop:
            return
        if not sent:
            raise ValueError("The selection holds no data to loop over")


def serve_run(run: DataCollection | str | os.PathLike, endpoint: str, *,
              sources: Sequence[str] = ("*",), key: str = "*",
              trains: slice | int | Iterable[int] | None = None,
              append_detector_modules: bool = False, layout: str = "file",
              dummy_timestamps: bool | None = None,
              rate: float | None = None, loop: bool = False, sock: str = "REP",
              policy: str = "wait", drain_timeout: float | None = None,
              stop: threading.Event | None = None,
              curve_secret_key: KeySource | None = None,
              curve_allow: str | os.PathLike | None = None,
              on_ready: Callable[[Server], None] | None = None,
              on_train: Callable[[int], None] | None = None) -> int:
    """Serve a run (or a selection of it) on ``endpoint``, one message per train.

    Parameters
    ----------
    run : DataCollection or path
        An ``exfel_data`` run or selection, or the path of a run folder.
    endpoint : str
        ZeroMQ address to bind, e.g. ``'tcp://127.0.0.1:0'`` (any free port).
    sources, key : glob patterns
        Source globs (any matches) and one key glob.
    trains : slice, int or list of int, optional
        Train selection by index.
    append_detector_modules : bool
        Stack detector modules into one source (see :func:`stack_detector_modules`).
    layout : {'file', 'online'}
        With *append_detector_modules*: ``'file'`` as EXtra-data's serve-files
        (``<DET>/DET/APPEND``, (frames, modules, ss, fs)); ``'online'`` as the live online
        calibration (``<DET>/CAL/APPEND_CORRECTED``, (modules, fs, ss, frames)).
    dummy_timestamps : bool, optional
        Add wall-clock timestamps of the sending time (files have none; monitors need them).
        Default: on with the ``'online'`` layout (live streams carry timestamps), else off.
    rate : float, optional
        Trains per second; default as fast as clients take them.
    loop : bool
        Start over after the last train, until interrupted.
    sock : {'REP', 'PUB', 'PUSH'}
        Server socket.
    policy : {'wait', 'drop', 'queue'}
        Slow-client policy of the :class:`bridge.Server`; ``'wait'`` sends every train.
    drain_timeout : float, optional
        At the end, how long to wait for clients to take the queued trains (default: as long
        as it takes).
    stop : threading.Event, optional
        Set it to stop serving (from another thread, or by a signal with
        :func:`bridge.serving.stop_on_signals`); it returns within a second.
    curve_secret_key, curve_allow : optional
        Require ZeroMQ CURVE: the server's secret key file and the directory of allowed
        client public keys (default any client); see :class:`bridge.Server`.
    on_ready, on_train : callable, optional
        Called with the :class:`bridge.Server` once it listens, and with each train ID after
        it was fed.

    Returns
    -------
    int
        Number of trains sent to clients (under ``drop`` / ``queue`` fewer than fed).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if dummy_timestamps is None:
        dummy_timestamps = append_detector_modules and layout == "online"
    selection = select_run(run, sources, key, trains)
    items = ((train_id, data, None) for train_id, data in iter_run_trains(
        selection, append_detector_modules=append_detector_modules, loop=loop, layout=layout))
    return serve_trains(endpoint, items, sock=sock, policy=policy, timestamps=dummy_timestamps,
                        rate=rate, drain_timeout=drain_timeout, stop=stop,
                        curve_secret_key=curve_secret_key, curve_allow=curve_allow,
                        on_ready=on_ready, on_train=on_train)
