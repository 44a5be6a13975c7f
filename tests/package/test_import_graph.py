"""The package import graph (exfel_data and bridge) has no cycle.

Every import counts, also those inside functions (lazy imports hide a cycle from
Python but not from a reader): modules form a one-way stack.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ('exfel_data', 'bridge')


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of our packages imported by one file (a package import means its __init__)."""
    is_pkg = path.name == '__init__.py'
    package = name if is_pkg else name.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.split('.')
                parent = parent[:len(parent) - node.level + 1]
                base = '.'.join(parent + ([base] if base else []))
            # 'from pkg import mod' imports pkg.mod; 'from mod import name' imports mod
            targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in known else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            # importing a.b.c runs a/__init__ and a/b/__init__ too
            parts = t.split('.')
            for i in range(1, len(parts) + 1):
                mod = '.'.join(parts[:i])
                if mod in known and mod != name:
                    out.add(mod)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob('*.py')}
    known = set(files)
    graph = {name: _imports(path, name, known) for name, path in files.items()}
    # A package's __init__ importing its own submodules is how packages work, and
    # a submodule importing a sibling loads the parent first: those edges are not
    # dependencies between modules.
    for name, deps in graph.items():
        graph[name] = {d for d in deps
                       if not (name.startswith(d + '.') or d.startswith(name + '.'))}
    return graph


def _find_cycle(graph: dict[str, set[str]]):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_graph_sees_known_edges():
    graph = _graph()
    assert 'exfel_data.detectors.keydata' in graph['exfel_data.detectors.base']
    assert 'exfel_data.collection' in graph['exfel_data.opening']


def test_no_import_cycle():
    cycle = _find_cycle(_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_cycle_finder_finds_one():
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
