"""Assemble detector images with extra-geom and integrate them azimuthally with pyFAI.

The same two steps on frames from three places, which give the same images:

* ``get_array`` of an ``exfel_data.detectors`` class (labelled modules; missing ones stay NaN);
* a train dict from ``run.train_from_id()``, modules stacked by ``stack_detector_data``;
* a live Karabo bridge stream (``exfel-bridge serve-run RUN --append-detector-modules``, or
  the facility's bridge with the same layout) through ``bridge.Client``.

extra-geom places every module tile on a 2D pixel grid (``position_modules``); pyFAI then
bins by momentum transfer q, with the detector at ``--distance`` from the sample and the beam
through the geometry's origin. ``--integrate image`` (default) integrates the assembled frame
as a flat detector of square pixels of the geometry's size; ``--integrate modules`` integrates
the module data with every pixel where the geometry puts it (extra-geom's
``to_pyfai_detector()``): no snapping to the grid, and DSSC's hexagonal pixels (which only
this way supports). Without ``--geometry`` the idealised example geometry of extra-geom is used
(AGIPD-1M, LPD-1M and DSSC-1M from quadrant positions, JUNGFRAU modules stacked); give a
CrystFEL ``.geom`` file for real positions. Raw data: the data plane is used (not gain), and
modules missing from a train dict or stream are 0 there (integer data), not masked.

    python recipes/assemble_and_integrate.py --run /data/r0238 --detector AGIPD1M --png q.png
    exfel-bridge serve-run /data/r0238 4545 --append-detector-modules &
    python recipes/assemble_and_integrate.py 4545 --detector AGIPD1M --count 10

See docs/field-libraries.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

import numpy as np

# Per detector kind: exfel_data.detectors class, image key, extra-geom class.
KINDS = {
    "AGIPD1M": ("AGIPD1M", "image.data", "AGIPD_1MGeometry"),
    "LPD1M": ("LPD1M", "image.data", "LPD_1MGeometry"),
    "DSSC1M": ("DSSC1M", "image.data", "DSSC_1MGeometry"),
    "JUNGFRAU": ("JUNGFRAU", "data.adc", "JUNGFRAUGeometry"),
}
HC_KEV_ANGSTROM = 12.398419843320026     # photon wavelength (A) = HC / energy (keV)


def geometry_for(kind: str, geometry_file: str | None = None, n_modules: int | None = None):
    """extra-geom geometry: from a CrystFEL file, else extra-geom's example layout.

    *n_modules* is needed for JUNGFRAU (any number of modules) without a file.
    """
    import extra_geom

    cls = getattr(extra_geom, KINDS[kind][2])
    if geometry_file:
        return cls.from_crystfel_geom(geometry_file)
    if kind == "JUNGFRAU":
        return cls.example(n_modules or 1)
    return cls.example()


def frame_from_get_array(run, kind: str, train_id: int, frame: int = 0,
                         detector_name: str | None = None):
    """One frame of one train as a labelled (module, ss, fs) array, from ``get_array``.

    Module labels are the detector's numbers (JUNGFRAU from 1), as extra-geom expects them.
    """
    from exfel_data import by_id, by_index, detectors

    det_cls, key, _ = KINDS[kind]
    det = getattr(detectors, det_cls)(run, detector_name).select_trains(by_id[[train_id]])
    if kind == "JUNGFRAU":
        return det.get_array(key).isel(train=0, cell=frame)
    return det.get_array(key, pulses=by_index[[frame]]).isel(train=0, pulse=0)


def frame_from_train(data: dict, kind: str, frame: int = 0,
                     detector_name: str | None = None) -> np.ndarray:
    """One frame as (modules, ss, fs) from a train dict of separate module sources."""
    from exfel_data import stack_detector_data

    key = KINDS[kind][1]
    modules = {s: v for s, v in data.items()
               if key in v and (detector_name is None or s.startswith(detector_name + "/"))}
    if not modules:
        raise KeyError(f"No module source with {key!r} in this train"
                       + (f" for {detector_name}" if detector_name else "")
                       + f"; sources: {sorted(data)}")
    return data_channel(stack_detector_data(modules, key)[frame])


def frame_from_stream(data: dict, kind: str, frame: int = 0,
                      detector_name: str | None = None) -> np.ndarray:
    """One frame as (modules, ss, fs) from a train sent with modules appended."""
    key = KINDS[kind][1]
    wanted = f"{detector_name or '<detector>'}/DET/APPEND"
    found = [s for s, v in data.items() if key in v and (
        s == wanted if detector_name else s.endswith("/DET/APPEND"))]
    if len(found) != 1:
        raise KeyError(f"Need one {wanted!r} source with {key!r} (serve-run "
                       f"--append-detector-modules; --detector-name picks one); found {found} "
                       f"in {sorted(data)}")
    return data_channel(data[found[0]][key][frame])


def data_channel(frame: np.ndarray) -> np.ndarray:
    """(modules, ss, fs): raw AGIPD's data (not gain) plane, raw LPD/DSSC's single plane."""
    return frame[0] if frame.ndim == 4 else frame


def assemble(geom, frame) -> tuple[np.ndarray, np.ndarray]:
    """The assembled float32 image (gaps and missing modules NaN) and the beam centre (y, x)."""
    import xarray as xr

    if isinstance(frame, xr.DataArray):
        frame = frame.astype(np.float32, copy=False)
    else:
        frame = np.asarray(frame, dtype=np.float32)
    return geom.position_modules(frame)


def integrate(image: np.ndarray, centre, pixel_size: float, *, distance: float = 0.5,
              energy_kev: float = 9.3, npt: int = 200):
    """Azimuthal average of an assembled image: (q in 1/nm, mean intensity) with pyFAI.

    Pixels that are NaN (gaps, missing modules) are masked. No solid-angle or polarisation
    correction, no pixel splitting: each pixel goes whole into the bin of its centre's q.
    """
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    detector = Detector(pixel1=pixel_size, pixel2=pixel_size, max_shape=image.shape)
    # PONI: the beam centre from the detector's corner, in metres (pyFAI's axis 1 is y).
    ai = AzimuthalIntegrator(dist=distance, poni1=centre[0] * pixel_size,
                             poni2=centre[1] * pixel_size, detector=detector,
                             wavelength=HC_KEV_ANGSTROM / energy_kev * 1e-10)
    return _integrate(ai, image, npt)


def integrate_modules(geom, frame, *, distance: float = 0.5, energy_kev: float = 9.3,
                      npt: int = 200):
    """Azimuthal average of module data (modules, ss, fs) at the geometry's pixel positions.

    extra-geom's ``to_pyfai_detector()`` gives pyFAI every pixel's corners (the beam through
    the geometry's origin); missing modules (NaN) are masked. Same corrections as
    :func:`integrate`.
    """
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    detector = geom.to_pyfai_detector()
    ai = AzimuthalIntegrator(dist=distance, poni1=0, poni2=0, detector=detector,
                             wavelength=HC_KEV_ANGSTROM / energy_kev * 1e-10)
    return _integrate(ai, all_modules(geom, frame).reshape(detector.max_shape), npt)


def all_modules(geom, frame) -> np.ndarray:
    """Every module of the geometry as float32 (modules, ss, fs); absent ones NaN."""
    import xarray as xr

    if not isinstance(frame, xr.DataArray):
        return np.asarray(frame, dtype=np.float32)
    out = np.full(geom.expected_data_shape, np.nan, np.float32)
    first = 1 if type(geom).__name__ == "JUNGFRAUGeometry" else 0   # JUNGFRAU counts from 1
    out[frame.coords["module"].values - first] = frame.transpose("module", ...).values
    return out


def _integrate(ai, data: np.ndarray, npt: int):
    mask = ~np.isfinite(data)
    result = ai.integrate1d(np.where(mask, 0, data), npt, unit="q_nm^-1", mask=mask,
                            method=("no", "histogram", "cython"), correctSolidAngle=False)
    return result.radial, result.intensity


def offline_frames(run_dir: str, kind: str, via: str, frame: int, count: int | None,
                   detector_name: str | None = None) -> Iterator[tuple[int, object]]:
    """(train ID, frame) from files, by ``get_array`` or by train dicts."""
    from exfel_data import RunDirectory, detectors

    run = RunDirectory(run_dir)
    name = getattr(detectors, KINDS[kind][0])(run, detector_name).detector_name
    module_sources = run.select([f"{name}/*"])       # this detector only, in train dicts
    for tid in list(run.train_ids)[:count]:
        if via == "get_array":
            yield tid, frame_from_get_array(run, kind, tid, frame, name)
        else:
            _, data = module_sources.train_from_id(tid)
            yield tid, frame_from_train(data, kind, frame, name)


def live_frames(endpoint: str, kind: str, frame: int, count: int | None, timeout: float,
                detector_name: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(train ID, frame) from a bridge server sending modules appended."""
    from bridge.cli import client_endpoint
    from bridge.client import Client

    with Client(client_endpoint(endpoint), timeout=timeout) as client:
        n = 0
        while count is None or n < count:
            data, meta = client.next()
            tid = next(iter(meta.values()))["timestamp.tid"]
            yield int(tid), frame_from_stream(data, kind, frame, detector_name)
            n += 1


def save_png(image: np.ndarray, q: np.ndarray | None, intensity, path: str, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 1 if q is None else 2
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 5), squeeze=False)
    axes[0, 0].imshow(image, origin="lower", interpolation="nearest")
    axes[0, 0].set_title(title)
    if q is not None:
        axes[0, 1].plot(q, intensity)
        axes[0, 1].set_xlabel("q (1/nm)")
        axes[0, 1].set_ylabel("mean intensity")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=80)   # complete files only: write, then rename
    plt.close(fig)
    os.replace(path + ".tmp.png", path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("endpoint", nargs="?",
                    help="bridge server sending modules appended (tcp://host:port or a port)")
    ap.add_argument("--run", metavar="RUN_DIR", help="read a run from files instead")
    ap.add_argument("--via", choices=["get_array", "train"], default="get_array",
                    help="files: read with the detector class (default) or train dicts")
    ap.add_argument("--detector", choices=sorted(KINDS), default="AGIPD1M")
    ap.add_argument("--detector-name", help="e.g. SPB_DET_AGIPD1M-1, if the data has several "
                    "detectors of that kind (live: several appended detectors)")
    ap.add_argument("--geometry", metavar="GEOM", help="CrystFEL geometry file "
                    "(default: extra-geom's example layout)")
    ap.add_argument("--frame", type=int, default=0, help="frame (pulse/cell) index in a train")
    ap.add_argument("--count", type=int, help="stop after N trains")
    ap.add_argument("--integrate", choices=["image", "modules", "none"], default="image",
                    help="pyFAI on the assembled image (default), on the module data at the "
                    "geometry's pixel positions, or not at all")
    ap.add_argument("--distance", type=float, default=0.5, help="sample-detector distance, m")
    ap.add_argument("--energy", type=float, default=9.3, help="photon energy, keV")
    ap.add_argument("--npt", type=int, default=200, help="q bins")
    ap.add_argument("--timeout", type=float, default=30.0, help="live: seconds per train")
    ap.add_argument("--png", metavar="FILE", help="save the last image (and I(q)) as a PNG")
    args = ap.parse_args(argv)
    if bool(args.endpoint) == bool(args.run):
        ap.error("give either ENDPOINT (live) or --run RUN_DIR (files)")
    if args.integrate == "image" and args.detector == "DSSC1M":
        ap.error("DSSC's pixels are hexagonal: the assembled image does not have square "
                 "pixels to integrate; use --integrate modules (or none)")

    frames = (offline_frames(args.run, args.detector, args.via, args.frame, args.count,
                             args.detector_name) if args.run else
              live_frames(args.endpoint, args.detector, args.frame, args.count, args.timeout,
                          args.detector_name))
    geom = None
    image = q = intensity = None
    n = 0
    try:
        for tid, frame in frames:
            if geom is None:   # JUNGFRAU: up to the highest module number of the first frame
                n_modules = (int(frame.coords["module"].max()) if hasattr(frame, "coords")
                             else frame.shape[-3])
                geom = geometry_for(args.detector, args.geometry, n_modules)
            image, centre = assemble(geom, frame)
            line = (f"train {tid}: image {image.shape}, mean {np.nanmean(image):.4f}, "
                    f"centre ({centre[0]:.1f}, {centre[1]:.1f})")
            options = dict(distance=args.distance, energy_kev=args.energy, npt=args.npt)
            if args.integrate == "image":
                q, intensity = integrate(image, centre, geom.pixel_size, **options)
            elif args.integrate == "modules":
                q, intensity = integrate_modules(geom, frame, **options)
            if args.integrate != "none":
                peak = int(np.nanargmax(intensity))
                line += f"; I(q) max {intensity[peak]:.4f} at q={q[peak]:.4f}/nm"
            print(line, flush=True)
            n += 1
    except KeyboardInterrupt:
        print("Interrupted.")
    except TimeoutError as e:
        print(f"Stopped: {e}", file=sys.stderr)
    if n == 0:
        print("No trains processed.", file=sys.stderr)
        return 1
    if args.png:
        save_png(image, q, intensity, args.png, f"{args.detector}, last of {n} trains")
        print(f"Saved {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
