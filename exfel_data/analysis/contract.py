"""What an analysis file provides, and loading it: the contract behind both runners.

An analysis is a Python file (or an importable module) with::

    PARAMS = {'roi': [0, 10, 0, 10], 'threshold': 0.5}   # optional: names and defaults

    def setup(params):               # optional: once in each worker process
        ...

    def process(train_id, data, params):   # in worker processes, once per train
        return {'roi_sum': ...}            # or None: nothing to reduce

    class Reducer:                   # one instance gathers every result
        def __init__(self, params): ...
        def add(self, train_id, result): ...       # at line rate
        def partial(self) -> dict: ...             # current result, on request
        def final(self) -> dict: ...               # optional (default: partial())
        def merge(self, other): ...                # optional: fold another Reducer in

See docs/analysis.md. The offline runner (:mod:`exfel_data.analysis.offline`) and the live
one (``bridge.process``) load the same file through :class:`AnalysisSpec`, which carries
the file's text, so workers on other machines need not see the file.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import sys
import traceback
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ExfelDataError

__all__ = ["AnalysisError", "ReducerError", "AnalysisSpec", "Analysis", "load_analysis",
           "parse_param", "resolve_params", "check_result"]


class AnalysisError(ExfelDataError, ValueError):
    """An analysis file, its parameters or a result breaks the contract."""


class ReducerError(AnalysisError):
    """The reducer raised: the run stops (what was reduced before is kept).

    Parameters
    ----------
    message : str
        The error message.
    train_id : int, optional
        The train being added when it raised (None: not in ``add``); kept as ``train_id``.
    tb : str
        The reducer's traceback as text; kept as ``traceback``.
    """

    def __init__(self, message: str, train_id: int | None = None, tb: str = ""):
        super().__init__(message)
        self.train_id = train_id
        self.traceback = tb


@dataclass(frozen=True)
class AnalysisSpec:
    """A picklable description of an analysis: shipped to workers instead of the file.

    Parameters
    ----------
    name : str
        The file's absolute path or the module's name.
    source : str or None
        The file's text (None for an importable module, which workers import themselves).
    sha256 : str
        The hash of the text, stored with every output.
    """

    name: str
    source: str | None
    sha256: str

    @classmethod
    def from_path_or_module(cls, what: str | Path | AnalysisSpec) -> AnalysisSpec:
        """Describe ``what``: a ``.py`` file path, or the name of an importable module.

        Parameters
        ----------
        what : str, path or AnalysisSpec
            A ``.py`` file, a module name, or a spec (returned as it is).

        Returns
        -------
        AnalysisSpec

        Raises
        ------
        AnalysisError
            The file does not exist, or the name is neither a file nor importable.
        """
        if isinstance(what, AnalysisSpec):
            return what
        text = str(what)
        path = Path(text)
        if path.suffix == ".py" or path.is_file():
            if not path.is_file():
                raise AnalysisError(f"Analysis file {text} does not exist")
            source = path.read_text()
            return cls(str(path.resolve()), source, _sha256(source.encode()))
        try:
            module = importlib.import_module(text)
        except ImportError as exc:
            raise AnalysisError(f"Analysis {text!r} is neither a .py file nor an importable "
                                f"module ({exc})") from None
        file = getattr(module, "__file__", None)
        digest = _sha256(Path(file).read_bytes()) if file else ""
        return cls(text, None, digest)

    @property
    def label(self) -> str:
        """A short name: the file's stem or the module's last component."""
        return Path(self.name).stem if self.source is not None else self.name.split(".")[-1]

    def load(self) -> Analysis:
        """The loaded analysis (once per process; later calls return the same object)."""
        key = (self.name, self.sha256)
        if key not in _LOADED:
            _LOADED[key] = Analysis(self, self._module())
        return _LOADED[key]

    def _module(self) -> types.ModuleType:
        if self.source is None:
            return importlib.import_module(self.name)
        # A stable module name derived from the text, registered in sys.modules, so that
        # Reducer objects pickled in one process unpickle in another that loaded it too.
        modname = f"_exfel_analysis_{self.label}_{self.sha256[:12]}"
        if modname in sys.modules:
            return sys.modules[modname]
        module = types.ModuleType(modname)
        module.__file__ = self.name
        code = compile(self.source, self.name, "exec")  # tracebacks show the file's lines
        sys.modules[modname] = module
        try:
            exec(code, module.__dict__)
        except Exception as exc:
            del sys.modules[modname]
            raise AnalysisError(f"Loading analysis {self.name} failed:\n"
                                f"{user_traceback(exc)}") from None
        return module


_LOADED: dict[tuple[str, str], Analysis] = {}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def user_traceback(exc: BaseException) -> str:
    """The traceback text of an exception raised by user code, without our calling frame."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


