"""Match a detector stream with a separate XGM stream, normalise per train, and record.

At the facility the detector and the XGM (pulse energy) arrive as separate bridge streams.
``bridge.TrainMatcher`` joins them per train ID; ``normalised_intensity`` divides the
detector's intensity of each frame by the XGM pulse energy of the same pulse and averages over
the train; ``bridge.record.Recorder`` writes the matched stream into a run folder that
``RunDirectory`` (and extra-data) open later.

Against two simulated servers started here::

    python recipes/match_and_record.py --simulate --count 50 --record /tmp/matched

Against real streams (a detector module and an XGM published on another port)::

    python recipes/match_and_record.py --det tcp://det-host:4545 --xgm SUB@tcp://xgm:4546 \\
        --det-source 'SPB_DET_AGIPD1M-1/CORR/0CH0:output' --count 100 --record /tmp/r42
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

DET_SOURCE = "SPB_DET_AGIPD1M-1/CORR/0CH0:output"
XGM_SOURCE = "SA1_XTD2_XGM/XGM/DOOCS:output"
XGM_KEY = "data.intensityTD"


def frames_first(image: np.ndarray, n_frames: int) -> np.ndarray:
    """Detector frames on the first axis: online order (fs, ss, frames) is moved."""
    if image.shape[-1] == n_frames and image.shape[0] != n_frames:
        return np.moveaxis(image, -1, 0)
    return image


def normalised_intensity(data: dict, det_source: str = DET_SOURCE,
                         xgm_source: str = XGM_SOURCE) -> tuple[int, float]:
    """Train ID and mean over frames of (detector frame sum / XGM pulse energy).

    Frame ``i`` is normalised by the XGM value of pulse ``i`` (``data.intensityTD``).
    """
    det = data[det_source]
    n_frames = len(np.atleast_1d(det["image.cellId"]))
    frames = frames_first(det["image.data"], n_frames)
    per_frame = frames.reshape(n_frames, -1).sum(axis=1, dtype=np.float64)
    pulse_energy = np.asarray(data[xgm_source][XGM_KEY][:n_frames], dtype=np.float64)
    return int(det["metadata"]["timestamp.tid"]), float(np.mean(per_frame / pulse_energy))


def start_simulators(pulses: int, rate: float | None, stop: threading.Event) -> list[str]:
    """Two simulated servers (a detector module, REP; an XGM, PUB); their endpoints."""
    from bridge.simulation import serve_simulation

    endpoints = []
    for detector, sock, kw in [("AGIPDModule", "REP", {"pulses": pulses}),
                               ("XGM", "PUB", {})]:
        ready = threading.Event()

        def on_ready(server, ready=ready, sock=sock):
            endpoints.append(f"{'SUB' if sock == 'PUB' else 'REQ'}@{server.endpoint}")
            ready.set()

        threading.Thread(target=serve_simulation, args=("tcp://127.0.0.1:0", detector),
                         kwargs=dict(sock=sock, rate=rate, stop=stop, on_ready=on_ready, **kw),
                         daemon=True).start()
        if not ready.wait(30):
            raise RuntimeError(f"The simulated {detector} server did not start")
    return endpoints


def main(argv: list[str] | None = None) -> list[tuple[int, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--det", help="detector stream: [REQ@|SUB@|PULL@]ENDPOINT")
    ap.add_argument("--xgm", help="XGM stream: [REQ@|SUB@|PULL@]ENDPOINT")
    ap.add_argument("--simulate", action="store_true",
                    help="start a simulated detector module (REP) and XGM (PUB) here")
    ap.add_argument("--det-source", default=DET_SOURCE)
    ap.add_argument("--xgm-source", default=XGM_SOURCE)
    ap.add_argument("--pulses", type=int, default=10, help="simulated frames per train")
    ap.add_argument("--rate", type=float, default=10.0, help="simulated trains/s (default 10)")
    ap.add_argument("--count", type=int, default=20, help="matched trains to process")
    ap.add_argument("--record", metavar="OUT_DIR", help="record the matched stream here")
    args = ap.parse_args(argv)
    if args.simulate == bool(args.det and args.xgm):
        ap.error("give either --simulate or both --det and --xgm")

    from bridge.cli import client_endpoint
    from bridge.match import TrainMatcher, parse_stream
    from bridge.record import Recorder

    stop = threading.Event()
    try:
        inputs = (start_simulators(args.pulses, args.rate, stop) if args.simulate
                  else [args.det, args.xgm])
        streams = [(client_endpoint(e), sock) for e, sock in map(parse_stream, inputs)]
        recorder = Recorder(args.record) if args.record else None
        results = []
        t0 = time.monotonic()
        with TrainMatcher(streams, require=[args.det_source, args.xgm_source],
                          timeout=2.0) as matcher:
            for data, metadata in matcher:
                train_id, value = normalised_intensity(data, args.det_source, args.xgm_source)
                results.append((train_id, value))
                print(f"train {train_id}: detector / XGM = {value:.4f}", flush=True)
                if recorder is not None:
                    recorder.add(data, metadata)
                if len(results) >= args.count:
                    break
            print(f"{len(results)} trains in {time.monotonic() - t0:.1f} s; "
                  f"matcher: {matcher.status_line()}")
        if recorder is not None:
            files = recorder.close()
            print(f"Recorded {recorder.stats['trains']} trains into {args.record} "
                  f"({len(files)} file(s))")
    finally:
        stop.set()
    return results


if __name__ == "__main__":
    main()
