"""The client kit as a service team gets it: a fresh virtualenv with `pip install ./clients/python`
(and fastapi for the example), no server dependency, then the example app's own suite against
the in-memory fake and, unchanged, against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import TokenFactory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "clients" / "python" / "examples" / "docs_service"
SERVER_ONLY = ("faust", "cassandra", "aiokafka", "uvicorn", "orjson", "permcore", "services")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv holding only the client kit, fastapi and pytest."""
    venv = tmp_path_factory.mktemp("client-kit") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            str(ROOT / "clients" / "python"),
            "fastapi",
            "pytest",
        ],
        check=True,
        timeout=600,
    )
    return python


def run_example(python: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pytest", "-q", str(EXAMPLE)],
        cwd=EXAMPLE,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_kit_installs_without_server_dependencies(fresh_venv: Path) -> None:
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    # cwd outside the checkout: `python -c` puts the working directory on sys.path
    away = fresh_venv.parents[2]
    found = subprocess.run(
        [str(fresh_venv), "-c", probe, *SERVER_ONLY],
        capture_output=True,
        text=True,
        check=True,
        cwd=away,
    )
    assert found.stdout.strip() == "[]"
    core = "from permstore_client._core import projector; print(projector.__name__)"
    shown = subprocess.run([str(fresh_venv), "-c", core], capture_output=True, text=True, cwd=away)
    assert shown.stdout.strip() == "permstore_client._core.projector", shown.stderr
    assert (fresh_venv.parent / "permstore-dev").exists()


def test_the_example_suite_passes_on_the_fake(fresh_venv: Path) -> None:
    clean = {"PERMSTORE_TEST_URL": "", "PERMSTORE_TEST_TOKEN": ""}
    result = run_example(fresh_venv, clean)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_the_same_suite_passes_on_the_real_stack(
    fresh_venv: Path, api_url: str, issue_token: TokenFactory
) -> None:
    env = {
        "PERMSTORE_TEST_URL": api_url,
        "PERMSTORE_TEST_TOKEN": issue_token("*", "check,write,audit"),
    }
    result = run_example(fresh_venv, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
