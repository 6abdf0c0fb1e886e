"""Import layering: a lower layer never imports a higher one (docs/architecture.md).

permcore (the pure core) imports nothing of ours but itself, with relative imports so the
client kit can ship it as `permstore_client._core`; schemas may import permcore; adapters sit on
both; streams and services sit on adapters and never import each other; permstore is the facade.
Every server folder is imported through the `permstore` namespace it is linked into (ADR 0018):
a bare `services.x` would load a second copy of the module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> the packages of ours it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "permcore": frozenset(),
    "schemas": frozenset({"permcore"}),
    "adapters": frozenset({"permcore", "schemas"}),
    "streams": frozenset({"permcore", "schemas", "adapters"}),
    "services": frozenset({"permcore", "schemas", "adapters", "permstore_client"}),
    "permstore": frozenset({"permstore_client"}),
}
OURS = frozenset(ALLOWED) | {"tests", "bench", "deploy", "permstore_client"}
# namespace name -> the folder linked there
LINKED = {"core": "permcore", "schemas": "schemas", "adapters": "adapters", "streams": "streams"}
LINKED |= {"services": "services", "deploy": "deploy"}


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import in a file, nested ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def layer_of(module: str) -> str:
    """The folder an import reaches: `permstore.core.x` is permcore; `permstore`, the facade."""
    parts = module.split(".")
    if parts[0] == "permstore" and len(parts) > 1 and parts[1] in LINKED:
        return LINKED[parts[1]]
    return parts[0]


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, package folder) of every absolute import in a file."""
    return [(line, layer_of(module)) for line, module in imported_names(path)]


def own_files(package: str) -> list[Path]:
    """The package folder's Python files, without those of the folders linked into it."""
    folder = ROOT / package
    return [p for p in sorted(folder.rglob("*.py")) if p.resolve().is_relative_to(folder)]


def violations(package: str) -> list[str]:
    """Imports in package that reach a layer it may not use."""
    bad = []
    for path in own_files(package):
        for line, top in imported_packages(path):
            if top in OURS and top != package and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
            if package == "permcore" and top == "permcore":
                bad.append(f"{path.relative_to(ROOT)}:{line} imports permcore absolutely")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_layer_imports_a_higher_one(package: str) -> None:
    assert (ROOT / package).is_dir()
    assert not violations(package), "\n".join(violations(package))


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f() -> None:\n    from permstore.schemas.events import Event\n")
    assert imported_packages(sample) == [(2, "schemas")]


def bare_server_imports() -> list[str]:
    """Imports anywhere in our code that name a server folder without the namespace."""
    folders = set(LINKED.values())
    bad = []
    for package in (*ALLOWED, "tests", "bench", "deploy"):
        for path in own_files(package):
            for line, module in imported_names(path):
                if module.split(".")[0] in folders:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_server_folders_are_imported_through_the_namespace() -> None:
    assert not bare_server_imports(), "\n".join(bare_server_imports())


def test_every_server_folder_is_linked_into_the_namespace() -> None:
    for name, folder in LINKED.items():
        link = ROOT / "permstore" / name
        assert link.is_symlink(), f"permstore/{name} is not a link"
        assert link.resolve() == ROOT / folder


def test_pure_core_needs_no_server_dependency() -> None:
    server_only = {"faust", "cassandra", "aiokafka", "uvicorn", "fastapi", "structlog"}
    for path in own_files("permcore"):
        tops = {top for _, top in imported_packages(path)}
        assert not tops & server_only, f"{path.name} imports {tops & server_only}"
