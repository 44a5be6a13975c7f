"""Shared helpers of the bridge tests (imported as ``bridge_helpers``)."""
import time

import numpy as np

LOOPBACK = 'tcp://127.0.0.1:0'
XGM = 'SA1_XTD2_XGM/XGM/DOOCS:output'
CLIENT_FOR = {'REP': 'REQ', 'PUB': 'SUB', 'PUSH': 'PULL'}


def wait_until(condition, timeout=5.0, interval=0.005):
    """Poll ``condition()`` until true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f'condition not met within {timeout} s')
        time.sleep(interval)


def train(tid, n=3):
    """A small two-source train with arrays, scalars and strings."""
    return {
        XGM: {
            'data.intensityTD': np.arange(n, dtype=np.float32) + tid,
            'beam.photonEnergy': 9.3,
            'metadata': {'source': XGM, 'timestamp.tid': tid},
        },
        'SPB_XTD9_XGM/DOOCS/MAIN': {
            'pulseEnergy.photonFlux.value': float(tid),
            'classId.value': 'DoocsXGM',
            'metadata': {'source': 'SPB_XTD9_XGM/DOOCS/MAIN', 'timestamp.tid': tid},
        },
    }
