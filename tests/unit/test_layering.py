"""Import layering: a lower layer never imports a higher one (docs/architecture.md).

permcore (the pure core) imports nothing of ours but itself, with relative imports so the
client kit can ship it as `permstore_client._core`; schemas may import permcore; adapters sit on
both; streams and services sit on adapters and never import each other; permstore is the facade.
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
    "permstore": frozenset({"permcore", "schemas", "adapters", "services", "permstore_client"}),
}
OURS = frozenset(ALLOWED) | {"tests", "bench", "deploy", "permstore_client"}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file, nested ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    """Imports in package that reach a layer it may not use."""
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
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
    sample.write_text("def f() -> None:\n    from schemas.events import Event\n")
    assert imported_packages(sample) == [(2, "schemas")]


def test_pure_core_needs_no_server_dependency() -> None:
    server_only = {"faust", "cassandra", "aiokafka", "uvicorn", "fastapi", "structlog"}
    for path in sorted((ROOT / "permcore").rglob("*.py")):
        tops = {top for _, top in imported_packages(path)}
        assert not tops & server_only, f"{path.name} imports {tops & server_only}"
