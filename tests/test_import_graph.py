"""The package's import graph, read from the source: every ``import`` counts, at module level or
inside a function. No module imports itself back through others, and only ``selboost/engines/`` imports
an engine (the engines' differences live there; the rest asks the engine object)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "selboost"
ENGINE_PACKAGES = ("xgboost", "lightgbm")


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path):
    """(selboost modules, top-level packages of other imports) that ``path`` imports anywhere."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    own, other = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*anchor, base]))
            # ``from selboost import cuda`` imports the submodule; ``from selboost import Identity`` the package
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.partition(".")[0] == "selboost":
                while target not in MODULES:  # selboost.engines.get_engine -> selboost.engines
                    target = target.rpartition(".")[0]
                if target != name:
                    own.add(target)
            else:
                other.add(target.partition(".")[0])
    return own, other


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycle():
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(module, stack):
        state[module] = "open"
        stack.append(module)
        for target in sorted(GRAPH[module][0]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target, stack)
                if found:
                    return found
        state[module] = "done"
        stack.pop()
        return None

    for module in sorted(GRAPH):
        if module not in state:
            found = visit(module, [])
            if found:
                return found
    return None


def test_the_graph_is_read():
    assert "selboost.engines" in GRAPH["selboost.objectives"][0]
    assert "selboost.engines._adapters" in GRAPH["selboost.engines.xgboost"][0]
    assert "xgboost" in GRAPH["selboost.engines.xgboost"][1]  # its imports inside functions count


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle)


def test_only_the_engine_modules_import_an_engine():
    outside = {name: sorted(other & set(ENGINE_PACKAGES)) for name, (_, other) in GRAPH.items()
               if not name.startswith("selboost.engines") and other & set(ENGINE_PACKAGES)}
    assert not outside, outside
