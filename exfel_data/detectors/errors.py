"""Exceptions and warnings for multi-module detector access.

The exceptions belong to the project's hierarchy (:class:`~exfel_data.exceptions.ExfelDataError`)
and subclass ``ValueError`` so code written against EXtra-data (which raises ``ValueError`` in
the same situations) keeps working.
"""

from __future__ import annotations

import os
import sys
import warnings

from exfel_data.exceptions import ExfelDataError

__all__ = ['DetectorError', 'ModuleMismatchError', 'ModuleIndexError', 'FillValueError',
           'NoDetectorError', 'NoMaskError', 'DetectorDataWarning', 'warn_user']


class DetectorError(ExfelDataError, ValueError):
    """Base class for detector data problems."""


class ModuleMismatchError(DetectorError):
    """Modules disagree (shape, dtype, numbering) in a way that cannot be filled."""


class ModuleIndexError(ModuleMismatchError, IndexError):
    """A module number outside the detector's modules (an ``IndexError``, as EXtra-data)."""


class FillValueError(DetectorError):
    """A fill value is missing or cannot be stored in the data's dtype."""


class NoDetectorError(DetectorError, KeyError):
    """No (or more than one) matching multi-module detector in the data."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


class NoMaskError(NoDetectorError, RuntimeError):
    """``masked_data()`` on data without a mask key (raw data); a ``RuntimeError`` as
    EXtra-data raises there."""


class DetectorDataWarning(UserWarning):
    """Detector data is incomplete or inconsistent (missing modules, odd frame counts)."""


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def warn_user(message: str, category: type[Warning] = DetectorDataWarning) -> None:
    """Warn once, attributing the warning to the first caller outside ``exfel_data``.

    The call depth inside the package varies (``AGIPD1M(run)``, ``open_detector(run)``,
    ``det.get_array()``...), so a fixed ``stacklevel`` would point into our code or at
    ``sys:1``; this walks the stack to the user's line instead.
    """
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
