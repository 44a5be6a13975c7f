"""A pytest plugin that runs EXtra-data's own tests against exfel_data.

``extra_data`` and its public modules are replaced by aliases of ours before any test is
imported; only ``extra_data.tests`` (the test files and their mock-data writers) stays the
real package. Used by ``python -m tests.compat`` (see docs/compat.md); not part of the suite.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

#: extra_data module -> the exfel_data module offering the same public names.
ALIASES = {
    "extra_data": "exfel_data",
    "extra_data.reader": "exfel_data",
    "extra_data.components": "exfel_data.detectors",
    "extra_data.stacking": "exfel_data.detectors",
    "extra_data.exceptions": "exfel_data.exceptions",
    "extra_data.keydata": "exfel_data.keydata",
    "extra_data.sourcedata": "exfel_data.source",
    "extra_data.file_access": "exfel_data.file_access",
}


#: Modules whose names EXtra-data does not export at the top level: a test helper they
#: define that we lack (e.g. ``keydata.expand_indexing``) comes from the real package.
INTERNAL = {"extra_data.keydata", "extra_data.sourcedata", "extra_data.file_access"}
REAL_NAME = "_real_extra_data"


class AliasModule(types.ModuleType):
    """A module whose every attribute is looked up on another module."""

    def __init__(self, name: str, target: str) -> None:
        super().__init__(name)
        self.__target__ = target

    def __getattr__(self, name: str):
        target = importlib.import_module(self.__target__)
        try:
            return getattr(target, name)
        except AttributeError:
            if self.__name__ in INTERNAL and not name.startswith("__"):
                real = importlib.import_module(self.__name__.replace("extra_data", REAL_NAME))
                return getattr(real, name)
            raise AttributeError(
                f"{self.__name__}.{name}: exfel_data has no {self.__target__}.{name}") from None


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, real_path: list[str]) -> None:
        self.real_path = real_path

    def find_spec(self, fullname, path=None, target=None):
        if fullname in ALIASES:
            return importlib.machinery.ModuleSpec(fullname, self,
                                                  is_package=fullname == "extra_data")
        return None

    def create_module(self, spec):
        module = AliasModule(spec.name, ALIASES[spec.name])
        if spec.name == "extra_data":
            module.__path__ = self.real_path  # so extra_data.tests is the real test package
        return module

    def exec_module(self, module) -> None:
        pass


def install() -> None:
    """Put the aliases in place (before anything imports extra_data)."""
    if isinstance(sys.modules.get("extra_data"), AliasModule):
        return
    real = importlib.util.find_spec("extra_data")
    if real is None:
        raise ImportError("extra-data is not installed: pip install '.[test]'")
    for name in [n for n in sys.modules if n == "extra_data" or n.startswith("extra_data.")]:
        del sys.modules[name]
    # The real package under another name, for INTERNAL helpers only.
    spec = importlib.util.spec_from_file_location(
        REAL_NAME, real.origin, submodule_search_locations=list(real.submodule_search_locations))
    module = importlib.util.module_from_spec(spec)
    sys.modules[REAL_NAME] = module
    spec.loader.exec_module(module)
    sys.meta_path.insert(0, _AliasFinder(list(real.submodule_search_locations)))


install()
