"""The shape of the package: no import cycle inside the harness, and the harness uses only
the agent's public names."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent


def _modules(folder: str) -> Dict[str, Path]:
    """``edgebench.<folder>.…`` module name -> file, for every module of the folder."""
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = ["edgebench", folder] + list(path.relative_to(ROOT / folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> Iterator[Tuple[str, List[str]]]:
    """(module, imported names) for every import in the file, at any depth: a lazy import
    inside a function still makes a cycle, only a later one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            yield base, [alias.name for alias in node.names]


def _graph(modules: Dict[str, Path]) -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, set())
        for target, names in _imports(name, path):
            for sub in names:
                if target + "." + sub in modules:
                    edges.add(target + "." + sub)
            if target in modules and not (modules[target].name == "__init__.py" and names):
                edges.add(target)
        edges.discard(name)
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle through each strongly connected group of modules (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    groups: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_in_the_harness():
    assert _cycles(_graph(_modules("harness"))) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")  # __version__ is public


def test_harness_uses_only_public_agent_names():
    private = []
    for name, path in _modules("harness").items():
        for target, names in _imports(name, path):
            if target.startswith("edgebench.agent"):
                hidden = [n for n in names + target.split(".") if _private(n)]
                private += ["%s: %s %s" % (name, target, hidden)] if hidden else []
    assert private == []
