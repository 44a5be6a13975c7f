"""exfel-data: read, reduce and stream X-ray free-electron laser run data."""

__version__ = "0.1.0"
