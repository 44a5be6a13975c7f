"""Simulated live data: detector, XGM and camera trains like the facility's bridges send.

The data is made once at start-up and then only *viewed* differently per train, so producing a
train costs microseconds whatever its size: the generator never limits the rate (the reference
simulator draws fresh random numbers for every train and manages ~1.6 AGIPD trains/s).

Each train is a pair ``(data, metadata)`` of dicts keyed by source name (see
``docs/train-dict.md``); ``data[source]['metadata'] is metadata[source]``. Arrays handed out are
never written to afterwards, so a server may send them without copying.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bridge.protocol import timestamp_metadata
from bridge.serving import serve_trains

if TYPE_CHECKING:
    import os

    from bridge.curve import KeySource
    from bridge.server import Server

__all__ = [
    "DETECTORS",
    "FIRST_TRAIN_ID",
    "Simulator",
    "make_metadata",
    "serve_simulation",
]

#: Train IDs of simulated data start here, like the reference simulator's.
FIRST_TRAIN_ID = 10_000_000_000

#: Names accepted by :class:`Simulator` (``detector=``) and ``exfel-bridge serve-sim``.
DETECTORS = ("AGIPD", "AGIPDModule", "LPD", "JUNGFRAU", "XGM", "Camera")

#: Default frames per train of each detector (the reference simulator's numbers).
DEFAULT_PULSES = {"AGIPD": 64, "AGIPDModule": 64, "LPD": 300, "JUNGFRAU": 1, "XGM": 50,
                  "Camera": 1}

# How many different versions of each array a simulator cycles through.
N_VARIANTS = 4


def make_metadata(source: str, train_id: int, timestamp: float | None = None) -> dict:
    """Metadata of one source as a live bridge sends it (format 2.2).

    Parameters
    ----------
    source : str
        Source name.
    train_id : int
        The train ID (``timestamp.tid``).
    timestamp : float, optional
        Unix time in seconds; default now.
    """
    return {"source": source, **timestamp_metadata(timestamp), "timestamp.tid": int(train_id)}


def _image_pattern(ss: int, fs: int, seed: int) -> np.ndarray:
    """A (ss, fs) float32 picture: a soft ring on a noisy background."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[:ss, :fs]
    r = np.hypot((y - ss * 0.45) / ss, (x - fs * 0.55) / fs)
    ring = np.exp(-(((r - 0.3) / 0.06) ** 2))
    return (rng.normal(0.0, 1.0, (ss, fs)) + 20.0 * ring).astype(np.float32)


def _fill(out: np.ndarray, axes: tuple[str, ...], pixels: np.ndarray,
          terms: dict[str, np.ndarray]) -> None:
    """Fill ``out`` (axes named by ``axes``) with ``pixels`` (ss, fs) plus per-axis offsets."""
    pix = pixels if axes.index("ss") < axes.index("fs") else pixels.T
    shape = [1] * out.ndim
    shape[axes.index("ss")], shape[axes.index("fs")] = pixels.shape
    out[...] = pix.reshape(shape)
    for name, values in terms.items():
        if name not in axes:
            continue
        shape = [1] * out.ndim
        shape[axes.index(name)] = -1
        out += values.astype(out.dtype).reshape(shape)


def _variant_views(shape: tuple[int, ...], dtype, axes: tuple[str, ...], pixels: np.ndarray,
                   terms: dict[str, np.ndarray], n: int = N_VARIANTS) -> list[np.ndarray]:
    """``n`` different C-contiguous arrays of ``shape`` sharing one buffer.

    The buffer is ``n - 1`` rows longer along the first axis; variant ``k`` starts at row ``k``,
    so each variant shows different frames (or modules, or rows) at no cost per train.
    """
    big_shape = (shape[0] + n - 1,) + tuple(shape[1:])
    big = np.empty(big_shape, dtype)
    first_axis = axes[0]
    if first_axis in ("ss", "fs"):
        # Wrap the picture around to cover the extra rows.
        along = 0 if first_axis == "ss" else 1
        extra = np.take(pixels, np.arange(n - 1) % pixels.shape[along], axis=along)
        pixels = np.concatenate([pixels, extra], axis=along)
    elif first_axis in terms:
        # The first-axis offsets must cover the extra rows too.
        step = terms[first_axis][1] - terms[first_axis][0] if shape[0] > 1 else 1
        terms = dict(terms)
        terms[first_axis] = terms[first_axis][0] + step * np.arange(big_shape[0])
    _fill(big, axes, pixels, terms)
    big.flags.writeable = False
    return [big[k:k + shape[0]] for k in range(n)]


