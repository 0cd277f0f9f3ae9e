"""The import map (docs/architecture.md): no service imports another, `authgate/` imports
no service, and no module cycle — type-only imports included, since a cycle there is a
cycle in the design."""

from __future__ import annotations

import ast
from pathlib import Path

from .harness import REPO

SERVICES = ("verifier", "issuer", "gateway", "plugins")
PACKAGES = ("authgate", *SERVICES)


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_map() -> dict[str, set[str]]:
    files = {_module(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package[: len(package) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def test_no_service_imports_another_and_authgate_imports_none() -> None:
    wrong = [
        f"{module} imports {dep}"
        for module, deps in _import_map().items()
        for dep in deps
        if (top := module.split(".")[0]) != (dep_top := dep.split(".")[0])
        and (top == "authgate" or dep_top != "authgate")
    ]
    assert not wrong, wrong


def test_no_import_cycles() -> None:
    graph = _import_map()
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(path[path.index(module) :])
            return
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, cycles[:5]


def test_the_redis_layer_stands_alone() -> None:
    """The Kong image ships authgate/redis_client.py beside the plugin, alone
    (kong/Dockerfile): it may import nothing else of authgate."""
    graph = _import_map()
    assert graph["authgate.redis_client"] <= {"authgate"}, graph["authgate.redis_client"]
    assert "authgate.redis_client" in graph["plugins.idempotency"]
