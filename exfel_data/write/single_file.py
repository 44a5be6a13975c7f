"""A selection in one EXDF file: ``write()`` copies the data, ``write_virtual()`` links it.

Both give a file that ``H5File`` (and EXtra-data) open like a run: the selected sources,
keys and trains, their ``INDEX``, ``METADATA`` and ``RUN`` values. ``write_virtual`` and
``get_virtual_dataset`` make HDF5 virtual datasets: the file holds only a map of rows in the
run's files, so it is small and stays valid while those files stay where they are (reading
it needs HDF5 >= 1.10). Files are written under a temporary name and renamed when complete.
:class:`WriteMethods` holds the collection methods.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["WriteMethods", "virtual_layout", "virtual_dataset", "write_virtual", "write_copy"]


def virtual_layout(kd):
    """An ``h5py.VirtualLayout`` of the selected rows of key *kd*, in train order."""
    import h5py

    chunks = kd.data_chunks()
    n_rows = sum(c.total_count for c in chunks)
    layout = h5py.VirtualLayout((n_rows,) + tuple(kd.entry_shape), dtype=kd.dtype)
    sources: dict = {}
    row = 0
    for c in chunks:
        n = c.total_count
        if not n:
            continue
        vsrc = sources.get(c.file.filename)
        if vsrc is None:
            shape = c.file.dataset(c.dataset_path).shape
            vsrc = sources[c.file.filename] = h5py.VirtualSource(
                os.path.abspath(c.file.filename), c.dataset_path, shape=shape, dtype=kd.dtype)
        layout[row:row + n] = vsrc[c.first:c.first + n]
        row += n
    return layout


def _is_virtualisable(kd) -> bool:
    # HDF5 maps fixed-size types only; variable-length strings are copied instead.
    return np.dtype(kd.dtype).kind not in "OSU" and len(kd.data_chunks()) > 0


def virtual_dataset(kd, filename=None):
    """One key as a virtual dataset in a new file; see ``KeyData.get_virtual_dataset``."""
    import h5py

    if np.dtype(kd.dtype).kind in "OSU":
        raise TypeError(f"{kd.source} {kd.key}: variable-length strings cannot be mapped as "
                        "a virtual dataset; read them with .ndarray()")
    layout = virtual_layout(kd)
    if filename is None:
        fd, filename = tempfile.mkstemp(suffix="-exfel-data-vds.h5")
        os.close(fd)
    final = Path(filename)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w", libver=("v110", "latest")) as f:
            f.create_virtual_dataset(f"{kd.source}/{kd.key.replace('.', '/')}", layout,
                                     fillvalue=_fill(kd.dtype))
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return h5py.File(final, "r")[f"{kd.source}/{kd.key.replace('.', '/')}"]


def _fill(dtype):
    return np.nan if np.dtype(dtype).kind == "f" else None


def write_virtual(data, filename) -> Path:
    """The selection as an EXDF file of virtual datasets; see ``DataCollection.write_virtual``."""
    from .convert import _timestamps_ns
    from .exdf_writer import ExdfWriter

    tids = np.asarray(data.train_ids, dtype=np.uint64)
    ts = _timestamps_ns(data)
    meta = _metadata(data)
    w = ExdfWriter(filename, tids, format_version="1.3", timestamps=ts if ts.all() else None,
                   run_number=meta.get("runNumber", 0), proposal=meta.get("proposalNumber", 0))
    try:
        for source in sorted(data.all_sources):
            sd = data[source]
            keys = sorted(sd.keys())
            if sd.is_control:
                w.add_control_source(source, counts=_counts(sd, keys[0]) if keys else 0)
            else:
                groups = {}
                for k in keys:
                    groups.setdefault(k.partition(".")[0], k)
                w.add_instrument_source(source, {g: _counts(sd, k) for g, k in groups.items()})
            for group in _key_groups(sd, keys):
                # a control key's value and timestamp go together: both mapped or both copied
                if _is_virtualisable(sd[group[0]]):
                    for k in group:
                        kd = sd[k]
                        w.add_virtual_key(source, k, virtual_layout(kd), fillvalue=_fill(kd.dtype))
                else:
                    for k in group:
                        _copy_key(w, sd, k)
            _copy_run_group(w, sd)
        return w.close()
    except BaseException:
        w.abort()
        raise


def _metadata(data) -> dict:
    try:
        meta = data.run_metadata()
    except Exception:  # several runs, or a file without METADATA numbers
        return {}
    return {k: int(meta[k]) for k in ("runNumber", "proposalNumber") if meta.get(k)}


def _key_groups(sd, keys: list[str]) -> list[list[str]]:
    """Keys to write together: ``[path.value, path.timestamp]`` of control keys."""
    if not sd.is_control:
        return [[k] for k in keys]
    bases = sorted({k.rpartition(".")[0] for k in keys})
    return [[f"{b}.value", f"{b}.timestamp"] for b in bases]


def _counts(sd, key: str) -> np.ndarray:
    return np.asarray(sd[key].data_counts(labelled=False), dtype=np.int64)


def _copy_key(w, sd, key: str) -> None:
    """A key HDF5 cannot map (strings, or no rows at all) written as a real dataset."""
    from .exdf_writer import STRING_DTYPE

    kd = sd[key]
    dtype = STRING_DTYPE if np.dtype(kd.dtype).kind in "OSU" else kd.dtype
    if sd.is_control:
        base, _, leaf = key.rpartition(".")
        if leaf == "value":
            w.add_control_key(sd.source, base, dtype, kd.entry_shape)
        w.write(sd.source, key, kd.ndarray())
    else:
        w.add_instrument_key(sd.source, key, dtype, kd.entry_shape)
        w.write(sd.source, key, kd.ndarray())


def _copy_run_group(w, sd) -> None:
    """``RUN/<source>`` copied as it is (dtypes, attributes) from the source's first file."""
    if not sd.is_control:
        return
    for fa in sd.files:
        group = fa.file.get(f"RUN/{sd.source}")
        if group is not None:
            parent, _, name = sd.source.rpartition("/")
            dest = w.file.require_group(f"RUN/{parent}") if parent else w.file["RUN"]
            if name not in dest:
                fa.file.copy(group, dest, name=name)
            return


