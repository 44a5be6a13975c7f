"""A tiny EXDF writer for hygiene tests: exact control over INDEX contents."""

import h5py
import numpy as np

VLEN = h5py.special_dtype(vlen=bytes)


def write_exdf(path, train_ids, *, version="1.3", flag=None, origin=None, control=None,
               instrument=None, run_values=None, attrs=None, old_index=False,
               timeserver=False, pad=0):
    """Write one EXDF file.

    control: {source: {key_path: values}}; one value per train row (count 1 each).
    instrument: {source: {group: (counts, {key: data})}}; data rows = counts.sum().
    attrs: {(source, key_path): {attr: value}} set on the CONTROL key group.
    pad: extra zero rows at the end of INDEX (preallocation).
    """
    control = control or {}
    instrument = instrument or {}
    tids = np.asarray(train_ids, dtype=np.uint64)
    n = len(tids)
    with h5py.File(path, "w") as f:
        f["INDEX/trainId"] = np.concatenate([tids, np.zeros(pad, np.uint64)])
        if version != "0.5":
            fl = np.ones(n, np.int32) if flag is None else np.asarray(flag, np.int32)
            if version == "1.1" and flag is None:
                fl = np.zeros(n, np.int32)
            f["INDEX/flag"] = np.concatenate([fl, np.zeros(pad, np.int32)])
            f["INDEX/timestamp"] = np.concatenate([
                1_700_000_000_000_000_000 + (tids - tids.min()) * 100_000_000
                if n else tids, np.zeros(pad, np.uint64)]).astype(np.uint64)
        if origin is not None:
            f["INDEX/origin"] = np.concatenate([np.asarray(origin, np.int32),
                                                np.zeros(pad, np.int32)])
        source_ids = []
        if timeserver:
            source_ids.append("Karabo_TimerServer")
        for src, keys in control.items():
            source_ids.append(f"CONTROL/{src}")
            idx = f.create_group(f"INDEX/{src}")
            _write_index(idx, np.arange(n), np.ones(n), pad, old_index)
            f.require_group(f"RUN/{src}")
            for kp, values in keys.items():
                values = np.asarray(values)
                dt = VLEN if values.dtype.kind in "OUS" else values.dtype
                data = values.astype(object) if dt is VLEN else values
                if dt is VLEN:
                    data = np.array([v.encode() if isinstance(v, str) else v
                                     for v in data.ravel()], dtype=object).reshape(data.shape)
                f.create_dataset(f"CONTROL/{src}/{kp}/value", data=data, dtype=dt)
                f[f"CONTROL/{src}/{kp}/timestamp"] = np.arange(len(values), dtype=np.uint64)
                rv = (run_values or {}).get((src, kp), data[:1])
                f.create_dataset(f"RUN/{src}/{kp}/value", data=rv, dtype=dt)
                f[f"RUN/{src}/{kp}/timestamp"] = np.zeros(1, np.uint64)
                for a, v in (attrs or {}).get((src, kp), {}).items():
                    f[f"CONTROL/{src}/{kp}"].attrs[a] = v
        for src, groups in instrument.items():
            for group, (counts, keys) in groups.items():
                source_ids.append(f"INSTRUMENT/{src}/{group}")
                counts = np.asarray(counts)
                firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n else counts
                _write_index(f.create_group(f"INDEX/{src}/{group}"), firsts, counts, pad,
                             old_index)
                for k, data in keys.items():
                    f[f"INSTRUMENT/{src}/{group}/{k.replace('.', '/')}"] = data
        sid_path = "METADATA/dataSourceId" if version == "0.5" else \
            "METADATA/dataSources/dataSourceId"
        f.create_dataset(sid_path, data=[s.encode() for s in source_ids] + [b""] * 2,
                         dtype=VLEN)
        if version != "0.5":
            f["METADATA/dataFormatVersion"] = [version.encode()]
            f.create_dataset("METADATA/runNumber", data=[7], dtype=np.uint32)
            f.create_dataset("METADATA/proposalNumber", data=[1234], dtype=np.uint32)
            f["METADATA/creationDate"] = [b"20261122T020000Z"]


def _write_index(grp, firsts, counts, pad, old_index):
    firsts = np.asarray(firsts, np.uint64)
    counts = np.asarray(counts, np.uint64)
    z = np.zeros(pad, np.uint64)
    grp["first"] = np.concatenate([firsts, z])
    if old_index:
        last = firsts + counts - (counts > 0)
        grp["last"] = np.concatenate([last, z])
        grp["status"] = np.concatenate([(counts > 0).astype(np.uint64), z])
    else:
        grp["count"] = np.concatenate([counts, z])
