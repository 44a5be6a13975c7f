"""XGM pulse energies labelled by X-ray pulse ID, with EXtra's components on an exfel_data run.

EXtra (``pip install euxfel-EXtra``, part of ``exfel-data[field]``) builds its components on
EXtra-data's object model; they accept a run opened with ``exfel_data`` as it is. ``XGM``
reads the per-pulse energies, ``XrayPulses`` decodes the timeserver's bunch pattern table into
the pulse IDs that went to one SASE; joined on (train, pulse index) they give the energy of each
X-ray pulse by its pulse ID::

    python recipes/xgm_pulse_pattern.py /data/r0238          # a run with an XGM + timeserver
    python recipes/xgm_pulse_pattern.py                      # a generated run

See docs/field-libraries.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from exfel_data import RunDirectory


def energy_by_pulse_id(run, xgm: str | None = None, timeserver: str | None = None,
                       sase: int | None = None) -> pd.DataFrame:
    """XGM pulse energy of every X-ray pulse, indexed by (trainId, pulseIndex).

    Columns ``pulseId`` (from ``XrayPulses``) and ``energy`` (uJ, from ``XGM``). A train whose
    XGM recorded fewer pulses than the bunch pattern says gets NaN energies for the rest.
    """
    from extra.components import XGM, XrayPulses

    energies = XGM(run, xgm).pulse_energy(sase=None).to_series()
    pulses = XrayPulses(run, source=timeserver, sase=sase)
    pulse_ids = pulses.pulse_ids().rename("pulseId")
    table = pulse_ids.to_frame().join(energies.rename("energy"), how="left")
    table.attrs["sase"] = pulses.sase
    return table


def generated_run(folder: Path, n_trains: int = 10) -> Path:
    """A run with an XGM recording 64 pulses and a timeserver sending 64 pulses to SASE1."""
    from exfel_data.testing import XGM, Timeserver, make_run

    return make_run(folder / "r0001", n_trains=n_trains, progress=False,
                    devices=[XGM(pulses=64), Timeserver()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", help="run folder (default: generate one)")
    ap.add_argument("--xgm", help="XGM device name (default: the only one in the run)")
    ap.add_argument("--timeserver", help="timeserver source (default: found by EXtra)")
    ap.add_argument("--sase", type=int, choices=[1, 2, 3], help="default: from the sources")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory(args.run or generated_run(Path(tmp)))
        table = energy_by_pulse_id(run, args.xgm, args.timeserver, args.sase)
    counts = table.groupby(level="trainId").size()
    print(f"{len(counts)} trains, {int(counts.min())}-{int(counts.max())} X-ray pulses per "
          f"train to SASE{table.attrs['sase']}")
    by_pulse = table.groupby("pulseId")["energy"].mean()
    print("mean pulse energy (uJ) by pulse ID, first pulses:")
    print(by_pulse.head(5).to_string())
    print(f"mean over all pulses: {table['energy'].mean():.2f} uJ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
