"""Running mean detector image, with each train's ROI intensity normalised by the XGM.

An analysis file (docs/analysis.md): the same file runs live and offline::

    exfel-bridge serve-run /data/r0238 4545 --dummy-timestamps &
    exfel-bridge process 4545 recipes/analysis_mean_image.py --workers 2 \\
        --publish tcp://*:4600 --out mean.h5 -p roi='[100, 200, 300, 400]'
    exfel-bridge view tcp://127.0.0.1:4600                     # watch it update

    exfel-data process /data/r0238 recipes/analysis_mean_image.py --workers 4 \\
        --out mean.h5 -p roi='[100, 200, 300, 400]'

Result: ``mean_image`` (2-D: the mean over trains of each train's mean frame),
``roi_norm.y`` / ``roi_norm.x`` (per train: ROI sum divided by the XGM pulse energy, and
its train ID, in train order), ``n_trains``. Trains with an XGM reading below ``min_xgm`` (no
beam) are skipped (``process`` returns None).
"""

import numpy as np

PARAMS = {
    "source": "",         # detector/camera source; '' = the first one with an image key
    "key": "",            # image key; '' = image.data, data.adc or data.image.pixels
    "roi": [0, 8, 0, 8],  # y0, y1, x0, x1 of the region of interest (pixels)
    "xgm_source": "SA1_XTD2_XGM/XGM/DOOCS",
    "xgm_key": "pulseEnergy.photonFlux.value",
    "min_xgm": 1.0,       # below this the beam is considered off
}
IMAGE_KEYS = ("image.data", "data.adc", "data.image.pixels")


def find_image(data, params):
    """(source, key) of the image in a train dict."""
    sources = [params["source"]] if params["source"] else sorted(data)
    keys = [params["key"]] if params["key"] else IMAGE_KEYS
    for src in sources:
        for key in keys:
            if key in data.get(src, {}):
                return src, key
    raise KeyError(f"No image key {keys} in sources {sources}; set -p source=... -p key=...")


def process(train_id, data, params):
    xgm = float(data[params["xgm_source"]][params["xgm_key"]])
    if xgm < params["min_xgm"]:
        return None
    src, key = find_image(data, params)
    image = np.asarray(data[src][key], dtype=np.float64)
    while image.ndim > 2:          # frames (and modules) -> one 2-D mean image
        image = image.mean(axis=0)
    y0, y1, x0, x1 = params["roi"]
    return {"image": image, "roi_norm": image[y0:y1, x0:x1].sum() / xgm}


class Reducer:
    def __init__(self, params):
        self.sum = None
        self.n = 0
        self.train_ids = []
        self.roi_norm = []

    def add(self, train_id, result):
        if self.sum is None:
            self.sum = np.zeros_like(result["image"])
        self.sum += result["image"]
        self.n += 1
        self.train_ids.append(train_id)
        self.roi_norm.append(result["roi_norm"])

    def merge(self, other):
        if other.sum is not None:
            self.sum = other.sum.copy() if self.sum is None else self.sum + other.sum
        self.n += other.n
        self.train_ids += other.train_ids
        self.roi_norm += other.roi_norm

    def partial(self):
        order = np.argsort(self.train_ids, kind="stable")
        return {
            "mean_image": self.sum / self.n if self.n else np.zeros((1, 1)),
            "n_trains": self.n,
            # x and y: the viewer plots roi_norm.y against roi_norm.x (the train IDs)
            "roi_norm": {"x": np.asarray(self.train_ids, dtype=np.uint64)[order],
                         "y": np.asarray(self.roi_norm, dtype=np.float64)[order]},
        }
