"""The package keeps its shape (docs/architecture.md): no import cycles, the layers import only
downwards, and no source file grows past 300 lines.

The import graph is read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of an lmforge module counts, at module level and inside functions alike, and so
does ``importlib.import_module("lmforge....")`` with a literal name. A deferred import hides a
cycle from the interpreter, not from the design; only imports under ``if TYPE_CHECKING:`` are
left out, since they never run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "lmforge"
MAX_LINES = 300

# layer -> the layers it must not import (a layer is the first package under lmforge/)
FORBIDDEN = {
    "config": {"stages", "training", "model", "data"},
    "data": {"stages", "training"},
    "model": {"stages"},
    "training": {"stages"},
}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported lmforge module
    line: int
    deferred: bool  # inside a function

    def __str__(self) -> str:
        where = "in a function" if self.deferred else "module level"
        return f"{self.source} -> {self.target} ({module_file(self.source)}:{self.line}, {where})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def module_file(name: str) -> str:
    return str(MODULES[name].relative_to(REPO))


def _owner(dotted: str) -> str | None:
    """The lmforge module an imported name lives in (``a.b.func`` -> ``a.b``)."""
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _targets(node: ast.AST, source: str) -> list[str]:
    """The dotted names an import statement (or a literal import_module call) loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        prefix = node.module or ""
        if node.level:  # relative: resolve against the importing package
            base = source.split(".")
            if MODULES[source].name != "__init__.py":
                base = base[:-1]
            base = base[:len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod
        return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix
                for a in node.names]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def layer(module: str) -> str:
    """The first package under lmforge/ (``lmforge.training.args`` -> ``training``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_edges() -> list[Edge]:
    edges: set[Edge] = set()
    for source, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

        def visit(node: ast.AST, deferred: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if _is_type_checking(child):
                    continue
                for name in _targets(child, source):
                    target = _owner(name) if name.split(".")[0] == "lmforge" else None
                    if target and target != source:
                        edges.add(Edge(source, target, child.lineno, deferred))
                visit(child, deferred or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(tree, False)
    return sorted(edges, key=lambda e: (e.source, e.target, e.line))


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in edges:
        graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _describe(components: list[list[str]], edges: list[Edge]) -> str:
    lines = []
    for members in components:
        lines.append("cycle: " + ", ".join(members))
        lines += [f"  {e}" for e in edges if e.source in members and e.target in members]
    return "\n".join(lines)


def test_the_import_graph_is_read_from_the_source():
    """The walker sees the imports it must see (else an empty graph would pass every check)."""
    edges = import_edges()
    pairs = {(e.source, e.target) for e in edges}
    assert len(MODULES) > 50 and len(edges) > 100
    assert ("lmforge.commands.train", "lmforge.stages") in pairs  # deferred, in a function
    assert any(not e.deferred and e.target == "lmforge.errors" for e in edges)
    tree = ast.parse("import lmforge.config\nfrom lmforge.model import loader\n"
                     "def f():\n    importlib.import_module('lmforge.errors')\n")
    names = [n for node in ast.walk(tree) for n in _targets(node, "lmforge.cli")]
    assert {"lmforge.config", "lmforge.model.loader", "lmforge.errors"} <= set(names)


def test_cycle_finder_finds_a_cycle():
    members = sorted(MODULES)[:3]
    fake = [Edge(members[0], members[1], 1, False), Edge(members[1], members[2], 1, True),
            Edge(members[2], members[0], 1, True)]
    assert cycles(fake) == [members]
    assert cycles(fake[:2]) == []


def test_no_import_cycles():
    edges = import_edges()
    found = cycles(edges)
    assert not found, ("import cycles (deferred imports count too; move the shared piece to "
                       "the lower module):\n" + _describe(found, edges))


def test_layers_import_only_downwards():
    bad = [e for e in import_edges() if layer(e.target) in FORBIDDEN.get(layer(e.source), ())]
    assert not bad, "layer violations (docs/architecture.md):\n" + "\n".join(map(str, bad))


def test_only_the_front_ends_import_the_stage_recipes():
    """stages/ is the top of the runtime: training/, model/, data/ and config/ never reach up."""
    low = {"training", "model", "data", "config", "rl", "rewards", "errors", "utils"}
    bad = [e for e in import_edges()
           if layer(e.target) == "stages" and layer(e.source) in low]
    assert not bad, "\n".join(map(str, bad))


def test_no_source_file_over_300_lines():
    long = {str(p.relative_to(REPO)): n for p in sorted(SRC.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, (f"files over {MAX_LINES} lines (split them into well-named modules): "
                      f"{long}")
