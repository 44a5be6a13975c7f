"""Reading a multi-module detector's data: labelled arrays, trains, files, masked data.

:class:`DataAccessMethods` holds ``get_array``, ``get_dask_array``, ``trains``,
``write_virtual_cxi``, ``write_frames`` and ``masked_data`` of
:class:`~exfel_data.detectors.base.MultiModuleDetector` (which inherits them). Each one
delegates: arrays to :class:`~.keydata.DetectorKeyData` (``det[key]``), trains to
:mod:`.iteration`, files to :mod:`.virtual_cxi` and :mod:`.write_frames`, masks to
:mod:`.masked`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import NoMaskError
from .iteration import iterate_trains
from .masked import MaskedDetectorKeyData
from .virtual_cxi import write_virtual_cxi
from .write_frames import write_frames

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence
    from pathlib import Path

    import xarray as xr
    from numpy.typing import ArrayLike, DTypeLike

    from exfel_data.hints import PulseSpec, Roi

__all__ = ['DataAccessMethods']


class DataAccessMethods:
    """The data-reading and writing methods of a multi-module detector."""

    def get_array(self, key: str | None = None, pulses: PulseSpec | None = None,
                  unstack_pulses: bool = True, *, fill_value: float | None = None,
                  roi: Roi = (), astype: DTypeLike | None = None,
                  subtrain_index: str = 'pulseId', module_gaps: bool = False) -> xr.DataArray:
        """Read one key of all modules into a labelled array.

        Parameters
        ----------
        key : str, optional
            E.g. ``'image.data'`` (default: the detector's main data key).
        pulses : by_index[...], by_id[...], slice, int or list, optional
            Frames to keep in each train: ``by_index`` by position in the train,
            ``by_id`` by pulse ID (a plain slice/list means by_index).
        fill_value : number, optional
            Value for missing data: default NaN for floats, 0 for integers.
        roi : tuple
            Region of interest applied to each module's frame, e.g.
            ``np.s_[:, 100:200]``; for raw AGIPD ``np.s_[0]`` keeps the data (not gain) plane.
        astype : dtype, optional
            Output dtype (converted while reading).
        subtrain_index : {'pulseId', 'cellId'}
            Label of the pulse axis.
        unstack_pulses : bool
            False gives EXtra-data's older layout: one ``train_pulse`` dim (a
            pandas MultiIndex of train and pulse) holding the frames recorded.
        module_gaps : bool
            Make room for all modules of the detector (missing ones filled), as
            needed to assemble the full image.

        Returns
        -------
        xarray.DataArray
            Dims ``(module, train, pulse, [data_gain,] slow_scan, fast_scan)``
            for XTDF frame data, ``(module, train, cell, slow_scan, fast_scan)``
            for JUNGFRAU; coordinates module numbers, train IDs and pulse (or cell) IDs.
        """
        kd = self[key or self.kind.main_key].select_pulses(pulses, subtrain_index)
        return kd.xarray(fill_value=fill_value, roi=roi, astype=astype, module_gaps=module_gaps,
                         unstack_pulses=unstack_pulses)

    def get_dask_array(self, key: str | None = None, *, pulses: PulseSpec | None = None,
                       fill_value: float | None = None, roi: Roi = (),
                       astype: DTypeLike | None = None, subtrain_index: str = 'pulseId',
                       chunk_bytes: int | None = None,
                       module_gaps: bool = False) -> xr.DataArray:
        """Like :meth:`get_array`, but lazy (an xarray wrapping a dask array).

        The task graph holds file names, dataset paths and row numbers only, so it can
        run on a ``dask.distributed`` cluster whose workers reopen the files.

        Parameters
        ----------
        key, pulses, fill_value, roi, astype, subtrain_index, module_gaps
            As for :meth:`get_array`.
        chunk_bytes : int, optional
            Bound on the bytes of one chunk (one module by a number of frames); default
            128 MiB.

        Returns
        -------
        xarray.DataArray
            Labelled like :meth:`get_array`'s result, wrapping a dask array.
        """
        kd = self[key or self.kind.main_key].select_pulses(pulses, subtrain_index)
        kd = kd.drop_unselected_trains()
        return kd.dask_array(fill_value=fill_value, roi=roi, astype=astype, labelled=True,
                             chunk_bytes=chunk_bytes, module_gaps=module_gaps,
                             unstack_pulses=True)

    def trains(self, pulses: PulseSpec | None = None, require_all: bool = True,
               keys: str | Sequence[str] | None = None, *, fill_value: float | None = None,
               subtrain_index: str = 'pulseId', chunk_bytes: int | None = None):
        """Iterate over trains: ``(train_id, {key: DataArray (module, train, pulse, ...)})``.

        As EXtra-data: each array has a length-1 ``train`` dim (none for JUNGFRAU,
        whose arrays are ``(module, cell, slow_scan, fast_scan)``); by default every key
        of the main data's group (``image.*`` / JUNGFRAU ``data.*``) is read and
        trains where a module has no data are skipped. Reads several trains at once
        (about *chunk_bytes* in all) and yields views, so the per-train cost stays small.

        Parameters
        ----------
        pulses
            Pulse selection, as in :meth:`get_array`.
        require_all : bool
            Skip trains where any module has no (selected) data (default). False
            keeps them, with missing modules filled with *fill_value*.
        keys : str or list of str, optional
            Keys to read (default: all keys of the main data's group, e.g.
            ``image.data``, ``image.mask``, ``image.cellId``, ...).
        """
        if keys is None:
            group = self.kind.main_key.split('.', 1)[0] + '.'
            first = self.data[self.modno_to_source[self.modules[0]]]
            keys = sorted(k for k in first.keys() if k.startswith(group) and k in self)
            keys.remove(self.kind.main_key)
            keys.insert(0, self.kind.main_key)
        elif isinstance(keys, str):
            keys = [keys]
        yield from iterate_trains(self, keys, pulses, require_all, fill_value,
                                  subtrain_index, chunk_bytes)

    def write_virtual_cxi(self, filename: str | os.PathLike,
                          fillvalues: dict | None = None) -> Path:
        """Write a CXI file (version 1.5) of virtual datasets pointing into the run.

        EXtra-data's layout, as CrystFEL and Cheetah read it: ``data`` (frames, modules,
        [2,] ss, fs), ``mask`` / ``gain`` when present, ``cellId``, ``pulseId``,
        ``trainId``, ``experiment_identifier``. The file is small and valid while the
        run's files stay where they are; ``exfel-data convert --to cxi`` writes a
        standalone copy instead.

        Parameters
        ----------
        filename : str or path-like
            Output file (written to a temporary name, then renamed).
        fillvalues : dict, optional
            ``{'data': .., 'gain': .., 'mask': ..}`` for missing data (default NaN or 0,
            0, 0xffffffff).

        Returns
        -------
        pathlib.Path
            The file written.
        """
        return write_virtual_cxi(self, filename, fillvalues)

    def write_frames(self, filename: str | os.PathLike, trains: ArrayLike, pulses: ArrayLike
                     ) -> Path:
        """Write selected frames of every module to a new EXDF (EuXFEL HDF5) file.

        As EXtra-data's ``write_frames``: frame *i* is ``(trains[i], pulses[i])``, a train
        ID and a pulse ID as the detector recorded it (``image.pulseId``). Every key of
        each module source is written: the frame group's keys for the chosen frames, the
        other groups (``header``, ``trailer``, ...) whole; the file has all the detector's
        trains (those without a chosen frame have none). It opens with ``H5File`` and
        keeps the source names. Reads one key of one module at a time.

        Parameters
        ----------
        filename : str or path-like
            Output file (written to a temporary name, then renamed).
        trains, pulses : array-like of int
            1-D, one entry per frame.

        Returns
        -------
        pathlib.Path
            The file written.

        Raises
        ------
        ValueError
            *trains* and *pulses* are not 1-D arrays of the same length.
        TrainIDError
            A train ID not in this detector's trains (names the first one).
        """
        return write_frames(self, filename, trains, pulses)

    def masked_data(self, key: str | None = None, *, mask_bits: int | Sequence[int] | None = None,
                    masked_value: float = np.nan, pulses: PulseSpec | None = None,
                    subtrain_index: str = 'pulseId'):
        """Corrected data with bad pixels (per the mask key) replaced by *masked_value*.

        Parameters
        ----------
        key : str, optional
            Data key (default the main data key).
        mask_bits : int or list of int, optional
            Bad-pixel reasons to mask (default: any non-zero mask value).
        masked_value : number
            Replacement for masked pixels (default NaN).

        Returns
        -------
        MaskedDetectorKeyData
            With ``.ndarray()``, ``.xarray()`` and ``.dask_array()``.
        """
        mask_key = self.kind.mask_key
        if self.raw or mask_key not in self:
            raise NoMaskError(
                f"No mask ({mask_key!r}) in {self.detector_name} data: masks come with "
                f"corrected data, and this is {'raw' if self.raw else 'corrected without mask'}"
            )
        if mask_bits is not None and not isinstance(mask_bits, (int, np.integer)):
            bits = 0
            for b in mask_bits:
                bits |= int(b)
            mask_bits = bits
        return MaskedDetectorKeyData(self, key or self.kind.main_key, mask_key=mask_key,
                                     mask_bits=mask_bits, masked_value=masked_value
                                     ).select_pulses(pulses, subtrain_index)
