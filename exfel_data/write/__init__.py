"""Writers of output formats; ``exdf_writer`` is the low-level EXDF (HDF5 run file) writer."""

from .exdf_writer import ExdfWriteError, ExdfWriter, train_timestamps

__all__ = ['ExdfWriter', 'ExdfWriteError', 'train_timestamps']