@dataclass
class _Source:
    """One simulated source: fixed values plus per-train array variants."""

    name: str
    fixed: dict = field(default_factory=dict)          # same object every train
    variants: dict = field(default_factory=dict)       # key -> list of arrays, cycled
    per_train: Callable[[int], dict] | None = None     # cheap train-dependent values

    def train(self, index: int, train_id: int) -> dict:
        out = dict(self.fixed)
        for key, arrays in self.variants.items():
            out[key] = arrays[index % len(arrays)]
        if self.per_train is not None:
            out.update(self.per_train(train_id))
        return out


class Simulator:
    """Endless simulated trains of one detector or device.

    Parameters
    ----------
    detector : str
        One of :data:`DETECTORS`:

        - ``'AGIPD'``: AGIPD-1M, 16 modules stacked in one source
          ``SPB_DET_AGIPD1M-1/CAL/APPEND_CORRECTED`` (``.../APPEND_RAW`` with ``raw=True``).
        - ``'AGIPDModule'``: one AGIPD module, ``SPB_DET_AGIPD1M-1/DET/0CH0:xtdf`` (raw) or
          ``SPB_DET_AGIPD1M-1/CORR/0CH0:output`` (corrected).
        - ``'LPD'``: LPD-1M, ``FXE_DET_LPD1M-1/CAL/APPEND_CORRECTED`` (or ``APPEND_RAW``).
        - ``'JUNGFRAU'``: ``modules`` sources ``SPB_IRDA_JF4M/DET/JNGFR{01..}:daqOutput`` with
          ``data.adc`` (cells, 512, 1024).
        - ``'XGM'``: ``SA1_XTD2_XGM/XGM/DOOCS`` (slow data) and ``...:output`` (6 arrays of
          1000 samples, ~25 kB).
        - ``'Camera'``: ``SPB_IRU_CAM/CAM/SIDEMIC:daqOutput``, ``data.image.pixels`` (768, 1024)
          uint16.
    raw : bool
        Raw (uint16, AGIPD with a gain axis) instead of corrected (float32) detector data.
    data_like : {'online', 'file'}
        Axis order of AGIPD/LPD ``image.data``. ``'online'`` as the online calibration sends it:
        (modules, fs, ss, pulses), raw AGIPD (modules, fs, ss, 2, pulses); ``'file'`` as
        ``stack_detector_data`` and ``serve-run --append-detector-modules`` stack files:
        (pulses, modules, ss, fs), raw AGIPD (pulses, 2, modules, ss, fs). A single module
        drops the modules axis.
    pulses : int, optional
        Frames per train (memory cells for JUNGFRAU, pulses for the XGM); default per detector
        (AGIPD 64, LPD 300, JUNGFRAU 1, XGM 50).
    modules : int, optional
        JUNGFRAU modules (default 1).
    first_train_id : int
        Train ID of the first train.
    seed : int
        Seed of the few random numbers drawn at start-up.
    """

    def __init__(self, detector: str = "AGIPD", *, raw: bool = False,
                 data_like: str = "online", pulses: int | None = None,
                 modules: int | None = None, first_train_id: int = FIRST_TRAIN_ID,
                 seed: int = 0) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"Unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        if data_like not in ("online", "file"):
            raise ValueError(f"data_like must be 'online' or 'file', not {data_like!r}")
        pulses = DEFAULT_PULSES[detector] if pulses is None else int(pulses)
        if pulses < 1:
            raise ValueError(f"pulses must be at least 1, not {pulses}")
        if modules is not None and detector != "JUNGFRAU":
            raise ValueError(f"modules= applies to JUNGFRAU only, not {detector}")
        if detector == "XGM" and pulses > 1000:
            raise ValueError(f"The XGM records at most 1000 pulses per train, not {pulses}")
        self.detector = detector
        self.raw = raw
        self.data_like = data_like
        self.pulses = pulses
        self.modules = 1 if modules is None else int(modules)
        self.first_train_id = int(first_train_id)
        self._seed = seed
        builder = {
            "AGIPD": self._xtdf, "AGIPDModule": self._xtdf, "LPD": self._xtdf,
            "JUNGFRAU": self._jungfrau, "XGM": self._xgm, "Camera": self._camera,
        }[detector]
        self._sources: list[_Source] = builder()

    # -- public ------------------------------------------------------------------------------
    @property
    def sources(self) -> list[str]:
        """Names of the sources in each train."""
        return [s.name for s in self._sources]

    @property
    def nbytes(self) -> int:
        """Bytes of array data in one train."""
        data, _ = self.train(0)
        return sum(v.nbytes for src in data.values() for v in src.values()
                   if isinstance(v, np.ndarray))

    def train(self, index: int, timestamp: float | None = None) -> tuple[dict, dict]:
        """The ``index``-th train (train ID ``first_train_id + index``) as (data, metadata).

        Parameters
        ----------
        index : int
            Position of the train from the first (0); the arrays cycle through a few variants.
        timestamp : float, optional
            Seconds since the epoch for the metadata; None (default): now.

        Returns
        -------
        tuple of dict
            ``(data, metadata)`` keyed by source name, as a live bridge sends them.
        """
        train_id = self.first_train_id + index
        if timestamp is None:
            timestamp = time.time()
        data, metadata = {}, {}
        for src in self._sources:
            meta = make_metadata(src.name, train_id, timestamp)
            d = src.train(index, train_id)
            d["metadata"] = meta
            data[src.name], metadata[src.name] = d, meta
        return data, metadata

    def __iter__(self) -> Iterator[tuple[dict, dict]]:
        for index in itertools.count():
            yield self.train(index)

    def __repr__(self) -> str:
        kind = "raw" if self.raw else "corrected"
        return (f"<Simulator {self.detector} {kind} pulses={self.pulses} "
                f"data_like={self.data_like!r} {self.nbytes / 1e6:.1f} MB/train>")

    # -- detectors ---------------------------------------------------------------------------
    def _xtdf(self) -> list[_Source]:
        lpd = self.detector == "LPD"
        n_mod = 1 if self.detector == "AGIPDModule" else 16
        ss, fs = (256, 256) if lpd else (512, 128)
        prefix = "FXE_DET_LPD1M-1" if lpd else "SPB_DET_AGIPD1M-1"
        if n_mod == 1:
            name = f"{prefix}/DET/0CH0:xtdf" if self.raw else f"{prefix}/CORR/0CH0:output"
        else:
            name = f"{prefix}/CAL/APPEND_{'RAW' if self.raw else 'CORRECTED'}"
        gain_axis = self.raw and not lpd   # raw AGIPD carries (data, gain) per pixel

        module_axes = ("ss", "fs")
        if gain_axis:
            module_axes = ("gain",) + module_axes
        sizes = {"pulse": self.pulses, "module": n_mod, "gain": 2, "ss": ss, "fs": fs}
        if self.data_like == "file":     # as stack_detector_data: module axis at -3
            axes = ("pulse",) + module_axes[:-2] + (("module",) if n_mod > 1 else ()) \
                + module_axes[-2:]
        else:
            axes = (("module",) if n_mod > 1 else ()) + module_axes[::-1] + ("pulse",)
        shape = tuple(sizes[a] for a in axes)

        pixels = _image_pattern(ss, fs, self._seed)
        terms = {"pulse": 0.05 * np.arange(self.pulses), "module": 0.5 * np.arange(n_mod)}
        if self.raw:
            pixels = 1500.0 + 10.0 * pixels
            terms = {"pulse": np.arange(self.pulses) % 50, "module": 4 * np.arange(n_mod),
                     "gain": np.array([0, 3000])}
        dtype = np.uint16 if self.raw else np.float32
        image = _variant_views(shape, dtype, axes, pixels, terms)

        fixed = {
            "image.cellId": np.arange(self.pulses, dtype=np.uint16),
            "image.pulseId": np.arange(self.pulses, dtype=np.uint64),
        }
        if n_mod > 1:
            fixed["sources"] = [f"{prefix}/DET/{m}CH0:xtdf" for m in range(n_mod)]
            fixed["modulesPresent"] = [True] * n_mod
        if not self.raw:
            fixed["image.passport"] = [f"{prefix}/CAL/THRESHOLDING_Q1M1",
                                       f"{prefix}/CAL/OFFSET_CORR_Q1M1",
                                       f"{prefix}/CAL/RELGAIN_CORR_Q1M1"]
        npulses = self.pulses

        def per_train(train_id: int) -> dict:
            return {"image.trainId": np.full(npulses, train_id, dtype=np.uint64)}

        return [_Source(name, fixed, {"image.data": image}, per_train)]

    def _jungfrau(self) -> list[_Source]:
        cells = self.pulses
        pixels = _image_pattern(512, 1024, self._seed)
        axes = ("cell", "ss", "fs")
        if self.raw:
            pixels, dtype, terms = 1000.0 + 10.0 * pixels, np.uint16, {"cell": np.arange(cells)}
        else:
            dtype, terms = np.float32, {"cell": 0.1 * np.arange(cells)}
        adc = _variant_views((cells, 512, 1024), dtype, axes, pixels, terms)
        gain = np.zeros((cells, 512, 1024), np.uint8)
        gain.flags.writeable = False
        fixed = {"data.memoryCell": np.arange(cells, dtype=np.uint8),
                 "data.gain": gain}
        if not self.raw:
            mask = np.zeros((cells, 512, 1024), np.uint32)
            mask.flags.writeable = False
            fixed["data.mask"] = mask

        def per_train(train_id: int) -> dict:
            frame0 = (train_id - self.first_train_id) * cells
            return {"data.frameNumber": np.arange(frame0, frame0 + cells, dtype=np.uint64),
                    "data.timestamp": np.full(cells, time.time(), dtype=np.float64)}

        return [_Source(f"SPB_IRDA_JF4M/DET/JNGFR{m:02d}:daqOutput", fixed, {"data.adc": adc},
                        per_train) for m in range(1, self.modules + 1)]

    def _xgm(self) -> list[_Source]:
        rng = np.random.default_rng(self._seed)
        npulses = self.pulses

        def trace(level: float, spread: float, fill: float) -> list[np.ndarray]:
            out = []
            for _ in range(N_VARIANTS):
                a = np.full(1000, fill, np.float32)
                a[:npulses] = level + spread * rng.standard_normal(npulses)
                a.flags.writeable = False
                out.append(a)
            return out

        variants = {
            "data.intensityTD": trace(1000.0, 50.0, 1.0),
            "data.intensityAUXTD": trace(900.0, 40.0, 1.0),
            "data.intensitySigma.x_data": trace(20.0, 2.0, 0.0),
            "data.intensitySigma.y_data": trace(20.0, 2.0, 0.0),
            "data.xTD": trace(0.0, 0.05, 0.0),
            "data.yTD": trace(0.0, 0.05, 0.0),
        }
        name = "SA1_XTD2_XGM/XGM/DOOCS"

        def control(train_id: int) -> dict:
            phase = (train_id % 1000) / 1000 * 2 * np.pi
            now = int(time.time())
            values = {
                "beamPosition.ixPos": 0.1 * float(np.sin(phase)),
                "beamPosition.iyPos": 0.1 * float(np.cos(phase)),
                "pulseEnergy.photonFlux": 1000.0 + 50.0 * float(np.sin(phase)),
                "pulseEnergy.wavelengthUsed": 0.1378,
                "pulseEnergy.nummberOfBunches": float(npulses),
            }
            out = {}
            for key, value in values.items():
                out[f"{key}.value"] = value
                out[f"{key}.timestamp"] = now
            return out

        return [_Source(name, per_train=control),
                _Source(f"{name}:output", variants=variants)]

    def _camera(self) -> list[_Source]:
        pixels = 100.0 + 5.0 * _image_pattern(768, 1024, self._seed)
        frames = _variant_views((768, 1024), np.uint16, ("ss", "fs"), pixels, {})
        fixed = {"data.image.dims": np.array([1024, 768], dtype=np.uint64),
                 "data.image.bitsPerPixel": 16}
        return [_Source("SPB_IRU_CAM/CAM/SIDEMIC:daqOutput", fixed,
                        {"data.image.pixels": frames})]


