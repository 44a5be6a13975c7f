"""Intensity against motor position: a scan, binned, updating live.

An analysis file (docs/analysis.md)::

    exfel-bridge process 4545 recipes/analysis_scan.py --publish tcp://*:4601 \\
        -p motor=SPB_IRU_MOTORS/MOTOR/X -p bins='[0.0, 10.0, 50]' --out scan.h5
    exfel-bridge view tcp://127.0.0.1:4601            # intensity vs position, live

    exfel-data process /data/r0238 recipes/analysis_scan.py -p bins='[0.0, 10.0, 50]'

The intensity is the sum of ``intensity_key`` of ``intensity_source`` (default: the XGM
pulse energy; a camera's ``data.image.pixels`` works too). Result: ``scan.x`` (bin
centres), ``scan.y`` (mean intensity per bin, NaN where empty), ``counts`` (trains per
bin), ``outside`` (trains whose position fell outside the bins).
"""

import numpy as np

PARAMS = {
    "motor": "SPB_IRU_MOTORS/MOTOR/X",
    "motor_key": "actualPosition.value",
    "intensity_source": "SA1_XTD2_XGM/XGM/DOOCS",
    "intensity_key": "pulseEnergy.photonFlux.value",
    "bins": [0.0, 10.0, 20],      # start, stop, number of bins
}


def process(train_id, data, params):
    position = float(data[params["motor"]][params["motor_key"]])
    intensity = float(np.sum(data[params["intensity_source"]][params["intensity_key"]]))
    return {"position": position, "intensity": intensity}


class Reducer:
    def __init__(self, params):
        start, stop, n = params["bins"]
        self.edges = np.linspace(start, stop, int(n) + 1)
        self.sums = np.zeros(int(n))
        self.counts = np.zeros(int(n), dtype=np.int64)
        self.outside = 0

    def add(self, train_id, result):
        i = np.searchsorted(self.edges, result["position"], side="right") - 1
        if 0 <= i < len(self.sums):
            self.sums[i] += result["intensity"]
            self.counts[i] += 1
        else:
            self.outside += 1

    def merge(self, other):
        self.sums += other.sums
        self.counts += other.counts
        self.outside += other.outside

    def partial(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.counts > 0, self.sums / self.counts, np.nan)
        return {"scan": {"x": (self.edges[:-1] + self.edges[1:]) / 2, "y": mean},
                "counts": self.counts, "outside": self.outside}
