"""Read generated files with plain h5py, independently of exfel_data's reader."""

from pathlib import Path

import h5py
import numpy as np


def file_index(f: h5py.File):
    """Yield (source, group, first, count) for the used rows of each index entry."""
    n = int((f['INDEX/trainId'][:] != 0).sum())
    out = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and 'first' in obj:
            parts = name.split('/')
            if ':' in name:
                i = next(i for i, p in enumerate(parts) if ':' in p)
                source, group = '/'.join(parts[:i + 1]), '/'.join(parts[i + 1:])
            else:
                source, group = name, ''
            first = obj['first'][:n].astype(np.int64)
            if 'count' in obj:
                count = obj['count'][:n].astype(np.int64)
            else:
                count = (obj['last'][:n].astype(np.int64) - first + 1) * obj['status'][:n]
            out.append((source, group, first, count))

    f['INDEX'].visititems(visit)
    return out


def read_key(run_dir: Path, source: str, key: str, files=None):
    """All (train IDs per row, rows) of a key across a run's files, in train order."""
    tids, rows = [], []
    control = ':' not in source
    group = '' if control else key.partition('.')[0]
    for path in sorted(files or Path(run_dir).glob('*.h5')):
        with h5py.File(path, 'r') as f:
            if f'INDEX/{source}' not in f:
                continue
            n = int((f['INDEX/trainId'][:] != 0).sum())
            ix = f[f'INDEX/{source}/{group}' if group else f'INDEX/{source}']
            first, count = ix['first'][:n].astype(int), ix['count'][:n].astype(int)
            if control:
                ds = f[f"CONTROL/{source}/{key.replace('.', '/')}/value"]
            else:
                ds = f[f"INSTRUMENT/{source}/{key.replace('.', '/')}"]
            data = ds[:]
            for tid, a, c in zip(f['INDEX/trainId'][:n], first, count, strict=True):
                tids.extend([tid] * c)
                rows.append(data[a:a + c])
    order = np.argsort(np.asarray(tids), kind='stable')
    return np.asarray(tids, dtype=np.uint64)[order], np.concatenate(rows)[order]
