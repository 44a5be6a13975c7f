"""Find multi-module detectors and their module sources from source names only.

Nothing here opens a file: identification works on the source names a
collection already knows from its (cached) index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ['DetectorKind', 'DetectorSources', 'KINDS', 'find_detectors', 'detector_modules',
           'module_sources']


@dataclass(frozen=True)
class DetectorKind:
    """Naming rules of one detector type."""

    name: str                # class name, e.g. 'AGIPD1M'
    det_name_pattern: str    # regex for the detector name (first part of the source)
    module_pattern: str      # regex after '/DET/' or '/CORR/', group 'modno'
    n_modules: int
    module_shape: tuple
    main_key: str
    mask_key: str
    modnos_start_at: int = 0
    #: Index group with one row per frame ('image' for XTDF); None: one row per train
    frames_group: str | None = 'image'

    def _regex(self, kind: str) -> re.Pattern:
        return re.compile(rf'(?P<det>{self.det_name_pattern})/{kind}/{self.module_pattern}$')

    def match(self, source: str):
        """``(detector_name, 'corr'|'raw', module_number)`` or None."""
        for kind, label in (('CORR', 'corr'), ('DET', 'raw')):
            m = self._regex(kind).match(source)
            if m:
                return m['det'], label, int(m['modno'])
        return None


_XTDF_MOD = r'(?P<modno>\d+)CH\d+:(?:xtdf|output)'
_JF_MOD = r"(?:JNGFR|MODULE_|RECEIVER-)(?P<modno>\d+)(?::[^/]*)?"

KINDS: dict[str, DetectorKind] = {k.name: k for k in (
    DetectorKind('AGIPD1M', r'[^/]+_AGIPD1M[^/]*', _XTDF_MOD, 16, (512, 128),
                 'image.data', 'image.mask'),
    DetectorKind('AGIPD500K', r'[^/]+_AGIPD500K[^/]*', _XTDF_MOD, 8, (512, 128),
                 'image.data', 'image.mask'),
    DetectorKind('LPD1M', r'[^/]+_LPD1M[^/]*', _XTDF_MOD, 16, (256, 256),
                 'image.data', 'image.mask'),
    DetectorKind('DSSC1M', r'[^/]+_DSSC1M[^/]*', _XTDF_MOD, 16, (128, 512),
                 'image.data', 'image.mask'),
    DetectorKind('JUNGFRAU', r'[^/]+_(?:JNGFR|JF\d*M|JUNGF|JF|JF500K\d?)[^/]*', _JF_MOD, 0,
                 (512, 1024), 'data.adc', 'data.mask', modnos_start_at=1,
                 frames_group=None),
)}


@dataclass
class DetectorSources:
    """Module sources of one detector found in a collection."""

    kind: DetectorKind
    detector_name: str
    corr: dict[int, str] = field(default_factory=dict)  # module number -> source
    raw: dict[int, str] = field(default_factory=dict)

    @property
    def modules(self) -> list[int]:
        """Module numbers found (as in the source names), raw or corrected."""
        return sorted(set(self.corr) | set(self.raw))

    @property
    def default(self) -> dict[int, str]:
        """The sources used unless told otherwise: corrected when present, sorted by module."""
        return dict(sorted((self.corr or self.raw).items()))

    @property
    def all_sources(self) -> set[str]:
        return set(self.corr.values()) | set(self.raw.values())

    @property
    def n_modules(self) -> int:
        """Modules of the full detector: fixed by the kind, else up to the highest found."""
        return self.kind.n_modules or max(self.modules) - self.kind.modnos_start_at + 1


def find_detectors(sources: Iterable[str], kinds: Iterable[str] | None = None
                   ) -> dict[tuple[str, str], DetectorSources]:
    """Group instrument source names into detectors.

    Returns ``{(kind name, detector name): DetectorSources}``. A source matches
    at most one kind (the first in *kinds* order).
    """
    use = [KINDS[k] for k in (kinds or KINDS)]
    found: dict[tuple[str, str], DetectorSources] = {}
    for src in sorted(sources):
        for kind in use:
            m = kind.match(src)
            if m is None:
                continue
            det_name, label, modno = m
            ds = found.setdefault((kind.name, det_name), DetectorSources(kind, det_name))
            getattr(ds, label)[modno] = src
            break
    return found


def module_sources(sources: Iterable[str]) -> set[str]:
    """Every source (raw or corrected) that is a module of a known multi-module detector."""
    out: set[str] = set()
    for ds in find_detectors(sources).values():
        out |= ds.all_sources
    return out


def detector_modules(sources: Iterable[str]) -> dict[str, dict[int, str]]:
    """``{detector name: {module number: source}}`` sorted by name and module number.

    The one place that decides which sources are detector modules: the detector
    classes, ``run.detector_modules()`` / ``info()``, ``convert --to cxi`` and
    ``serve-run --append-detector-modules`` all use it. Module numbers are those in
    the source names (JUNGFRAU from 1); corrected sources are preferred when a
    detector has both.
    """
    found = find_detectors(sources)
    return {ds.detector_name: ds.default
            for ds in sorted(found.values(), key=lambda d: d.detector_name)}
