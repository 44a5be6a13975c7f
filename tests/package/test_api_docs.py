"""docs/api.md stays true: every name it lists imports, every ``__all__`` is listed, and the
listed callables carry numpydoc docstrings (issue 9, section 5)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
API_PAGE = DOCS / "api.md"

# The modules whose ``__all__`` the page must list in full.
MODULES_WITH_ALL = ["exfel_data", "exfel_data.analysis", "exfel_data.testing", "bridge",
                    "bridge.serve_run", "bridge.simulation", "bridge.record", "bridge.match"]

# Callables (by ``__module__.__qualname__``) whose docstring is not yet numpydoc: a summary
# of more than one line, or parameters without a ``Parameters`` section. Issue 9 section 5
# emptied it (177 entries at the start); keep it empty: document new public callables
# instead. An entry is only for a callable being documented elsewhere right now, and the
# test fails on stale entries, so this list only shrinks.
NOT_YET_NUMPYDOC = {
}

# Callables with parameters that have no type hint yet (``__module__.__qualname__``; the
# comment names the parameters). Issue 9 section 5 emptied it (29 entries; the selection
# specs got shared aliases in exfel_data/hints.py); keep it empty: type new public callables.
# Same rule as above: an entry only for work under way elsewhere, and the list only shrinks.
NOT_YET_TYPED: set[str] = set()

SECTION_HEADING = re.compile(r"^Parameters\n-{3,}$", re.MULTILINE)
ENTRY = re.compile(r"^- `(\w+)` \((class|function|constant)\): (.+) \[[^\]]+\]\(([^)]+)\)$")


def listed_names() -> dict[str, list[str]]:
    """Module -> the names the page lists under its ``## `module` `` heading."""
    listed: dict[str, list[str]] = {}
    module = None
    for line in API_PAGE.read_text().splitlines():
        heading = re.match(r"^## `([\w.]+)`$", line)
        if heading:
            module = heading.group(1)
            listed[module] = []
        elif line.startswith("- `"):
            assert module is not None, f"api.md entry before any module heading: {line}"
            assert ENTRY.match(line), f"api.md entry not '- `name` (kind): ...': {line}"
            listed[module].append(ENTRY.match(line).group(1))
    return listed


def _has_parameters(func) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    return any(name not in ("self", "cls") for name in signature.parameters)


def _own(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] in ("exfel_data", "bridge")


def public_callables() -> dict[str, tuple[object, object]]:
    """``module.qualname`` -> (docstring holder, signature holder) for every listed callable
    and the public methods and properties of the listed classes (inherited ones included)."""
    found: dict[str, tuple[object, object]] = {}
    for module, names in listed_names().items():
        mod = importlib.import_module(module)
        for name in names:
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                init = obj.__dict__.get("__init__")
                init = init if init is not None and _own(init) else None
                found[f"{obj.__module__}.{obj.__qualname__}"] = (obj, init)
                for klass in obj.__mro__:
                    if not _own(klass):
                        continue
                    for attr, member in vars(klass).items():
                        if attr.startswith("_"):
                            continue
                        if isinstance(member, (staticmethod, classmethod)):
                            member = member.__func__
                        if isinstance(member, property):
                            key = f"{klass.__module__}.{klass.__qualname__}.{attr}"
                            found[key] = (member, None)
                        elif inspect.isfunction(member):
                            found[f"{member.__module__}.{member.__qualname__}"] = (member, member)
            elif inspect.isfunction(obj):
                found[f"{obj.__module__}.{obj.__qualname__}"] = (obj, obj)
    return found


def docstring_problem(holder, signed) -> str | None:
    """What keeps a docstring from being numpydoc with a one-line summary (None: nothing)."""
    doc = inspect.getdoc(holder) or ""
    if inspect.isclass(holder) and signed is not None and signed.__doc__:
        doc += "\n\n" + inspect.getdoc(signed)  # numpydoc allows Parameters on __init__
    if not doc.strip():
        return "no docstring"
    summary = doc.split("\n\n", 1)[0]
    if "\n" in summary:
        return "summary is more than one line"
    if signed is not None and _has_parameters(signed) and not SECTION_HEADING.search(doc):
        return "no Parameters section"
    return None


def test_every_listed_name_imports():
    missing = []
    for module, names in listed_names().items():
        mod = importlib.import_module(module)
        missing += [f"{module}.{name}" for name in names if not hasattr(mod, name)]
    assert not missing, f"docs/api.md lists names that do not exist: {missing}"


@pytest.mark.parametrize("module", MODULES_WITH_ALL)
def test_all_of_module_listed(module):
    listed = listed_names()
    assert module in listed, f"docs/api.md has no '## `{module}`' section"
    mod = importlib.import_module(module)
    unlisted = sorted(set(mod.__all__) - set(listed[module]))
    assert not unlisted, f"{module}.__all__ names missing from docs/api.md: {unlisted}"


def test_entry_kinds_and_links_true():
    for line in API_PAGE.read_text().splitlines():
        match = ENTRY.match(line)
        if not match:
            continue
        name, kind, _, link = match.groups()
        page, _, anchor = link.partition("#")
        assert (DOCS / page).is_file(), f"{name}: link to missing page {page}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (DOCS / page).read_text(), re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{name}: no heading #{anchor} in {page}"


def test_listed_callables_have_numpydoc_docstrings():
    problems = {}
    for qualname, (holder, signed) in public_callables().items():
        problem = docstring_problem(holder, signed)
        if problem and qualname not in NOT_YET_NUMPYDOC:
            problems[qualname] = problem
    assert not problems, f"public callables without a numpydoc docstring: {problems}"


def test_allow_list_has_no_stale_entries():
    found = public_callables()
    stale = sorted(name for name in NOT_YET_NUMPYDOC
                   if name not in found or docstring_problem(*found[name]) is None)
    assert not stale, f"documented now (or gone): delete from NOT_YET_NUMPYDOC: {stale}"


def untyped_parameters(signed) -> list[str]:
    """Names of the parameters of *signed* without a type hint (self, cls, *args excluded)."""
    try:
        signature = inspect.signature(signed)
    except (TypeError, ValueError):
        return []
    return [name for name, p in signature.parameters.items()
            if name not in ("self", "cls") and p.annotation is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_listed_callables_have_typed_signatures():
    found = {qualname: untyped_parameters(signed)
             for qualname, (_, signed) in public_callables().items() if signed is not None}
    untyped = {q: names for q, names in found.items() if names and q not in NOT_YET_TYPED}
    assert not untyped, f"public callables with parameters lacking type hints: {untyped}"
    stale = sorted(q for q in NOT_YET_TYPED if not found.get(q))
    assert not stale, f"typed now (or gone): delete from NOT_YET_TYPED: {stale}"
