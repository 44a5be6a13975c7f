"""Exceptions for multi-module detector access.

They subclass ``ValueError`` so code written against EXtra-data (which raises
``ValueError`` in the same situations) keeps working.
"""

__all__ = ['DetectorError', 'ModuleMismatchError', 'FillValueError', 'NoDetectorError']


class DetectorError(ValueError):
    """Base class for detector data problems."""


class ModuleMismatchError(DetectorError):
    """Modules disagree (shape, dtype, numbering) in a way that cannot be filled."""


class FillValueError(DetectorError):
    """A fill value is missing or cannot be stored in the data's dtype."""


class NoDetectorError(DetectorError, KeyError):
    """No (or more than one) matching multi-module detector in the data."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''
