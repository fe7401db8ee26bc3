"""The rooms of the house and which way imports may flow between them.

Every ``import`` in the shipped packages and the training scripts is read with ``ast`` (function-level
imports included, ``if TYPE_CHECKING:`` ones left out: they never run). Two rules are checked:
each room imports only the rooms below it, and no module reaches itself through its imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_ROOT

PACKAGES = ("citywatch", "edge", "gateway", "simulators", "models")

# What all rooms share: the contract and the plumbing beneath it. It imports no other room.
SHARED = (
    "citywatch.protocol",
    "citywatch.mqtt",
    "citywatch.broker",
    "citywatch.local_server",
    "citywatch.polling",
)
# The composition root: the command line, the demo, the bench and the evaluation wire rooms together.
COMPOSITION = ("citywatch.cli", "citywatch.demo", "citywatch.bench", "citywatch.evaluation")

# room -> the rooms it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "shared": set(),
    "edge": {"shared"},
    "gateway": {"shared"},
    "simulators": {"shared", "edge"},
    "models": {"shared", "edge", "simulators", "composition"},
    "composition": {"shared", "edge", "gateway", "simulators"},
}


def room_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top in ("edge", "gateway", "simulators", "models"):
        return top
    if top != "citywatch":
        return None
    if any(module == p or module.startswith(p + ".") for p in COMPOSITION):
        return "composition"
    return "shared"  # the package itself (its version) and the plumbing in SHARED


def module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            if "migrations" in parts and "versions" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif _is_import_module_call(node):  # importlib.import_module("a.b") counts as import a.b
            assert isinstance(node, ast.Call) and isinstance(node.args[0], ast.Constant)
            yield ast.Import(names=[ast.alias(name=str(node.args[0].value))])
        yield from _imports(node)


def _is_import_module_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name == "import_module" and isinstance(node.args[0].value, str)


def imported_modules(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports: ``from a.b import c`` is ``a.b.c`` when that is a module."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        found.update(name for name in names if name in known and name != module)
    return found


def import_graph() -> dict[str, set[str]]:
    known = module_files()
    return {module: imported_modules(module, path, known) for module, path in known.items()}


def test_each_room_imports_only_the_rooms_below_it() -> None:
    wrong = []
    for module, targets in import_graph().items():
        source_room = room_of(module)
        assert source_room is not None
        for target in sorted(targets):
            target_room = room_of(target)
            if (
                target_room is not None
                and target_room != source_room
                and target_room not in ALLOWED[source_room]
            ):
                wrong.append(f"{module} ({source_room}) imports {target} ({target_room})")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
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
                        components.append(sorted(component))
    return components


def test_no_module_imports_itself_through_others() -> None:
    cycles = strongly_connected(import_graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("module", "room"),
    [("edge.uplink", "edge"), ("citywatch.protocol.codec", "shared"), ("citywatch.cli", "composition")],
)
def test_rooms_are_told_apart(module: str, room: str) -> None:
    assert room_of(module) == room


def test_the_checker_sees_a_cycle_and_a_function_level_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from gateway import runner\n    importlib.import_module('edge.x')\n")
    known = {"edge.m": source, "gateway.runner": source, "edge.x": source}
    assert imported_modules("edge.m", source, known) == {"gateway.runner", "edge.x"}
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
