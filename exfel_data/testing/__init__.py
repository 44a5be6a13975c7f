"""Generate realistic EXDF run folders for tests, demos and benchmarks.

>>> from exfel_data.testing import make_run, XGM, AGIPD1M
>>> run_dir = make_run(tmp_path / 'r0001', n_trains=10,
...                    devices=[XGM(), *AGIPD1M(frames_per_train=4, module_shape=(64, 32))])

See ``docs/testing-data.md``.
"""

from .defects import (
    STRUCTURED_DTYPE,
    DefectRecord,
    EmptySource,
    FrameCountMismatch,
    MissingTrains,
    OldIndexLayout,
    OverlappingSequences,
    PaddedSourceList,
    RepeatedTrainId,
    RogueTrainId,
    SourceGaps,
    StructuredKey,
    TrailingZeros,
    TruncatedFile,
    VlenStringKey,
    ZeroTrainId,
)
from .detectors import (
    AGIPD1M,
    AGIPD500K,
    DSSC1M,
    JUNGFRAU,
    LPD1M,
    JungfrauModule,
    MultiModuleDetector,
    XTDFModule,
)
from .devices import (
    XGM,
    Camera,
    Device,
    Digitizer,
    KeySpec,
    LitFrameFinder,
    Motor,
    RunOnlySource,
    SourceSpec,
)
from .runs import FilePlan, RunPlan, default_devices, make_run, proposal_run_dir
from .timing import Timeserver, bunch_pattern_table

__all__ = [
    'make_run', 'RunPlan', 'FilePlan', 'default_devices', 'proposal_run_dir',
    'Device', 'KeySpec', 'SourceSpec', 'XGM', 'Motor', 'Camera', 'Digitizer', 'RunOnlySource',
    'LitFrameFinder', 'Timeserver', 'bunch_pattern_table',
    'MultiModuleDetector', 'XTDFModule', 'JungfrauModule',
    'AGIPD1M', 'AGIPD500K', 'LPD1M', 'DSSC1M', 'JUNGFRAU',
    'DefectRecord', 'TrailingZeros', 'RogueTrainId', 'RepeatedTrainId', 'MissingTrains',
    'SourceGaps', 'FrameCountMismatch', 'TruncatedFile', 'EmptySource', 'OverlappingSequences',
    'VlenStringKey', 'StructuredKey', 'PaddedSourceList', 'OldIndexLayout', 'ZeroTrainId',
    'STRUCTURED_DTYPE',
]
