"""Report the import cycles between modules of app/ and training/.

    .venv/bin/python scripts/import_cycles.py [PACKAGE ...]   # default: app training

A cycle is a strongly connected component of the module import graph with more than one
module (A imports B ... imports A), function-local and TYPE_CHECKING imports included: a local
import that hides a cycle from the interpreter is still a cycle. import-linter's
`acyclic_siblings` contract finds cycles between sibling packages; this finds them between
modules, the unit a reader follows. The graph comes from grimp, import-linter's own parser.
Exit status 1 if there is any cycle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import grimp


def strongly_connected(
    nodes: Iterable[str], edges: Callable[[str], Iterable[str]]
) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on long chains): every strongly
    connected component of more than one node, each sorted, the list sorted by size then name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(edges(successor)))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return sorted(found, key=lambda component: (-len(component), component))


def import_cycles(graph: grimp.ImportGraph, packages: Iterable[str]) -> list[list[str]]:
    """The module-level import cycles inside `packages` (names of packages in `graph`)."""
    roots = tuple(packages)
    inside = {
        module
        for module in graph.modules
        if any(module == root or module.startswith(root + ".") for root in roots)
    }
    return strongly_connected(
        inside, lambda module: graph.find_modules_directly_imported_by(module) & inside
    )


def main(argv: list[str]) -> int:
    packages = argv or ["app", "training"]
    graph = grimp.build_graph(*packages, cache_dir=None)
    cycles = import_cycles(graph, packages)
    for number, cycle in enumerate(cycles, 1):
        print(f"cycle {number}: {len(cycle)} modules: {', '.join(cycle)}")
    print(f"{len(cycles)} import cycle(s) in {', '.join(packages)}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