class Analysis:
    """A loaded analysis: its ``process``, ``Reducer``, optional ``setup`` and ``PARAMS``.

    Parameters
    ----------
    spec : AnalysisSpec
        What was loaded (name, source text, hash).
    module : module
        The imported analysis module.

    Raises
    ------
    AnalysisError
        The module lacks ``process`` or ``Reducer`` (with ``add`` and ``partial``), or
        ``PARAMS`` is not a dict.
    """

    def __init__(self, spec: AnalysisSpec, module: types.ModuleType):
        self.spec = spec
        self.module = module
        where = f"Analysis {spec.name}"
        self.process = getattr(module, "process", None)
        if not callable(self.process):
            raise AnalysisError(f"{where} has no function process(train_id, data, params)")
        self.Reducer = getattr(module, "Reducer", None)
        if not isinstance(self.Reducer, type):
            raise AnalysisError(f"{where} has no class Reducer (with __init__(params), "
                                "add(train_id, result) and partial())")
        for method in ("add", "partial"):
            if not callable(getattr(self.Reducer, method, None)):
                raise AnalysisError(f"{where}: Reducer has no method {method}()")
        self.setup = getattr(module, "setup", None)
        defaults = getattr(module, "PARAMS", None)
        if defaults is not None and not isinstance(defaults, Mapping):
            raise AnalysisError(f"{where}: PARAMS must be a dict of names and default "
                                f"values, not {type(defaults).__name__}")
        self.defaults = dict(defaults) if defaults is not None else None
        self._setup_done: str | None = None

    @property
    def can_merge(self) -> bool:
        """Whether reducers combine (``Reducer.merge``): offline tree reduction, parts."""
        return callable(getattr(self.Reducer, "merge", None))

    def prepare_worker(self, params: dict) -> None:
        """Call ``setup(params)`` once per worker process (again if the parameters change).

        Parameters
        ----------
        params : dict
            The run's parameters.
        """
        key = repr(sorted(params.items()))
        if self.setup is not None and self._setup_done != key:
            self.setup(params)
        self._setup_done = key

    def make_reducer(self, params: dict):
        """A new ``Reducer(params)``.

        Parameters
        ----------
        params : dict
            The run's parameters.

        Raises
        ------
        ReducerError
            ``Reducer(params)`` raised (the message holds its traceback).
        """
        try:
            return self.Reducer(params)
        except Exception as exc:
            raise ReducerError(f"Reducer(params) of {self.spec.name} failed:\n"
                               f"{user_traceback(exc)}", None,
                               user_traceback(exc)) from None

    def call_process(self, train_id: int, data: dict, params: dict
                     ) -> tuple[Any, str | None, str | None]:
        """Call ``process(train_id, data, params)``, catching what it raises.

        Parameters
        ----------
        train_id : int
            The train's ID.
        data : dict
            Its train dict.
        params : dict
            The run's parameters.

        Returns
        -------
        tuple
            ``(result, None, None)``, or ``(None, exception type name, traceback)`` if
            ``process`` raised.
        """
        try:
            return self.process(train_id, data, params), None, None
        except Exception as exc:
            return None, type(exc).__name__, user_traceback(exc)


def load_analysis(what: str | Path | AnalysisSpec) -> Analysis:
    """Load an analysis file or module and check it provides the contract.

    Parameters
    ----------
    what : str, path or AnalysisSpec
        A ``.py`` file, the name of an importable module, or a spec.

    Returns
    -------
    Analysis

    Raises
    ------
    AnalysisError
        The file is missing, fails to import, or lacks ``process`` / ``Reducer``.
    """
    return AnalysisSpec.from_path_or_module(what).load()


