"""Stream a run from files through a bridge server, train by train.

What users of ``karabo-bridge-serve-files`` expect, plus a pace (``rate``), looping, any train
selection, and detector modules stacked into one ``<DET>/DET/APPEND`` source for monitors that
need it.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from bridge.serving import serve_trains
from exfel_data.detectors import stack_detector_data
from exfel_data.selection import TrainRange, parse_trains

if TYPE_CHECKING:
    import os

    from bridge.curve import KeySource
    from bridge.server import Server

__all__ = ["select_run", "stack_detector_modules", "iter_run_trains",
           "serve_run"]

# Module sources of XTDF detectors: old (DET/nCH0:xtdf) and new (CORR/nCH0:output) names.
_MODULE_SOURCE = re.compile(r"^(?P<det>[^/]+)/(?:DET|CORR)/(?P<module>\d+)CH0:(?:xtdf|output)$")


def select_run(run, sources: Sequence[str] = ("*",), key: str = "*",
               trains: TrainRange | str | slice | int | Sequence[int] | None = None):
    """Select sources (globs), keys (glob) and trains of a run or its path.

    ``trains``: a range as text (:func:`exfel_data.selection.parse_trains`: positions
    ``'10:20'``, train IDs ``'id:10000:10050'``) or parsed, or train positions (an index,
    a slice or a list).
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


def _modules_in(detector: str) -> int:
    return 8 if "500K" in detector.upper() else 16


def _stack_group(detector: str, module_sources: dict[int, str], data: dict) -> dict | None:
    """One APPEND source from the module sources of one detector in one train.

    None if no module has frames in this train.
    """
    n_modules = max(_modules_in(detector), max(module_sources) + 1)
    frames = {m: data[src]["image.data"].shape[0] for m, src in module_sources.items()
              if "image.data" in data[src]}
    if not frames:
        raise ValueError(f"No image.data in the module sources of {detector}; select the "
                         "key (e.g. --key 'image.*') to stack modules")
    frames = {m: n for m, n in frames.items() if n > 0}   # no frames: missing, not odd
    if not frames:
        return None
    n_frames = Counter(frames.values()).most_common(1)[0][0]
    odd = sorted(m for m, n in frames.items() if n != n_frames)
    if odd:
        warnings.warn(f"{detector}: module(s) {odd} have a different number of frames than "
                      f"the others ({n_frames}); they are filled as missing in this train",
                      stacklevel=3)
    present = sorted(m for m, n in frames.items() if n == n_frames)
    first = data[module_sources[present[0]]]
    pattern = re.escape(detector) + r"/(?:DET|CORR)/(\d+)CH0"

    out: dict = {}
    for key, value in first.items():
        if not (isinstance(value, np.ndarray) and value.ndim >= 1
                and value.shape[0] == n_frames and key.startswith("image.")):
            continue                     # per-train module records (header.*, ...) stay behind
        if value.ndim >= 3:              # per pixel: stack modules after the frame axis
            entry = value.shape[1:]
            if len(entry) == 3 and entry[0] == 1:
                entry = entry[1:]        # LPD/DSSC raw carry a singleton axis
            modules = {module_sources[m]: {key: data[module_sources[m]][key].reshape(
                (n_frames,) + entry)} for m in present}
            out[key] = stack_detector_data(
                modules, key, axis=1, modules=n_modules, pattern=pattern,
                fillvalue=None if value.dtype.kind == "f" else 0)   # NaN for floats
        else:                            # per frame (cellId, pulseId, trainId...)
            out[key] = value.reshape(n_frames, -1)[:, 0] if value.ndim == 2 else value
    out["modulesPresent"] = [m in present for m in range(n_modules)]
    out["sources"] = [module_sources.get(m, "") for m in range(n_modules)]
    name = f"{detector}/DET/APPEND"
    out["metadata"] = {**first.get("metadata", {}), "source": name}
    return out


def stack_detector_modules(data: dict) -> dict:
    """Replace AGIPD/LPD/DSSC module sources of a train dict by one ``<DET>/DET/APPEND`` source.

    ``image.*`` arrays with a pixel axis are stacked to (frames, modules, ss, fs) (raw AGIPD:
    (frames, modules, 2, ss, fs)); missing modules are filled with NaN (floats) or 0 and listed
    as False in ``modulesPresent``. Per-frame keys (``image.cellId``, ``image.pulseId``,
    ``image.trainId``) are taken from the first present module, one value per frame. Other
    sources pass through unchanged.
    """
    groups: dict[str, dict[int, str]] = {}
    out = {}
    for source, props in data.items():
        match = _MODULE_SOURCE.match(source)
        if not match:
            out[source] = props
            continue
        modules = groups.setdefault(match["det"], {})
        other = modules.get(int(match["module"]))
        # Newer corrected files list a module under its CORR name and its old DET name.
        if other is None or "/CORR/" in source:
            modules[int(match["module"])] = source
    for detector, module_sources in groups.items():
        stacked = _stack_group(detector, module_sources, data)
        if stacked is not None:
            out[f"{detector}/DET/APPEND"] = stacked
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


def iter_run_trains(run, *, append_detector_modules: bool = False,
                    loop: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield ``(train_id, data)`` of a (selected) run, ready to feed to a server.

    Trains without any data are skipped. With ``loop`` the run starts over after its last train
    (train IDs then repeat), forever.
    """
    warned: set = set()
    while True:
        sent = 0
        for train_id, data in run.trains():
            if append_detector_modules:
                data = stack_detector_modules(data)
            if not data:
                continue
            _drop_unsendable(data, warned)
            sent += 1
            yield int(train_id), data
        if not loop:
            return
        if not sent:
            raise ValueError("The selection holds no data to loop over")


def serve_run(run, endpoint: str, *, sources: Sequence[str] = ("*",), key: str = "*",
              trains: slice | int | Iterable[int] | None = None,
              append_detector_modules: bool = False, dummy_timestamps: bool = False,
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
        Stack detector modules into one ``<DET>/DET/APPEND`` source
        (see :func:`stack_detector_modules`).
    dummy_timestamps : bool
        Add wall-clock timestamps of the sending time (files have none; monitors need them).
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
    selection = select_run(run, sources, key, trains)
    items = ((train_id, data, None) for train_id, data in iter_run_trains(
        selection, append_detector_modules=append_detector_modules, loop=loop))
    return serve_trains(endpoint, items, sock=sock, policy=policy, timestamps=dummy_timestamps,
                        rate=rate, drain_timeout=drain_timeout, stop=stop,
                        curve_secret_key=curve_secret_key, curve_allow=curve_allow,
                        on_ready=on_ready, on_train=on_train)
