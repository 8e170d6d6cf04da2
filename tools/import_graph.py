"""Count the import circles and upward imports between compound's layers, from the code's own imports.

    python tools/import_graph.py            # the summary
    python tools/import_graph.py --edges    # and every edge, with the modules that make it
    python tools/import_graph.py --top      # nodes are the first-level packages, not the contract's layers

Every ``import`` and ``from ... import`` in ``src/compound`` counts, at module level or inside a function
(a function-level import is still a dependency: it only runs later). A node is a module of the layers
contract in pyproject.toml (``compound.tables``, ``compound.optimize.students``, ``compound.models.typed``...;
with ``--top``, a first-level package or module such as ``compound.optimize``). ``compound/__init__.py``
``compound/_lazy.py`` (the lazy export table, which names everything by string) and ``compound/_deprecated.py``
(the old names) are left out.

Circles are the elementary cycles of that graph; an upward import is an edge from a node to one in a higher
layer. import-linter (``lint-imports``, run by ``make lint``) enforces the same contract; this script counts.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "compound"

PYPROJECT = ROOT.parents[1] / "pyproject.toml"

#: low to high, for --top (the first-level packages; the contract splits optimize in two)
TOP_LAYERS = [
    ["core"],
    ["store"],
    ["models"],
    ["testing"],
    ["control"],
    ["strategies"],
    ["program"],
    ["retrieval", "tools"],
    ["routing"],
    ["optimize"],
    ["tables"],
    ["evaluate"],
    ["serve", "doctor", "demo"],
    ["cli", "cli_support"],
]


def contract_layers() -> list[list[str]]:
    """The first layers contract of pyproject.toml, low to high, each layer's module names in full."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"][0]
    container = config["containers"][0]
    return [
        [f"{container}.{m.strip()}" for m in layer.replace(":", "|").split("|")] for layer in reversed(config["layers"])
    ]


NODES: list[str] = []  # set by main(): the contract's layer modules, or the first-level packages


def _node(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "compound" or len(parts) < 2 or parts[1] in ("_lazy", "_deprecated"):
        return None
    matches = [n for n in NODES if module == n or module.startswith(n + ".")]
    return max(matches, key=len) if matches else ".".join(parts[:2])


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def edges() -> dict[tuple[str, str], set[str]]:
    """(from node, to node) -> the "module -> module" imports that make the edge."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        src = _node(module)
        if src is None:
            continue
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                dst = _node(target)
                if dst is not None and dst != src:
                    out[(src, dst)].add(f"{module} -> {target}")
                    break
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle (each once, starting at its smallest node)."""
    found = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.append(list(path))
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="print every edge and the imports that make it")
    parser.add_argument("--top", action="store_true", help="nodes: the first-level packages of compound")
    args = parser.parse_args()
    layers = [[f"compound.{n}" for n in names] for names in TOP_LAYERS] if args.top else contract_layers()
    NODES[:] = [n for names in layers for n in names]
    found = edges()
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in found:
        graph[a].add(b)
    level = {name: i for i, names in enumerate(layers) for name in names}
    unknown = sorted({n for e in found for n in e} - set(level))
    upward = [(a, b) for a, b in found if a in level and b in level and level[b] > level[a]]
    circles = cycles(graph)
    nodes = {n for e in found for n in e}
    print(f"{len(nodes)} nodes, {len(found)} edges, {len(circles)} circles, {len(upward)} upward imports")
    for c in circles:
        print("circle:", " -> ".join([*c, c[0]]))
    for a, b in sorted(upward):
        print(f"upward: {a} -> {b}: " + "; ".join(sorted(found[(a, b)])))
    if unknown:
        print("not in LAYERS:", ", ".join(unknown))
    if args.edges:
        for (a, b), how in sorted(found.items()):
            print(f"{a} -> {b}: " + "; ".join(sorted(how)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