# -- parameters ---------------------------------------------------------------------------

def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``'name=value'`` into a name and a value.

    Parameters
    ----------
    text : str
        ``name=value``; the value is read as a Python literal (``3``, ``0.5``, ``True``,
        ``[0, 10]``, ``None``, ``'text'``), else kept as a plain string.

    Returns
    -------
    tuple of (str, object)

    Raises
    ------
    AnalysisError
        No ``=``, or the name is not an identifier.
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise AnalysisError(f"Parameter {text!r} is not name=value (e.g. -p threshold=0.5)")
    value = value.strip()
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return name, value


def resolve_params(analysis: Analysis, given: Mapping[str, Any] | Iterable[str] | None
                   ) -> dict[str, Any]:
    """The parameters for a run: ``PARAMS`` defaults updated by ``given``.

    With ``PARAMS`` declared, unknown names are refused and values are converted to the
    default's type (an int where a float is expected becomes a float).

    Parameters
    ----------
    analysis : Analysis
        The loaded analysis (its ``PARAMS``).
    given : dict, iterable of str or None
        A dict, or ``'name=value'`` strings (``-p``).

    Returns
    -------
    dict

    Raises
    ------
    AnalysisError
        An unknown name, a malformed ``name=value``, or a value not convertible.
    """
    if given is None:
        given = {}
    elif not isinstance(given, Mapping):
        given = dict(parse_param(t) for t in given)
    defaults = analysis.defaults
    if defaults is None:
        return dict(given)
    params = dict(defaults)
    for name, value in given.items():
        if name not in defaults:
            raise AnalysisError(f"Unknown parameter {name!r} for {analysis.spec.name}; "
                                f"its parameters (PARAMS): {', '.join(defaults) or 'none'}")
        params[name] = _coerce(name, value, defaults[name])
    return params


def _coerce(name: str, value: Any, default: Any) -> Any:
    if default is None or value is None or type(value) is type(default):
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        pass  # no silent 1 -> True
    elif isinstance(default, float) and isinstance(value, int):
        return float(value)
    elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(default)(value)
    elif isinstance(default, str):
        return str(value)
    raise AnalysisError(f"Parameter {name}={value!r}: expected {type(default).__name__} "
                        f"like its default {default!r}")


# -- results ------------------------------------------------------------------------------

_SCALARS = (bool, int, float, str, np.generic)


def check_result(result: Any, what: str) -> dict[str, Any]:
    """A result dict flattened (``{'a': {'b': x}}`` -> ``'a.b'``), values as numpy/str.

    Parameters
    ----------
    result : dict
        What ``process`` or the reducer returned.
    what : str
        The producer, named in errors (e.g. ``"Reducer.partial()"``).

    Returns
    -------
    dict
        Flat keys -> numpy arrays / scalars or str.

    Raises
    ------
    AnalysisError
        ``result`` is not a dict, or holds a value that cannot be stored.
    """
    if not isinstance(result, Mapping):
        raise AnalysisError(f"{what} must return a dict of arrays and scalars, not "
                            f"{type(result).__name__}")
    flat: dict[str, Any] = {}
    _flatten(result, "", flat, what)
    return flat


def _flatten(mapping: Mapping, prefix: str, out: dict, what: str) -> None:
    for key, value in mapping.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise AnalysisError(f"{what}: key {key!r} must be a non-empty str without '/'")
        name = prefix + key
        if isinstance(value, Mapping):
            _flatten(value, name + ".", out, what)
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, (_SCALARS, list, tuple, np.ndarray)):
            arr = np.asarray(value)
            if arr.dtype.kind not in "biufcSU":
                raise AnalysisError(f"{what}: {name!r} holds {arr.dtype} values; results "
                                    "are numbers, bools, strings or arrays of those")
            out[name] = arr if arr.ndim else arr[()]
        else:
            raise AnalysisError(f"{what}: {name!r} is a {type(value).__name__}; results "
                                "are numbers, bools, strings, arrays or dicts of those")
