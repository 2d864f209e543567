#!/usr/bin/env python3
"""Print fleetforge's structure figures: import cycles, upward imports, long files, long functions.

Usage: ``python scripts/structure.py [--list]`` from the repository root. ``--list`` names every
offender, not just the counts. Reads the source with ``ast`` only (nothing is imported).

- import cycles: strongly connected groups of first-party modules (``fleetforge``, ``facts``,
  ``deploys``) in the graph of their imports, counting imports inside functions too (a cycle
  hidden in a function is still a cycle); each group of N modules counts once.
- upward imports: ``facts`` importing ``fleetforge`` (facts should be a leaf), and any module
  outside ``fleetforge.cli`` importing the CLI.
- files over 400 lines and functions over 60 lines (``def`` to its last line, decorators
  excluded), tests and the virtualenv excluded.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fleetforge", "deploys")
FILE_LINES, FUNCTION_LINES = 400, 60


def modules() -> dict[str, Path]:
    """``{dotted module name: path}`` of every first-party source file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """First-party modules that ``name`` imports (the longest known prefix of each import)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    typing_only = {  # imports under `if TYPE_CHECKING:` are for annotations, not run
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
            if not all(name in known for name in names):  # `from pkg import submodule` is no import of pkg
                names.append(base)
        else:
            continue
        for full in names:
            parts = full.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in known and candidate != name:
                    targets.add(candidate)
                    break
    return targets


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def long_functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    return [
        (f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1)
        for node in functions
        if node.end_lineno - node.lineno + 1 > FUNCTION_LINES
    ]


def main(argv: list[str]) -> int:
    found = modules()
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    groups = cycles(graph)
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if (a.startswith("fleetforge.facts") and not b.startswith("fleetforge.facts"))
        or (b.startswith("fleetforge.cli") and not a.startswith("fleetforge.cli"))
    )
    files = sorted(
        (str(p.relative_to(ROOT)), n) for p in found.values() if (n := len(p.read_text().splitlines())) > FILE_LINES
    )
    functions = sorted(item for p in found.values() for item in long_functions(p))
    print(f"modules: {len(found)}")
    print(f"import cycles: {len(groups)}")
    print(f"upward imports: {len(upward)}")
    print(f"files over {FILE_LINES} lines: {len(files)}")
    print(f"functions over {FUNCTION_LINES} lines: {len(functions)}")
    if "--list" in argv:
        for group in groups:
            print("  cycle:", " <-> ".join(group))
        for line in upward:
            print("  upward:", line)
        for name, n in files:
            print(f"  file: {name} ({n} lines)")
        for name, n in functions:
            print(f"  function: {name} ({n} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