def write_copy(data, filename, progress: bool | None = None) -> Path:
    """The selection copied into one EXDF file; see ``DataCollection.write``."""
    from .base import Progress
    from .convert import build_plan
    from .exdf import ExdfConverter

    plan = build_plan(data, fmt="exdf")
    show = plan.nbytes >= 10**9 if progress is None else progress
    bar = Progress(plan.nbytes, plan.n_trains, quiet=not show, desc="writing")
    try:
        ExdfConverter(plan, Path(filename).parent, bar).write_one_file(Path(filename))
    finally:
        bar.close()
    return Path(filename)


class WriteMethods:
    """``write``, ``write_virtual`` and ``get_virtual_dataset`` of a DataCollection."""

    def write(self, filename: str | os.PathLike, *, progress: bool | None = None) -> Path:
        """Copy the selected sources, keys and trains into a new EXDF HDF5 file.

        Choose the data with :meth:`select` / :meth:`select_trains` first. The file keeps
        each key's dtype, chunking and compression and the RUN values of the selected
        sources; it is written under a temporary name and renamed when complete
        (overwriting *filename* if it exists).

        Parameters
        ----------
        filename : str or path-like
            The new file.
        progress : bool, optional
            Show a progress bar (default: when writing 1 GB or more).

        Returns
        -------
        Path
            The file written.
        """
        return write_copy(self, filename, progress)

    def write_virtual(self, filename: str | os.PathLike) -> Path:
        """Write an EXDF file whose datasets are virtual: views of the run's files.

        Nothing is copied (except RUN values and string keys), so the file is small; each
        key is one dataset spanning all sequence files, readable with ``H5File`` or plain
        h5py (HDF5 >= 1.10) wherever the run's files are reachable at the same paths.

        Parameters
        ----------
        filename : str or path-like
            The new file (written under a temporary name, then renamed over it).

        Returns
        -------
        Path
            The file written.
        """
        return write_virtual(self, filename)

    def get_virtual_dataset(self, source: str, key: str,
                            filename: str | os.PathLike | None = None):
        """One key as an HDF5 virtual dataset (rows of the selected trains, all files).

        Parameters
        ----------
        source, key : str
            The key.
        filename : str or path-like, optional
            As for :meth:`KeyData.get_virtual_dataset`.

        Returns
        -------
        h5py.Dataset
        """
        return self[source, key].get_virtual_dataset(filename)
