"""One analysis file, run offline on a run's files and live on a stream (docs/analysis.md).

The contract (what an analysis file provides) is in :mod:`.contract`, the offline runner
in :mod:`.offline`; the live runner is ``bridge.process`` (``exfel-bridge process``).
"""

from .contract import (
    Analysis,
    AnalysisError,
    AnalysisSpec,
    ReducerError,
    check_result,
    load_analysis,
    parse_param,
    resolve_params,
)
from .offline import merge_parts, run_offline
from .result import AnalysisResult, read_result, write_result
from .stats import RunStats

__all__ = [
    "Analysis", "AnalysisError", "AnalysisSpec", "ReducerError", "check_result",
    "load_analysis", "parse_param", "resolve_params", "run_offline", "merge_parts",
    "AnalysisResult", "read_result", "write_result", "RunStats",
]