def serve_simulation(endpoint: str, detector: str = "AGIPD", *, sock: str = "REP",
                     rate: float | None = None, ntrains: int | None = None,
                     policy: str | None = None, drain_timeout: float | None = None,
                     stop: threading.Event | None = None,
                     curve_secret_key: KeySource | None = None,
                     curve_allow: str | os.PathLike | None = None,
                     on_ready: Callable[[Server], None] | None = None,
                     on_train: Callable[[int], None] | None = None, **simulator_kw) -> int:
    """Serve simulated trains on ``endpoint`` until stopped (or clients took ``ntrains``).

    Parameters
    ----------
    endpoint : str
        ZeroMQ address to bind, e.g. ``'tcp://127.0.0.1:4545'`` (port 0: any free port).
    detector : str
        What to simulate, see :class:`Simulator`.
    sock : {'REP', 'PUB', 'PUSH'}
        Server socket type.
    rate : float, optional
        Trains per second (10 at the facility); default as fast as clients take them.
    ntrains : int, optional
        Return once clients took this many trains (default: never). Trains dropped because no
        client was ready (``drop``, ``queue``) do not count: the simulator makes more, so the
        train IDs received then have gaps, as from a live source. A PUB server counts a train
        as taken once it was published to at least one subscriber.
    policy : {'wait', 'drop', 'queue'}, optional
        What the server does when clients are slower than the source: default ``'wait'``
        when ``rate`` is None (never lose a train), ``'drop'`` when paced (live data does not
        wait: newest trains are dropped and counted).
    drain_timeout : float, optional
        At the end, how long to wait for clients to take the queued trains (default: as long
        as it takes).
    stop : threading.Event, optional
        Set it to stop serving (from another thread, or by a signal with
        :func:`bridge.serving.stop_on_signals`); it returns within a second, queued trains
        are discarded.
    curve_secret_key, curve_allow : optional
        Require ZeroMQ CURVE: the server's secret key file and the directory of allowed
        client public keys (default any client); see :class:`bridge.Server`.
    on_ready : callable, optional
        Called with the :class:`bridge.Server` once it listens (``server.endpoint`` is the
        bound address, ``server.stats`` its counters).
    on_train : callable, optional
        Called with each train ID after it was fed.
    **simulator_kw
        Passed to :class:`Simulator` (``raw``, ``data_like``, ``pulses``, ``modules``...).

    Returns
    -------
    int
        Number of trains sent to clients.
    """
    simulator = Simulator(detector, **simulator_kw)
    if policy is None:
        policy = "wait" if rate is None else "drop"
    trains = ((simulator.first_train_id + index, data, metadata)
              for index, (data, metadata) in enumerate(simulator))
    return serve_trains(endpoint, trains, sock=sock, policy=policy, rate=rate,
                        until_sent=ntrains, drain_timeout=drain_timeout, stop=stop,
                        curve_secret_key=curve_secret_key, curve_allow=curve_allow,
                        on_ready=on_ready, on_train=on_train)
