"""The project's modules import each other without circles, and stay small.

How this works: every module under node/, gossip/ and auction/ is parsed with
`ast` (never imported) and each of its import statements becomes an edge to
the project module it loads, wherever the statement is: at module level or
inside a function (an import moved into a function to dodge a circle is still
the circle).  Only imports under `if TYPE_CHECKING:` are left out: they never
run.  `import a.b.c` and `from a.b import c` count as an edge to a.b.c when
that is a module, else to the nearest enclosing module; the package
`__init__`s executed on the way are not counted.  Each tangle of modules
that reach each other is reported once, with one shortest circle through it
and the file and line of every import between its modules (the ones to cut).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("node", "gossip", "auction")
# Modules are meant to hold one concern each (~600 lines); past this many
# lines a module is due for a split.
MAX_MODULE_LINES = 650


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # "path:line" of the import statement


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the given packages."""
    mods: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: all but those in the body of an
    `if TYPE_CHECKING:` (its `else:` branch does run)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _nearest_module(name: str, mods: dict[str, Path]) -> str | None:
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_edges(root: Path, packages: tuple[str, ...]) -> list[Edge]:
    mods = module_files(root, packages)
    edges: list[Edge] = []
    for mod, path in mods.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for stmt in _runtime_imports(tree):
            targets: list[str] = []
            if isinstance(stmt, ast.Import):
                targets = [alias.name for alias in stmt.names]
            else:
                base = stmt.module or ""
                if stmt.level:
                    # Relative: resolved against this module's package.
                    pkg_parts = mod.split(".") if is_package else mod.split(".")[:-1]
                    anchor = pkg_parts[:len(pkg_parts) - (stmt.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if base else alias.name for alias in stmt.names]
            where = f"{path.relative_to(root)}:{stmt.lineno}"
            for target in targets:
                dst = _nearest_module(target, mods)
                if dst is not None and dst != mod:
                    edges.append(Edge(mod, dst, where))
    return list(dict.fromkeys(edges))  # `from m import a, b` is one import of m


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """Breadth-first from start back to start inside `within`: start, ..., start."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ()) & within):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start] + path[::-1][1:] + [start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"{start} is on no cycle within {sorted(within)}")


@dataclass(frozen=True)
class Circle:
    modules: list[str]  # every module of one strongly connected tangle, sorted
    cycle: list[str]    # one shortest circle through the first module, first == last
    edges: list[Edge]   # every import between modules of the tangle


def find_circles(edges: list[Edge]) -> list[Circle]:
    """Every tangle of modules that import each other (a strongly connected
    component of two or more modules: each reaches each through imports).  The
    module graph is a few hundred edges, so reachability from every module is
    cheap and plainly right."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
    reach = {mod: _reachable(graph, mod) for mod in graph}
    done: set[str] = set()
    circles = []
    for mod in sorted(graph):
        if mod in done or mod not in reach[mod]:
            continue
        tangle = {other for other in reach[mod] if mod in reach.get(other, set())} | {mod}
        done |= tangle
        circles.append(Circle(sorted(tangle), _shortest_cycle(graph, mod, tangle),
                              [e for e in edges if e.src in tangle and e.dst in tangle]))
    return circles


def describe(circle: Circle) -> str:
    return " -> ".join(circle.cycle) + "\n" + "\n".join(
        f"    {e.src} imports {e.dst} at {e.where}" for e in circle.edges)


def test_no_import_circles():
    circles = find_circles(import_edges(ROOT, PACKAGES))
    if circles:
        pytest.fail(f"{len(circles)} import circle(s):\n" + "\n".join(describe(c) for c in circles))


def test_the_checker_finds_a_planted_circle_and_ignores_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    # a -> b at module level; b -> c inside a function; c -> a relatively.
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text("def f():\n    import pkg.sub.c\n")
    (pkg / "sub" / "c.py").write_text("from .. import a\n")
    # d <-> a, but d's import of a is type-only: no circle through d.
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import a\n")
    (pkg / "e.py").write_text("import pkg.d\n")

    circles = find_circles(import_edges(tmp_path, ("pkg",)))

    assert len(circles) == 1, [describe(c) for c in circles]
    assert circles[0].modules == ["pkg.a", "pkg.b", "pkg.sub.c"]
    assert circles[0].cycle == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    assert "pkg.b imports pkg.sub.c at pkg/b.py:2" in describe(circles[0])

    # Removing the function-level import breaks the circle.
    (pkg / "b.py").write_text("def f():\n    pass\n")
    assert find_circles(import_edges(tmp_path, ("pkg",))) == []


def test_no_module_is_longer_than_the_limit():
    too_long = {str(path.relative_to(ROOT)): n
                for path in module_files(ROOT, PACKAGES).values()
                if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    if too_long:
        pytest.fail(f"modules over {MAX_MODULE_LINES} lines (split them by concern): "
                    + ", ".join(f"{p} ({n})" for p, n in sorted(too_long.items(), key=lambda kv: -kv[1])))
